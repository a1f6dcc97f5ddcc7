"""Decision-level fusion of Planet (VHR-like) and Sentinel-2 random forests on REAL DynamicEarthNet.

Data: the five DynamicEarthNet samples in ``../shared/data/fusion_fixtures/dynamicearthnet``
(16 x 16 px at 3 m each, so 5 x 256 = 1280 labelled pixels in all). For each sample:

* label: the month's ``label_YYYYMM01.tif`` (DynamicEarthNet classes; only 0 impervious,
  1 agriculture, 2 forest & other vegetation and 3 wetlands occur; GEO-Bench-2 also maps
  unlabelled pixels to 0, which cannot be told apart);
* Planet: per-pixel median of the month's 30-31 daily PlanetFusion images, 4 bands B, G, R,
  NIR (the VHR-like source), read with :func:`iota2_spot_s2.sensors.open_spot`;
* S2: the monthly 12-band image, already resampled by GEO-Bench-2 onto the 3 m Planet grid,
  read with rasterio in file order (``bands.txt``). It is *not* read with ``open_spot``: that
  reader names the 12 bands ``B0`` ... ``B11`` and sorts them as strings (``B10``, ``B11``
  come after ``B3``), which would silently permute the bands.

Grid check: :meth:`Grid.from_raster` of every Planet image and the label must be equal, and the
S2 grid must have the same CRS and shape with a transform equal to 1e-6 m. Strict ``==`` of the
S2 grid fails: its origin differs from the Planet origin by a few 1e-9 m (float rounding in the
packaging), so the arrays are stacked as they are (no resampling).

Codes: DynamicEarthNet label ``c`` becomes code ``c + 1`` (1..4) here, because
:func:`iota2_spot_s2.evaluation.confusion_matrix` ignores reference 0 and
:func:`iota2_spot_s2.fusion.fuse_probabilities` uses 0 as nodata / undecided label.

Protocol: leave-one-sample-out. For each held-out sample, two scikit-learn random forests
(100 trees, seeded) are trained on the pixels of the 4 other samples, one on the Planet
features and one on the S2 features; their class probabilities on the held-out sample are fused
with every rule of :func:`fuse_probabilities`. The ``weighted_mean`` and Dempster-Shafer rules
need one validation confusion matrix per source; by default (``--confusions inner``) it is built
by an inner leave-one-sample-out over the 4 training samples (each training sample predicted by a
forest trained on the 3 others, matrices summed), which never sees the held-out sample and is
not inflated by the spatial autocorrelation of neighbouring pixels. ``--confusions oob`` uses
the forests' out-of-bag predictions on the training pixels instead (cheaper, optimistic).
Confusion matrices are summed over the 5 folds and scored once.

This is TINY real data (1280 pixels, 5 scenes on 3 continents, 4 classes present): the table
shows that the chain runs end to end on real imagery, not which rule is better.

Usage::

    python experiments/fusion_fixtures_real.py --out fusion_fixtures_real_out
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from sklearn.ensemble import RandomForestClassifier

from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.fusion import fuse_probabilities
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors import open_spot

DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "fusion_fixtures" / "dynamicearthnet"
)
CODES = (1, 2, 3, 4)  # DynamicEarthNet label + 1
CLASS_NAMES = {1: "impervious", 2: "agriculture", 3: "forest/veg", 4: "wetlands"}
RULES = ("mean", "weighted_mean", "product", "vote", "dempster_shafer", "dempster_shafer_otb")
NEEDS_CONFUSIONS = {"weighted_mean", "dempster_shafer", "dempster_shafer_otb"}
SOURCES = ("planet", "s2")
GRID_TOLERANCE_M = 1e-6


@dataclass(frozen=True)
class Sample:
    """One DynamicEarthNet sample on its 3 m grid.

    Attributes:
        name: Folder name.
        grid: The Planet / label grid.
        planet: float32 ``(4, H, W)`` monthly median of the daily Planet images (B, G, R, NIR).
        s2: float32 ``(12, H, W)`` monthly S2 image, ``bands.txt`` order.
        label: int64 ``(H, W)`` codes 1..4 (DynamicEarthNet label + 1).
        n_planet: Number of daily Planet images in the median.
        s2_offset_m: Largest difference between the S2 and Planet transform coefficients.

    """

    name: str
    grid: Grid
    planet: np.ndarray
    s2: np.ndarray
    label: np.ndarray
    n_planet: int
    s2_offset_m: float

    def features(self, source: str) -> np.ndarray:
        """``(H*W, C)`` pixel features of ``source`` (``planet`` or ``s2``)."""
        stack = self.planet if source == "planet" else self.s2
        return stack.reshape(stack.shape[0], -1).T


def sample_dirs(root: Path = DATA) -> list[Path]:
    """The sample folders, in sample order."""
    return sorted(p for p in root.glob("sample_*") if p.is_dir())


def check_grids(folder: Path) -> tuple[Grid, float]:
    """Check that the Planet images, the S2 image and the label of a sample share one grid.

    Returns:
        The Planet grid and the largest S2-vs-Planet transform difference in metres.

    Raises:
        ValueError: If a Planet image or the label is not on the first Planet image's grid, or
            the S2 grid differs in CRS or shape, or its transform by more than 1e-6 m.

    """
    planets = sorted(folder.glob("planet_*.tif"))
    grid = Grid.from_raster(planets[0])
    for path in [*planets[1:], *folder.glob("label_*.tif")]:
        if Grid.from_raster(path) != grid:
            raise ValueError(f"{path} is not on the grid of {planets[0].name}")
    (s2_path,) = folder.glob("s2_*.tif")
    s2_grid = Grid.from_raster(s2_path)
    offset = float(np.max(np.abs(np.array(s2_grid.transform) - np.array(grid.transform))))
    if s2_grid.crs != grid.crs or s2_grid.shape != grid.shape or offset > GRID_TOLERANCE_M:
        raise ValueError(f"{s2_path} is not on the Planet grid (offset {offset} m)")
    return grid, offset


def load_sample(folder: Path) -> Sample:
    """Read one sample after checking its grids (see :func:`check_grids`)."""
    grid, offset = check_grids(folder)
    planets = sorted(folder.glob("planet_*.tif"))
    daily = np.stack([open_spot(p).values for p in planets])  # (T, 4, H, W) float32
    planet = np.nanmedian(daily, axis=0).astype(np.float32)
    (s2_path,) = folder.glob("s2_*.tif")
    with rasterio.open(s2_path) as src:
        s2 = src.read().astype(np.float32)
    (label_path,) = folder.glob("label_*.tif")
    with rasterio.open(label_path) as src:
        label = src.read(1).astype(np.int64) + 1
    return Sample(folder.name, grid, planet, s2, label, len(planets), offset)


def load_samples(root: Path = DATA) -> list[Sample]:
    """All samples of ``root``."""
    return [load_sample(p) for p in sample_dirs(root)]


def train_forest(samples: Sequence[Sample], source: str, seed: int) -> RandomForestClassifier:
    """A seeded 100-tree random forest on all pixels of ``samples`` (with OOB predictions)."""
    x = np.concatenate([s.features(source) for s in samples])
    y = np.concatenate([s.label.ravel() for s in samples])
    forest = RandomForestClassifier(n_estimators=100, random_state=seed, oob_score=True, n_jobs=1)
    return forest.fit(x, y)


def full_proba(forest: RandomForestClassifier, proba: np.ndarray) -> np.ndarray:
    """``(N, K)`` probabilities on all :data:`CODES` (zero for classes absent from training)."""
    out = np.zeros((proba.shape[0], len(CODES)), dtype=np.float32)
    for j, code in enumerate(forest.classes_):
        out[:, CODES.index(int(code))] = proba[:, j]
    return out


def predict_stack(forest: RandomForestClassifier, sample: Sample, source: str) -> np.ndarray:
    """``(K, H, W)`` class probabilities of ``sample``, bands in :data:`CODES` order."""
    proba = full_proba(forest, forest.predict_proba(sample.features(source)))
    return proba.T.reshape(len(CODES), *sample.label.shape)


def argmax_codes(stack: np.ndarray) -> np.ndarray:
    """``(H, W)`` code of the most probable class of a ``(K, H, W)`` stack."""
    return np.asarray(CODES)[np.argmax(stack, axis=0)]


def validation_confusion(
    train: Sequence[Sample], source: str, seed: int, method: str, forest: RandomForestClassifier
) -> np.ndarray:
    """Validation confusion matrix of ``source`` computed on the training samples only.

    ``inner``: inner leave-one-sample-out over ``train``; ``oob``: out-of-bag predictions of
    ``forest`` (trained on all of ``train``).
    """
    cm = np.zeros((len(CODES), len(CODES)), dtype=np.int64)
    if method == "oob":
        y = np.concatenate([s.label.ravel() for s in train])
        oob = full_proba(forest, np.nan_to_num(forest.oob_decision_function_))
        return confusion_matrix(y, np.asarray(CODES)[np.argmax(oob, axis=1)], CODES)
    for k, held in enumerate(train):
        inner = train_forest([s for j, s in enumerate(train) if j != k], source, seed)
        cm += confusion_matrix(held.label, argmax_codes(predict_stack(inner, held, source)), CODES)
    return cm


def run_fold(
    samples: Sequence[Sample], held: int, seed: int = 0, confusions: str = "inner"
) -> dict[str, object]:
    """Train on all samples but ``held``, predict ``held`` and fuse with every rule.

    Returns:
        ``stacks`` (source -> ``(K, H, W)``), ``maps`` (strategy -> ``(H, W)`` codes),
        ``results`` (rule -> FusionResult) and ``confusions`` (source -> validation matrix).

    """
    train = [s for k, s in enumerate(samples) if k != held]
    test = samples[held]
    stacks, maps, val_cms = {}, {}, {}
    for source in SOURCES:
        forest = train_forest(train, source, seed)
        stacks[source] = predict_stack(forest, test, source)
        maps[f"{source}-rf"] = argmax_codes(stacks[source])
        val_cms[source] = validation_confusion(train, source, seed, confusions, forest)
    results = {}
    for rule in RULES:
        kwargs = {"confusions": [val_cms[s] for s in SOURCES]} if rule in NEEDS_CONFUSIONS else {}
        results[rule] = fuse_probabilities([stacks[s] for s in SOURCES], CODES, rule, **kwargs)
        maps[f"late-{rule}"] = results[rule].classes
    return {"stacks": stacks, "maps": maps, "results": results, "confusions": val_cms}


def main() -> None:
    """Run the 5 folds, print one table and write ``results.json`` under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("fusion_fixtures_real_out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confusions", choices=("inner", "oob"), default="inner")
    args = parser.parse_args()

    samples = load_samples(args.data)
    print(f"DynamicEarthNet fixtures: {len(samples)} samples from {args.data}")
    for s in samples:
        counts = dict(zip(*np.unique(s.label - 1, return_counts=True), strict=True))
        print(
            f"  {s.name}: {s.grid.width}x{s.grid.height} px at {s.grid.res[0]:g} m, "
            f"{s.n_planet} daily Planet -> median, S2 12 bands, "
            f"S2-vs-Planet transform offset {s.s2_offset_m:.1e} m; "
            f"DEN labels {{{', '.join(f'{int(k)}: {int(v)}' for k, v in counts.items())}}}"
        )
    strategies = [f"{s}-rf" for s in SOURCES] + [f"late-{r}" for r in RULES]
    total = {name: np.zeros((len(CODES), len(CODES)), dtype=np.int64) for name in strategies}
    per_fold: list[dict[str, object]] = []
    for held in range(len(samples)):
        fold = run_fold(samples, held, args.seed, args.confusions)
        oa = {}
        for name in strategies:
            cm = confusion_matrix(samples[held].label, fold["maps"][name], CODES)
            total[name] += cm
            oa[name] = float(np.trace(cm) / cm.sum())
        per_fold.append({"held_out": samples[held].name, "overall_accuracy": oa})

    n_pixels = int(total[strategies[0]].sum())
    n_reference = sum(s.label.size for s in samples)
    print()
    print(
        f"Leave-one-sample-out over {len(samples)} samples, confusion matrices summed: "
        f"{n_reference} reference pixels. RF: 100 trees, seed {args.seed}; "
        f"weighted_mean / Dempster-Shafer confusions: {args.confusions} (on training samples only)."
    )
    print(
        "TINY REAL DATA: 5 x 16 x 16 px, classes 0-3 present (0 impervious/unlabelled, "
        "1 agriculture, 2 forest & veg, 3 wetlands; codes 1-4 here). Not a ranking of rules."
    )
    print(
        "pixels = pixels in the confusion matrix; unmapped = fused pixels with no class code "
        "(undecided, counted in 'OA all' as errors but left out of OA / kappa / F1)."
    )
    header = (
        f"{'strategy':<26} {'OA':>7} {'kappa':>7} {'mean F1':>8} {'pixels':>7} "
        f"{'unmapped':>9} {'OA all':>7}"
    )
    print(header)
    print("-" * len(header))
    table = {}
    for name in strategies:
        sc = scores(total[name], CODES)
        unmapped = n_reference - int(total[name].sum())
        oa_all = float(np.trace(total[name]) / n_reference)
        table[name] = {
            "overall_accuracy": float(sc.overall_accuracy),
            "kappa": float(sc.kappa),
            "mean_f1": float(sc.mean_f1),
            "f1": {CLASS_NAMES[c]: float(f) for c, f in zip(CODES, sc.f1, strict=True)},
            "n_pixels": int(total[name].sum()),
            "n_unmapped": unmapped,
            "overall_accuracy_all_pixels": oa_all,
            "confusion_matrix": total[name].tolist(),
        }
        print(
            f"{name:<26} {sc.overall_accuracy:7.3f} {sc.kappa:7.3f} {sc.mean_f1:8.3f} "
            f"{int(total[name].sum()):7d} {unmapped:9d} {oa_all:7.3f}"
        )
    print()
    print("Per-fold OA (held-out sample):")
    for fold in per_fold:
        oa = fold["overall_accuracy"]
        print(f"  {fold['held_out']}: " + ", ".join(f"{k} {v:.3f}" for k, v in oa.items()))

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    payload = {
        "data": str(args.data),
        "samples": [s.name for s in samples],
        "codes": {str(c): f"DEN {c - 1} {CLASS_NAMES[c]}" for c in CODES},
        "protocol": "leave-one-sample-out, RF 100 trees, confusion matrices summed over folds",
        "seed": args.seed,
        "confusions": args.confusions,
        "n_pixels": n_pixels,
        "note": "tiny real data (1280 px, 5 scenes, DEN classes 0-3 present)",
        "strategies": table,
        "per_fold": per_fold,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
