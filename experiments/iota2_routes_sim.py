"""The three iota2 routes on a SIMULATED iota2-shaped tree: what each sensor and rule scores.

Builds the tree of ``tests/data/iota2_tree/data.py`` at ``--size-m`` (an S2 random forest on
the learn polygons stands in for iota2's classifier: iota2 is not installable here), runs
``fuse-classify iota2 step`` with an FCN trained ``--epochs`` x ``--iters`` steps, then the
decision route with every late-fusion rule, and prints OA / kappa / mean F1 on the scoring half
of iota2's validation polygons (the other half gives the masses and weights).

Feature level: iota2 itself would retrain its classifier on S2 + userFeat features; here the
same random forest is retrained on the S2 features plus the SPOT userFeat bands (the FCN
probabilities and texture per 10 m pixel), on the same learn polygons, and scored on the same
pixels.

Usage::

    python experiments/iota2_routes_sim.py --size-m 720 --epochs 40 --iters 20 --out i2_sim
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

from iota2_spot_s2.cli import main as fuse_classify
from iota2_spot_s2.settings import LATE_RULES, format_cfg, load_config

TREE = Path(__file__).resolve().parents[1] / "tests" / "data" / "iota2_tree" / "data.py"


def _tree_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("iota2_tree_data", TREE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["iota2_tree_data"] = module
    spec.loader.exec_module(module)
    return module


def feature_level_rf(tree, seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """RF on S2 features + SPOT userFeat bands, learn polygons, scored like the decision route."""
    from sklearn.ensemble import RandomForestClassifier

    from iota2_spot_s2.evaluation import confusion_matrix, scores
    from iota2_spot_s2.iota2.decision import _halves
    from iota2_spot_s2.reference import rasterize_reference, split_blocks
    from iota2_spot_s2.sensors import open_s2_timeseries
    from iota2_spot_s2.timeseries import pixel_features, train_s2_classifier

    grid = tree.scene.s2_grid
    series = open_s2_timeseries(tree.scene.sensor_data / tree_data.TILE)
    learn = rasterize_reference(tree.learn, grid, "code").labels
    split = split_blocks(learn, block_size=4, seed=seed)
    split[split == 3] = 1
    spec = train_s2_classifier(series, learn, split, class_codes=tree.codes, seed=seed).spec
    rows, cols = (a.ravel() for a in np.indices(grid.shape))
    feats, _ = pixel_features(series, rows, cols, spec)
    s2 = feats.reshape(feats.shape[0], -1).T.reshape(-1, *grid.shape)  # (F, H, W)
    root = tree.output / "spot_s2" / "userFeat" / tree_data.TILE
    spot = []
    for name in ("SPOT_FCN_PROBA", "SPOT_TEXTURE"):
        with rasterio.open(root / f"{tree_data.TILE}_{name}.tif") as src:
            spot.append(src.read().astype(np.float32))
    val = rasterize_reference(tree.val, grid, "code").labels
    test = _halves(val, 96.0 / 10.0, seed) == 3
    out = {}
    for name, stack in (("s2 features", s2), ("s2 + SPOT userFeat", np.concatenate([s2, *spot]))):
        x = np.nan_to_num(stack.reshape(stack.shape[0], -1).T)
        rf = RandomForestClassifier(100, max_depth=25, random_state=seed, n_jobs=2)
        rf.fit(x[learn.ravel() > 0], learn.ravel()[learn.ravel() > 0])
        pred = rf.predict(x).reshape(grid.shape)
        cm = confusion_matrix(np.where(test, val, 0), pred, tree.codes)
        s = scores(cm, tree.codes)
        present = cm.sum(axis=1) > 0
        pairs = zip(tree.codes, s.f1, present, strict=True)
        per_class = {str(c): float(f) for c, f, p in pairs if p}
        out[name] = {
            "overall_accuracy": s.overall_accuracy, "kappa": s.kappa, "mean_f1": s.mean_f1,
            "pixels": int(cm.sum()), "per_class_f1": per_class,
        }  # fmt: skip
    return out


def main() -> None:
    """Run the experiment and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-m", type=float, default=720.0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", default="iota2_routes_out")
    args = parser.parse_args()
    tree = tree_data.build(Path(args.out), seed=args.seed, size_m=args.size_m)
    raw = tree_data._sections(tree.scene, tree.output)
    raw["spot_s2_fusion"]["training"] = {
        "epochs": args.epochs, "iters_per_epoch": args.iters, "batch_size": 8, "crop": 128,
        "patience": args.epochs,
    }  # fmt: skip
    raw["spot_s2_fusion"]["split_block_m"] = 96.0
    tree.cfg.write_text(format_cfg(raw))
    load_config(tree.cfg)
    tic = time.perf_counter()
    for route in ("step", "features"):
        assert fuse_classify(["iota2", route, str(tree.cfg)]) == 0
    print(f"step + features: {time.perf_counter() - tic:.0f} s")
    rows = {}
    for rule in LATE_RULES:
        assert fuse_classify(["iota2", "fuse", str(tree.cfg), "--rule", rule]) == 0
        report = tree.output / "spot_s2" / tree_data.TILE / "iota2_fusion" / f"seed_0_{rule}.json"
        data = json.loads(report.read_text())["scores"]
        rows.setdefault("SPOT FCN (step)", data["spot"])
        rows.setdefault("iota2 stand-in (S2 RF)", data["iota2"])
        rows[f"decision: {rule}"] = data["fused"]
    for name, sc in feature_level_rf(tree, 0).items():
        rows[f"feature level: RF on {name}"] = sc
    print(f"\nSIMULATED scene {args.size_m:.0f} m, seed {args.seed}; scores on the scoring half "
          "of iota2's validation polygons (10 m pixels)\n")  # fmt: skip
    print("| map | OA | kappa | mean F1 | pixels |\n|---|---|---|---|---|")
    for name, sc in rows.items():
        print(f"| {name} | {sc['overall_accuracy']:.3f} | {sc['kappa']:.3f} | "
              f"{sc['mean_f1']:.3f} | {sc['pixels']} |")  # fmt: skip
    names = {str(c.code): c.name for c in tree.scene.classes}
    classes = sorted({c for sc in rows.values() for c in sc["per_class_f1"]}, key=int)
    print("\nper-class F1 (same pixels)\n")
    print("| map | " + " | ".join(names[c] for c in classes) + " |")
    print("|---|" + "---|" * len(classes))
    for name, sc in rows.items():
        f1 = sc["per_class_f1"]
        cells = [f"{f1[c]:.2f}" if c in f1 else "-" for c in classes]
        print(f"| {name} | " + " | ".join(cells) + " |")


tree_data = _tree_module()

if __name__ == "__main__":
    main()
