"""How far each trained-result threshold of the test suite sits from what training reaches.

Every test that asserts on a trained model's result (OA, kappa, F1, loss decrease, verdicts of
the complementarity report that depend on trained maps) is re-run here through the test
module's own helper, over seeds and torch thread counts (a different thread count changes the
float summation order, as another CPU does). Seed offset ``s`` adds ``s`` to every seed the test
fixes (training and, where the test simulates its data, the scene), so ``s = 0`` is the test
itself. Printed per test and metric: the threshold, min / median / max / std measured, and the
margin (``min - threshold`` for a lower bound, ``threshold - max`` for an upper bound).

``--untrained`` runs the key cases with one training step (no epoch for TempCNN) instead:
each of their assertions must then fail, or the test could not catch a model that learns
nothing.

Usage::

    python benchmarks/threshold_sweep.py                      # every case, seeds 0-4, 1 and 2
    python benchmarks/threshold_sweep.py --cases early_fusion --seeds 0 1 --threads 2
    python benchmarks/threshold_sweep.py --untrained --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SCRATCH = Path(tempfile.mkdtemp(prefix="threshold_sweep_"))


@dataclass(frozen=True)
class Bound:
    """One assertion: ``metric > threshold`` (``above``) or ``metric < threshold``."""

    metric: str
    threshold: float
    above: bool = True

    def margin(self, values: list[float]) -> float:
        return min(values) - self.threshold if self.above else self.threshold - max(values)

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.above else value < self.threshold


@dataclass(frozen=True)
class Case:
    """A test's trained quantity: ``run(seed_offset, folder, untrained) -> {metric: value}``."""

    test: str
    run: Callable[[int, Path, bool], dict[str, float]]
    bounds: tuple[Bound, ...]
    data: str = "simulated"
    uses_torch: bool = True  # else the thread count cannot matter: one run per seed
    key: bool = False  # part of the --untrained check


# --- cached inputs (a scene does not depend on the thread count) ---------------------------


@lru_cache(maxsize=2)
def _fusion_scene(seed: int):
    from tests.test_early_fusion_training import make_scene

    return make_scene(SCRATCH / f"fusion_scene_{seed}", seed=seed)


@lru_cache(maxsize=2)
def _s2_scene(seed: int):
    from tests.test_timeseries_classifiers import make_scene

    return make_scene(SCRATCH / f"s2_scene_{seed}", seed=seed)


@lru_cache(maxsize=1)
def _slovenia():
    from tests.conftest import SHARED_DATA
    from tests.test_timeseries_classifiers import load_slovenia

    return load_slovenia(SHARED_DATA)


@lru_cache(maxsize=1)
def _dynamic_earth_net():
    from tests.conftest import SHARED_DATA
    from tests.test_fusion_fixtures_real import load_experiment

    exp = load_experiment()
    return exp, exp.load_samples(SHARED_DATA / "fusion_fixtures" / "dynamicearthnet")


# --- one function per test ------------------------------------------------------------------


def early_fusion(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from tests.test_early_fusion_training import phenology_f1

    steps = {"epochs": 1, "iters_per_epoch": 1} if untrained else {}
    fused, alone = phenology_f1(_fusion_scene(seed), folder, seed=3 + seed, **steps)
    return {"min F1 fused": min(fused), "mean F1 fused - SPOT alone": np.mean(fused)
            - np.mean(alone), "mean F1 fused": np.mean(fused), "mean F1 SPOT alone":
            np.mean(alone)}  # fmt: skip


def early_fusion_scene0(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    """The test's own scene (seed 0); only the training seed moves."""
    from tests.test_early_fusion_training import phenology_f1

    fused, alone = phenology_f1(_fusion_scene(0), folder, seed=3 + seed)
    return {"min F1 fused": min(fused), "mean F1 fused - SPOT alone": np.mean(fused)
            - np.mean(alone), "mean F1 fused": np.mean(fused), "mean F1 SPOT alone":
            np.mean(alone)}  # fmt: skip


def easy_problem(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from tests.test_training_loop import learn_easy_problem

    steps = {"epochs": 2, "iters_per_epoch": 1} if untrained else {}
    result = learn_easy_problem(folder, seed=seed, **steps)
    losses = [h["loss"] for h in result.history]
    return {"last / first loss": losses[-1] / losses[0], "best VAL mean F1":
            result.best_val_mean_f1}  # fmt: skip


def loss_steps(name: str) -> Callable[[int, Path, bool], dict[str, float]]:
    def run(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
        from tests.test_models import training_losses

        losses, _ = training_losses(name, seed=seed, steps=1 if untrained else 30)
        return {"last loss / log 5": losses[-1] / np.log(5), "last / first loss":
                losses[-1] / losses[0]}  # fmt: skip

    return run


def slovenia(kind: str) -> Callable[[int, Path, bool], dict[str, float]]:
    def run(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
        from tests.test_timeseries_classifiers import (
            FAST_TEMPCNN,
            FitOptions,
            slovenia_metrics,
            train_slovenia,
        )

        options = FitOptions(epochs=0) if untrained else FAST_TEMPCNN
        data = _slovenia()
        metrics = slovenia_metrics(data, train_slovenia(data, kind, seed=seed, tempcnn=options))
        return {k: v for k, v in metrics.items() if k != "chance_mean_f1"}

    return run


def s2_scene(kind: str) -> Callable[[int, Path, bool], dict[str, float]]:
    def run(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
        from tests.test_timeseries_classifiers import scene_s2_class_f1, train_scene_model

        scene = _s2_scene(seed)
        clf = train_scene_model(scene, kind, seed=seed, epochs=0 if untrained else 20)
        return {"min F1 S2 classes": min(scene_s2_class_f1(scene, clf).values())}

    return run


def simulation_design(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from iota2_spot_s2.simulation import generate_scene
    from tests.test_simulation_design import design_margins, scene_data, sensor_f1

    scene = generate_scene(folder / "design", size_m=480, seed=seed)
    return design_margins(scene, *sensor_f1(scene, scene_data(scene)))


def slovenia_merges(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from tests.conftest import SHARED_DATA
    from tests.test_analysis_nomenclature import slovenia_rf_merges

    result, _ = slovenia_rf_merges(SHARED_DATA, folder, seed=seed)
    final = result.min_f1.final.scores
    return {"min F1 0.7 reached": float(result.min_f1.reached),
            "merges to reach it": float(len(result.min_f1.proposals)),
            "min F1 after merges": min(f for f, n in zip(final.f1, final.support, strict=True)
                                       if n > 0)}  # fmt: skip


def fusion_fixtures(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from tests.test_fusion_fixtures_real import HELD_OUT, mean_fusion_oa_margin

    exp, samples = _dynamic_earth_net()
    fold = exp.run_fold(samples, HELD_OUT, seed=seed, confusions="oob")
    return {"OA mean fusion - lower source": mean_fusion_oa_margin(exp, samples, fold)}


def pipeline_fusion(seed: int, folder: Path, untrained: bool) -> dict[str, float]:
    from iota2_spot_s2.pipeline import run_chain
    from iota2_spot_s2.settings import load_config
    from tests import test_pipeline_fusion as t

    cfg, scene = t.write_fusion_cfg(folder, scene_seed=1 + seed, seed=seed)
    run_chain(load_config(cfg))
    out = t.chain_outputs(folder, scene)
    report = json.loads((out["tile_dir"] / "complementarity.json").read_text())
    real, false_positives = t.swapped_verdicts(out["tile_dir"])
    merges = t.merge_sequences(out["tile_dir"], scene, folder / "nomenclature")
    crops = set(scene.codes_needing("s2"))
    spot_at, fused_at = (t.crop_merge_step(merges[k], crops) for k in ("spot_fcn", "late-mean"))
    return {"best fused - best single mean F1": t.fused_gain(out["runs"]),
            "S2 - SPOT mean F1, S2 classes": t.s2_class_gain(out["runs"], scene),
            **{k: float(v) for k, v in t.verdict_counts(report, scene).items()},
            "gain verdicts, real maps": float(real),
            "gain verdicts, 10 swapped pairs": float(false_positives),
            "SPOT map merges crops first": float(merges["spot_fcn"][0] <= crops),
            "fused map merges crops first": float(merges["late-mean"][0] <= crops),
            "fused - SPOT first crop-merge step": float(fused_at - spot_at),
            "SPOT:fcn mean F1": out["runs"]["spot:fcn"]["mean_f1"]}  # fmt: skip


EF = "tests/test_early_fusion_training.py::test_fusion_learns_the_phenology_classes_that_spot_"
TS = "tests/test_timeseries_classifiers.py::"
PF = "tests/test_pipeline_fusion.py::"
CASES: dict[str, Case] = {
    "early_fusion": Case(
        f"{EF}alone_cannot",
        early_fusion,
        (Bound("min F1 fused", 0.7), Bound("mean F1 fused - SPOT alone", 0.3)),
        key=True,
    ),
    "early_fusion_scene0": Case(
        f"{EF}alone_cannot (scene 0, training seed 3 + s)",
        early_fusion_scene0,
        (Bound("min F1 fused", 0.7), Bound("mean F1 fused - SPOT alone", 0.3)),
    ),
    "easy_problem": Case(
        "tests/test_training_loop.py::test_training_learns_an_easy_problem",
        easy_problem,
        (Bound("last / first loss", 0.6, above=False), Bound("best VAL mean F1", 0.8)),
        key=True,
    ),
    "loss_patch_cnn": Case(
        "tests/test_models.py::test_training_steps_reduce_loss[patch_cnn]",
        loss_steps("patch_cnn"),
        (Bound("last loss / log 5", 0.93, False),),
        "random tensors",
        key=True,
    ),
    "loss_fcn": Case(
        "tests/test_models.py::test_training_steps_reduce_loss[fcn]",
        loss_steps("fcn"),
        (Bound("last loss / log 5", 0.7, False),),
        "random tensors",
        key=True,
    ),
    "slovenia_rf": Case(
        f"{TS}test_real_slovenia_ndvi_series_is_classified_well_above_chance[rf]",
        slovenia("rf"),
        (
            Bound("kappa", 0.65),
            Bound("mean_f1", 0.45),
            Bound("oa_over_majority", 0.07),
            Bound("val_mean_f1", 0.4),
        ),
        "real",
        uses_torch=False,
    ),
    "slovenia_tempcnn": Case(
        f"{TS}test_real_slovenia_ndvi_series_is_classified_well_above_chance[tempcnn]",
        slovenia("tempcnn"),
        (Bound("kappa", 0.4), Bound("mean_f1", 0.42), Bound("val_mean_f1", 0.4)),
        "real",
        key=True,
    ),
    "slovenia_merges": Case(
        "tests/test_analysis_nomenclature.py::test_real_slovenia_rf_"
        "confusion_is_analysed_and_rasters_agree",
        slovenia_merges,
        (Bound("min F1 0.7 reached", 0.5), Bound("min F1 after merges", 0.7 - 1e-12)),
        "real",
        uses_torch=False,
    ),
    "s2_scene_rf": Case(
        f"{TS}test_phenology_classes_of_the_simulated_scene_are_separated[rf]",
        s2_scene("rf"),
        (Bound("min F1 S2 classes", 0.78),),
        uses_torch=False,
    ),
    "s2_scene_tempcnn": Case(
        f"{TS}test_phenology_classes_of_the_simulated_scene_are_separated[tempcnn]",
        s2_scene("tempcnn"),
        (Bound("min F1 S2 classes", 0.78),),
        key=True,
    ),
    "simulation_design": Case(
        "tests/test_simulation_design.py::test_each_sensor_separates_its_own_classes",
        simulation_design,
        tuple(
            Bound(name, 0.0)
            for name in (
                "min S2 F1 crops > 0.85",
                "mean SPOT F1 crops < 0.65",
                "mean S2 F1 details < 0.8",
                "SPOT - S2 details > 0.07",
                "S2 F1 hedge < 0.65",
                "SPOT F1 hedge > 0.85",
                "min F1 easy > 0.85",
            )
        ),
        "simulated (LDA)",
        uses_torch=False,
    ),
    "fusion_fixtures": Case(
        "tests/test_fusion_fixtures_real.py::test_fused_map_of_a_held_out_sample",
        fusion_fixtures,
        (Bound("OA mean fusion - lower source", -1e-12),),
        "real (RF)",
        uses_torch=False,
    ),
    "pipeline_fusion": Case(
        f"{PF}(fused strategies, sensor wins, verdicts, swaps, merges)",
        pipeline_fusion,
        (
            Bound("best fused - best single mean F1", 0.05),
            Bound("S2 - SPOT mean F1, S2 classes", 0.2),
            Bound("SPOT classes said SPOT", 0.5),
            Bound("SPOT classes said S2", 0.5, False),
            Bound("S2 classes not said S2", 0.5, False),
            Bound("gain verdicts, real maps", 3.5),
            Bound("gain verdicts, 10 swapped pairs", 3.5, False),
            Bound("fused - SPOT first crop-merge step", 0.5),
            Bound("fused map merges crops first", 0.5, False),
        ),
    ),  # fmt: skip
}


def measure(names: list[str], seeds: list[int], threads: list[int], untrained: bool,
            log: Path) -> list[dict]:  # fmt: skip
    rows = []
    for name in names:
        case = CASES[name]
        for seed in seeds:
            for n in threads if case.uses_torch else [torch.get_num_threads()]:
                torch.set_num_threads(n)
                with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
                    start = time.perf_counter()
                    try:
                        metrics = case.run(seed, Path(folder), untrained)
                    except Exception as error:  # noqa: BLE001 - logged, the sweep goes on
                        print(f"{name} seed {seed} threads {n}: {error!r}", flush=True)
                        continue
                row = {"case": name, "seed": seed, "threads": n if case.uses_torch else None,
                       "seconds": round(time.perf_counter() - start, 1), "untrained": untrained,
                       "metrics": {k: float(v) for k, v in metrics.items()}}  # fmt: skip
                print(json.dumps(row), flush=True)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
    return rows


def summarise(rows: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["case"] for r in rows):
        case, mine = CASES[name], [r for r in rows if r["case"] == name]
        runs = sorted({(r["seed"], r["threads"]) for r in mine})
        seconds = sum(r["seconds"] for r in mine)
        lines.append(f"\n{case.test}  [{case.data}; {len(runs)} runs: seed offsets "
                     f"{sorted({s for s, _ in runs})} x threads "
                     f"{sorted({str(t) for _, t in runs})}; {seconds:.0f} s]")  # fmt: skip
        for bound in case.bounds:
            values = [r["metrics"][bound.metric] for r in mine if bound.metric in r["metrics"]]
            if not values:
                continue
            fails = sum(not bound.holds(v) for v in values)
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            lines.append(f"  {bound.metric:36s} {'>' if bound.above else '<'} {bound.threshold:g}"
                         f": min {min(values):.4f} median {statistics.median(values):.4f} max "
                         f"{max(values):.4f} std {std:.4f} margin {bound.margin(values):+.4f}"
                         f" fails {fails}/{len(values)}")  # fmt: skip
        shown = {b.metric for b in case.bounds}
        for metric in (m for m in mine[0]["metrics"] if m not in shown):
            values = [r["metrics"][metric] for r in mine]
            lines.append(
                f"  {metric:36s} (info): min {min(values):.4f} median "
                f"{statistics.median(values):.4f} max {max(values):.4f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--untrained", action="store_true", help="key cases, one step")
    parser.add_argument("--log", type=Path, default=Path("threshold_sweep.jsonl"))
    parser.add_argument("--summary", type=Path, help="summarise this log instead of running")
    args = parser.parse_args()
    if args.summary:
        print(summarise([json.loads(line) for line in args.summary.read_text().splitlines()]))
        return
    names = [n for n in args.cases if CASES[n].key] if args.untrained else args.cases
    print(summarise(measure(names, args.seeds, args.threads, args.untrained, args.log)))


if __name__ == "__main__":
    main()
