"""Which Slovenia LULC classes a Sentinel-2 random forest maps reliably, on REAL data.

Data: ``../shared/data/s2_slovenia_lulc`` (eo-learn example patch, 101 x 100 px at ~10 m,
EPSG:32633): the 68-date NDVI series with its cloud mask (the only time series there), the
LULC reference raster (classes 1 cultivated, 2 forest, 3 grassland, 4 shrubland, 8 artificial).
Split: 10-pixel blocks, stratified, seed 0 (``split_blocks``, 64/16/20) as in
``tests/test_timeseries_classifiers.py``. The project's random forest
(``train_s2_classifier(kind="rf")``, iota2-like defaults, seed 0, at most ``--cap`` pixels per
class) is trained on TRAIN, and scored on the held-out TEST blocks; the nomenclature analysis
runs on that TEST confusion matrix, with a two-level grouping of our own
(:data:`HIERARCHY`, CORINE-like: artificial / agricultural / forest and semi-natural) scored both
from the matrix and from the remapped rasters (which must agree). Usage::

    python experiments/nomenclature_real.py --out nomenclature_real_out
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import rasterio

from iota2_spot_s2.analysis.nomenclature_inputs import read_hierarchy
from iota2_spot_s2.analysis.nomenclature_report import analyse, console_table, write_nomenclature
from iota2_spot_s2.analysis.nomenclature_tree import ConfusionTable
from iota2_spot_s2.evaluation import confusion_matrix
from iota2_spot_s2.nomenclature import read_nomenclature
from iota2_spot_s2.reference import TEST, split_blocks
from iota2_spot_s2.timeseries import open_band_stack, s2_probabilities, train_s2_classifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "s2_slovenia_lulc"
CODES = [1, 2, 3, 4, 8]
HIERARCHY = """code,name,level1_code,level1_name,level2_code,level2_name
1,Cultivated Land,2,Agricultural areas,21,Cultivated land
2,Forest,3,Forest and semi-natural areas,31,Forest
3,Grassland,3,Forest and semi-natural areas,32,Grassland and shrubland
4,Shrubland,3,Forest and semi-natural areas,32,Grassland and shrubland
8,Artificial Surface,1,Artificial surfaces,11,Artificial surfaces
"""


def classify(data: Path, cap: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Train the RF on TRAIN blocks; return (labels, split, class map, grid profile)."""
    series = open_band_stack(data / "NDVI_68dates.tif", mask=data / "CLM_68dates.tif")
    with rasterio.open(data / "LULC.tif") as src:
        labels, profile = src.read(1), src.profile
    split = split_blocks(labels, block_size=10, seed=seed)
    clf = train_s2_classifier(series, labels, split, kind="rf", class_codes=CODES, seed=seed,
                              max_per_class=cap)  # fmt: skip
    proba = s2_probabilities(clf, series)
    produced = np.asarray(CODES, dtype=np.uint16)[np.nanargmax(proba, axis=0)]
    return labels, split, produced, profile


def write_rasters(out: Path, labels: np.ndarray, split: np.ndarray, produced: np.ndarray,
                  profile: dict) -> tuple[Path, Path]:  # fmt: skip
    """The class map and the TEST-only reference as GeoTIFFs on the LULC grid."""
    out.mkdir(parents=True, exist_ok=True)
    profile = {**profile, "dtype": "uint16", "count": 1, "nodata": 0}
    paths = (out / "rf_map.tif", out / "reference_test.tif")
    for path, array in zip(paths, (produced, np.where(split == TEST, labels, 0)), strict=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array.astype(np.uint16), 1)
    return paths


def main() -> None:
    """Train, score on TEST, analyse, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("nomenclature_real_out"))
    parser.add_argument("--cap", type=int, default=5000, help="max TRAIN pixels per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-f1", type=float, default=0.7)
    args = parser.parse_args()
    start = time.perf_counter()
    labels, split, produced, profile = classify(DATA, args.cap, args.seed)
    cm = confusion_matrix(labels, produced, CODES, mask=split == TEST)
    nom = read_nomenclature(DATA / "nomenclature.txt")
    table = ConfusionTable.build(cm, CODES, [nom.name_of(c) for c in CODES],
                                 source="Slovenia LULC, S2 NDVI RF, TEST blocks")  # fmt: skip
    map_path, ref_path = write_rasters(args.out, labels, split, produced, profile)
    hierarchy = args.out / "hierarchy_slovenia.csv"
    hierarchy.write_text(HIERARCHY, encoding="utf-8")
    levels = [(hierarchy, read_hierarchy(hierarchy))]
    result = analyse(table, min_f1=args.min_f1, hierarchies=levels, rasters=(map_path, ref_path))
    print(
        f"TEST support {dict(zip(CODES, cm.sum(axis=1).tolist(), strict=True))}; "
        f"confusion (rows = reference):\n{cm}"
    )
    print(console_table(result, "real"))
    for p in result.min_f1.proposals if result.min_f1 else ():
        print(
            f"min-F1 {args.min_f1}: {p.low_name} ({p.low_f1:.3f}) + {p.partner_name} "
            f"({p.partner_f1:.3f}) -> F1 {p.merged_f1:.3f}; {p.n_classes} classes, "
            f"OA {p.overall_accuracy:.3f}, mean F1 {p.mean_f1:.3f}"
        )
    print(f"rasters agree with the matrix: {[h.rasters_agree for h in result.hierarchies]}")
    paths = write_nomenclature(result, args.out, data_kind="real",
                               title=f"S2 NDVI random forest (cap {args.cap}, seed {args.seed}), "
                               "Slovenia LULC, TEST blocks")  # fmt: skip
    print(f"report {paths['html']} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
