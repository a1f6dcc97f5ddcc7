"""Windowed scoring and rasterization give exactly the counts of the whole-array computations.

Seeded simulated scenes (EPSG:2154) whose sides are not multiples of the window, windows much
smaller than the scene; the whole-array results are computed here, independently, the way the
chain and ``fuse-classify evaluate`` computed them before they read by windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyogrio import raw
from rasterio.crs import CRS

from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.evaluation.bootstrap import block_confusions, bootstrap_scores
from iota2_spot_s2.evaluation.map_scoring import no_decision_code, present_codes, score_map
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.pipeline import evaluate_from_files
from iota2_spot_s2.reference import (
    DEFAULT_FRACTIONS,
    SUBSET_NAMES,
    block_ids,
    rasterize_reference,
    split_blocks,
    split_summary,
)
from iota2_spot_s2.reference.split import _split_by_groups
from iota2_spot_s2.reference.windowed import rasterize_to_file
from iota2_spot_s2.training.checkpoint_fingerprint import labels_split_digest
from tests.rasters import write_band

CODES = [1, 2, 4, 7]
HEIGHT, WIDTH = 203, 171  # not multiples of the windows below
LABEL_NODATA = 255
TRANSFORM = Affine(1.5, 0, 700_000.0, 0, -1.5, 6_600_000.0)


def _write(path: Path, array: np.ndarray, nodata: int | None = None) -> Path:
    return write_band(path, array, nodata, transform=TRANSFORM, block_size=64)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Labels (nodata 255, an unknown code 9), split 0..3, a map with holes and unknown codes."""
    rng = np.random.default_rng(12)
    labels = rng.choice([0, *CODES, 9], size=(HEIGHT, WIDTH), p=[0.2, 0.2, 0.2, 0.15, 0.15, 0.1])
    labels = labels.astype(np.uint8)
    labels[rng.random(labels.shape) < 0.05] = LABEL_NODATA
    labels[150:170, 20:90] = LABEL_NODATA
    split = rng.integers(0, 4, size=(HEIGHT, WIDTH)).astype(np.uint8)
    produced = np.where(rng.random(labels.shape) < 0.7, labels, rng.choice(CODES, labels.shape))
    produced[rng.random(labels.shape) < 0.08] = 0  # unmapped: errors
    produced[10:30, 100:160] = 3  # a code outside CODES: unmapped too
    produced[labels == LABEL_NODATA] = 1
    folder = tmp_path_factory.mktemp("scene")
    return {
        "labels": labels,
        "split": split,
        "produced": produced.astype(np.uint8),
        "labels_path": _write(folder / "labels.tif", labels, nodata=LABEL_NODATA),
        "split_path": _write(folder / "split.tif", split, nodata=0),
        "map_path": _write(folder / "map.tif", produced.astype(np.uint8), nodata=0),
    }


def _whole_array_chain(scene: dict, subset: int) -> np.ndarray:
    """The chain's former scoring: whole int64 map, unmapped -> no decision, whole labels."""
    no_decision = max(CODES) + 1
    produced = scene["produced"].astype(np.int64)
    produced = np.where(np.isin(produced, CODES), produced, no_decision)
    labels = np.where(scene["labels"] == LABEL_NODATA, 0, scene["labels"])
    reference = np.where(scene["split"] == subset, labels, 0)
    return confusion_matrix(reference, produced, [*CODES, no_decision])


@pytest.mark.parametrize("subset", [1, 2, 3])
@pytest.mark.parametrize("window", [16, 50, 1024])
def test_windowed_scoring_equals_the_whole_array_computation(scene, subset, window) -> None:
    result = score_map(
        scene["labels_path"],
        scene["map_path"],
        CODES,
        split_path=scene["split_path"],
        subset=subset,
        window_size=window,
    )
    expected = _whole_array_chain(scene, subset)
    assert result.matrix.dtype == np.int64
    np.testing.assert_array_equal(result.matrix, expected)
    labelled = (scene["split"] == subset) & ~np.isin(scene["labels"], [0, LABEL_NODATA])
    unmapped = labelled & ~np.isin(scene["produced"], CODES)
    assert result.unmapped == int(unmapped.sum()) > 0
    # the no-decision column holds the unmapped pixels of known reference classes, nothing else
    known = unmapped & np.isin(scene["labels"], CODES)
    assert result.matrix[:, -1].sum() == int(known.sum()) > 0
    assert result.matrix[-1].sum() == 0  # no reference pixel is "no decision"
    assert result.matrix.sum() == int((labelled & np.isin(scene["labels"], CODES)).sum())


def test_block_matrices_equal_the_whole_array_blocks(scene) -> None:
    scored = [*CODES, no_decision_code(CODES)]
    result = score_map(
        scene["labels_path"],
        scene["map_path"],
        CODES,
        split_path=scene["split_path"],
        subset=3,
        bootstrap_block=16,
        window_size=40,
    )
    labels = np.where(scene["labels"] == LABEL_NODATA, 0, scene["labels"])
    reference = np.where(scene["split"] == 3, labels, 0)
    produced = np.where(
        (reference > 0) & ~np.isin(scene["produced"], CODES), scored[-1], scene["produced"]
    )
    expected = block_confusions(reference, produced, scored, 16)
    assert expected.shape[0] > 50
    np.testing.assert_array_equal(result.block_matrices(), expected)
    np.testing.assert_array_equal(result.block_matrices().sum(axis=0), result.matrix)


def test_present_codes_reads_the_subset_by_windows(scene) -> None:
    on_test = np.where(scene["split"] == 3, scene["labels"], 0)
    expected = sorted(int(c) for c in np.unique(on_test) if c not in (0, LABEL_NODATA))
    got = present_codes(
        scene["labels_path"], split_path=scene["split_path"], subset=3, window_size=32
    )
    assert got == expected == [*CODES[:2], 4, 7, 9]


def test_evaluate_equals_the_whole_array_evaluation(scene, tmp_path: Path) -> None:
    """``fuse-classify evaluate``'s call against the former whole-array algorithm."""
    no_zero = np.where(scene["labels"] == 0, LABEL_NODATA, scene["labels"]).astype(np.uint8)
    ref = _write(tmp_path / "ref.tif", no_zero, nodata=LABEL_NODATA)  # 0 is a class beside 255
    result = evaluate_from_files(
        reference=ref,
        produced=scene["map_path"],
        out_dir=tmp_path / "e",
        split=scene["split_path"],
        subset="test",
        bootstrap_block=16,
    )
    labels = np.where(no_zero == LABEL_NODATA, 0, no_zero).astype(np.uint16)
    labels = np.where(scene["split"] == 3, labels, 0)
    codes = sorted(int(c) for c in np.unique(labels) if c != 0)
    produced = scene["produced"]
    unmapped = (labels > 0) & ~np.isin(produced, codes)
    scored = [*codes, max(codes) + 1]
    produced = np.where(unmapped, scored[-1], produced)
    cm = confusion_matrix(labels, produced, scored)
    expected = scores(cm, scored)
    report = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert report["unmapped_labelled_pixels"] == int(unmapped.sum())
    assert report["no_decision_code"] == 10
    assert result.overall_accuracy == expected.overall_accuracy
    assert result.kappa == expected.kappa and result.mean_f1 == expected.mean_f1
    intervals = bootstrap_scores(block_confusions(labels, produced, scored, 16), scored)
    assert report["bootstrap"]["overall_accuracy"] == intervals["overall_accuracy"]
    assert report["bootstrap"]["blocks"] == intervals["blocks"]


def test_evaluate_without_unmapped_pixels_has_no_no_decision_column(scene, tmp_path) -> None:
    labels = np.where(scene["labels"] == LABEL_NODATA, 0, scene["labels"]).astype(np.uint8)
    produced = np.where(labels > 0, labels, 0).astype(np.uint8)
    produced[labels == 9] = 7
    ref = _write(tmp_path / "ref.tif", labels, nodata=0)
    map_ = _write(tmp_path / "map.tif", produced, nodata=0)
    result = evaluate_from_files(reference=ref, produced=map_, out_dir=tmp_path / "e")
    report = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert report["unmapped_labelled_pixels"] == 0 and "no_decision_code" not in report
    labelled = labels > 0  # code 9 is a class here (read from the labels), mapped to 7: errors
    assert result.overall_accuracy == pytest.approx(float((produced == labels)[labelled].mean()))
    assert result.overall_accuracy < 0.9


GRID = Grid(CRS.from_epsg(2154), TRANSFORM, WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def polygons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random overlapping polygons (rotated squares, holes, a code unknown to the nomenclature)."""
    rng = np.random.default_rng(5)
    x0, y1 = TRANSFORM.c, TRANSFORM.f
    geoms, values = [], []
    for _ in range(80):
        cx, cy = x0 + rng.uniform(-20, WIDTH * 1.5 + 20), y1 - rng.uniform(-20, HEIGHT * 1.5 + 20)
        r = rng.uniform(3, 40)
        poly = shapely.affinity.rotate(
            shapely.box(cx - r, cy - r, cx + r, cy + r), rng.uniform(0, 90)
        )
        if rng.random() < 0.3:
            poly = poly.difference(shapely.Point(cx, cy).buffer(r / 2))
        geoms.append(poly)
        values.append(str(rng.choice([1, 2, 4, 7, 99, 300])))
    path = tmp_path_factory.mktemp("vector") / "ref.gpkg"
    raw.write(
        path,
        np.array(shapely.to_wkb(np.array(geoms, dtype=object)), dtype=object),
        [np.array(values, dtype=object)],
        ["cls"],
        layer="ref",
        driver="GPKG",
        geometry_type="Unknown",
        crs="EPSG:2154",
    )
    return path


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize(
    "nomenclature", [None, Nomenclature.from_classes({1: "one", 2: "two", 4: "four", 7: "seven"})]
)
def test_windowed_rasterization_equals_the_whole_one(
    polygons, tmp_path, all_touched, nomenclature
) -> None:
    whole = rasterize_reference(
        polygons, GRID, "cls", nomenclature=nomenclature, all_touched=all_touched
    )
    out = tmp_path / "labels.tif"
    report = rasterize_to_file(
        polygons,
        GRID,
        "cls",
        out,
        nomenclature=nomenclature,
        all_touched=all_touched,
        window_size=37,
    )
    with rasterio.open(out) as src:
        labels, dtype = src.read(1), src.dtypes[0]
    assert dtype == ("uint8" if nomenclature else "uint16")  # 300 needs 16 bits
    np.testing.assert_array_equal(labels, whole.labels)
    assert report.to_dict() == whole.report.to_dict()
    assert whole.report.conflict_pixels > 0 and len(whole.report.class_pixel_counts) >= 4


def _whole_summary(labels: np.ndarray, split: np.ndarray) -> dict:
    """The former whole-array ``split_summary``."""
    labelled = labels != 0
    n = int(labelled.sum())
    subsets = {}
    for value, name in SUBSET_NAMES.items():
        count = int((labelled & (split == value)).sum())
        subsets[name] = {"pixels": count, "share": count / n if n else 0.0}
    classes = {}
    for code in np.unique(labels[labelled]):
        in_class = labels == code
        row = {name: int((in_class & (split == v)).sum()) for v, name in SUBSET_NAMES.items()}
        row["total"] = int(in_class.sum())
        classes[str(int(code))] = row
    unassigned = int((labelled & (split == 0)).sum())
    return {
        "labelled_pixels": n,
        "unassigned_labelled_pixels": unassigned,
        "subsets": subsets,
        "classes": classes,
    }


@pytest.mark.parametrize(("block", "seed"), [(7, 0), (16, 3), (500, 1)])
def test_strip_split_equals_the_whole_array_split(block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 3, 5, 300], size=(HEIGHT, WIDTH), p=[0.4, 0.3, 0.2, 0.1])
    labels = labels.astype(np.uint16)
    labels[:, :40] = 0
    ids = block_ids(labels.shape, block)
    expected = _split_by_groups(labels, ids, int(ids.max()) + 1, seed, DEFAULT_FRACTIONS)
    got = split_blocks(labels, block_size=block, seed=seed)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    assert labels_split_digest(labels, got) == labels_split_digest(labels, expected)
    if block < 100:
        assert set(np.unique(got)) == {0, 1, 2, 3}
    noisy = got.copy()
    noisy[5, 5:60] = 7  # a value outside the subsets: labelled, in none
    assert split_summary(labels, noisy) == _whole_summary(labels, noisy)
