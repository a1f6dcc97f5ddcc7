"""Early fusion vs SPOT-only FCN vs S2-only random forest on a SIMULATED scene (same budget).

Budget: the same number of optimiser steps for both networks (``--epochs`` x ``--iters`` steps of
``--batch`` crops of 120 x 120 SPOT px; no early stopping), not the same wall time: the machine
this was measured on is shared, so wall-clock budgets would depend on the neighbours' load. The
wall time of each run is reported.

The seeded simulated landscape (:func:`iota2_spot_s2.simulation.generate_scene`) has classes that
only SPOT's 1.5 m detail separates (building, road, parking, hedge), classes that only the
Sentinel-2 phenology separates (winter cereal, maize, meadow) and easy ones (forest, water).
The reference is rasterized on the SPOT grid and split into spatially disjoint 120 m blocks
(80 SPOT px = 12 S2 px, so the S2 split is the same ground); then, on 2 CPU threads:

- ``fcn``: the SPOT-only FCN (:func:`iota2_spot_s2.training.train`);
- ``early_fusion``: the same FCN with the S2 branch fused at 1/8
  (:func:`iota2_spot_s2.training.paired.train_early_fusion`), same crop, batch, LR schedule,
  epochs and wall-time budget; also scored with S2 flagged missing for the whole scene;
- ``s2_rf``: iota2-like random forest on the gap-filled S2 features at 10 m
  (:func:`iota2_spot_s2.timeseries.train_s2_classifier`), its 10 m map read at each SPOT pixel
  centre.

All maps are scored on the TEST pixels of the SPOT grid (per-class F1, mean F1, OA). Checkpoints
are resumed: rerunning with the same arguments reuses finished trainings.

Usage::

    python experiments/early_fusion_sim.py --epochs 20 --iters 20 --out ef_sim_out
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.inference import predict_array
from iota2_spot_s2.inference.paired import predict_early_fusion_array
from iota2_spot_s2.reference import TEST, rasterize_reference, split_blocks
from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import generate_scene
from iota2_spot_s2.timeseries import s2_probabilities, train_s2_classifier
from iota2_spot_s2.training import load_model, train
from iota2_spot_s2.training.paired import load_early_fusion, train_early_fusion

BLOCK_PX = 80  # 120 m: a whole number of SPOT (1.5 m) and S2 (10 m) pixels


def score(produced: np.ndarray, labels: np.ndarray, split: np.ndarray, codes: list[int]) -> dict:
    """Per-class F1, mean F1 and OA on the TEST pixels."""
    reference = np.where(split == TEST, labels, 0)
    result = scores(confusion_matrix(reference, produced, codes), codes)
    return {
        "mean_f1": round(result.mean_f1, 4),
        "oa": round(result.overall_accuracy, 4),
        "f1": {str(c): round(f, 4) for c, f in zip(codes, result.f1, strict=True)},
    }


def s2_only(scene, series, split: np.ndarray, codes: list[int], seed: int) -> np.ndarray:
    """S2 random forest at 10 m, its map sampled at the SPOT pixel centres."""
    labels_10m = rasterize_reference(scene.reference, scene.s2_grid, "code").labels
    step = scene.s2_grid.res[0] / scene.spot_grid.res[0]
    h, w = scene.spot_grid.shape
    rows = ((np.arange(scene.s2_grid.height) + 0.5) * step).astype(int).clip(0, h - 1)
    cols = ((np.arange(scene.s2_grid.width) + 0.5) * step).astype(int).clip(0, w - 1)
    split_10m = split[np.ix_(rows, cols)]
    clf = train_s2_classifier(series, labels_10m, split_10m, kind="rf", class_codes=codes,
                              seed=seed)  # fmt: skip
    proba = np.nan_to_num(s2_probabilities(clf, series), nan=0.0)
    classes = np.asarray(codes)[proba.argmax(axis=0)]
    r = ((np.arange(h) + 0.5) / step).astype(int)
    c = ((np.arange(w) + 0.5) / step).astype(int)
    return classes[np.ix_(r, c)]


def main() -> None:
    """Run the comparison and write ``results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("ef_sim_out"))
    parser.add_argument("--size-m", type=float, default=1536.0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iters", type=int, default=20, help="optimiser steps per epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=None, help="optional wall-time cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a loaded 2-core machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    scene = generate_scene(args.out / "scene", size_m=args.size_m, seed=args.seed)
    spot = open_spot(scene.spot_image)
    series = open_s2_timeseries(scene.sensor_data / scene.tile)
    labels = rasterize_reference(scene.reference, scene.spot_grid, "code").labels
    split = split_blocks(labels, block_size=BLOCK_PX, seed=args.seed)
    codes = scene.codes
    common = dict(class_codes=codes, epochs=args.epochs, patience=10_000,
                  iters_per_epoch=args.iters, batch_size=args.batch, crop=120,
                  max_minutes=args.minutes, seed=args.seed, val_tile=240, resume=True)  # fmt: skip
    budget = {k: getattr(args, k) for k in ("epochs", "iters", "batch", "minutes")}
    results: dict = {"simulated": True, "scene_size_m": scene.extent_m, "budget": budget,
                     "threads": args.threads}  # fmt: skip
    tic = time.perf_counter()
    fcn = train(spot, labels, split, model_name="fcn",
                checkpoint_path=args.out / "fcn.pt", **common)  # fmt: skip
    proba = predict_array(load_model(fcn.checkpoint_path), spot.values)
    results["fcn"] = score(np.asarray(codes)[proba.argmax(0)], labels, split, codes)
    results["fcn"].update(epochs=len(fcn.history), best_epoch=fcn.best_epoch,
                          train_seconds=round(sum(h["seconds"] for h in fcn.history), 1),
                          seconds=round(time.perf_counter() - tic, 1))  # fmt: skip
    tic = time.perf_counter()
    fused = train_early_fusion(spot, series, labels, split,
                               checkpoint_path=args.out / "early_fusion.pt", **common)  # fmt: skip
    model = load_early_fusion(fused.checkpoint_path)
    proba = predict_early_fusion_array(model, spot.values, series)
    results["early_fusion"] = score(np.asarray(codes)[proba.argmax(0)], labels, split, codes)
    results["early_fusion"].update(
        epochs=len(fused.history), best_epoch=fused.best_epoch,
        train_seconds=round(sum(h["seconds"] for h in fused.history), 1),
        seconds=round(time.perf_counter() - tic, 1),
        parameters=model.model.n_parameters(), receptive_field=model.model.receptive_field,
    )  # fmt: skip
    proba = predict_early_fusion_array(model, spot.values, None)
    results["early_fusion_s2_missing"] = score(
        np.asarray(codes)[proba.argmax(0)], labels, split, codes
    )
    tic = time.perf_counter()
    results["s2_rf"] = score(s2_only(scene, series, split, codes, args.seed), labels, split, codes)
    results["s2_rf"]["seconds"] = round(time.perf_counter() - tic, 1)
    results["classes"] = {str(c.code): f"{c.name} ({c.needs})" for c in scene.classes}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
