"""Nomenclature analysis: merge sequence, minimum-F1 merges, hierarchy levels, the command.

Expected values are computed here by hand or by independent loops (never by the functions under
test): merging classes by explicit row/column sums, the pair criterion by its formula, and the
hierarchy levels by remapping label arrays with plain dictionaries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from scipy.cluster.hierarchy import is_valid_linkage

from iota2_spot_s2.analysis.nomenclature_levels import hierarchy_scores, raster_level_scores
from iota2_spot_s2.analysis.nomenclature_report import analyse
from iota2_spot_s2.analysis.nomenclature_tree import (
    ConfusionTable,
    agglomerate,
    linkage_matrix,
    min_f1_merges,
)
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation import confusion_matrix, scores, write_otb_confusion_csv
from iota2_spot_s2.nomenclature import read_hierarchy_csv

ROOT = Path(__file__).resolve().parents[1]
OSO = ROOT / "plugin_config" / "hierarchy_oso.csv"


def _sum_by_groups(cm: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(groups), len(groups)), dtype=np.int64)
    for a, ga in enumerate(groups):
        for b, gb in enumerate(groups):
            out[a, b] = sum(cm[i, j] for i in ga for j in gb)
    return out


def _criterion(cm: np.ndarray, i: int, j: int) -> float:
    union = [cm[k, :].sum() + cm[:, k].sum() - cm[k, k] for k in (i, j)]
    return (cm[i, j] + cm[j, i]) / min(union) if min(union) > 0 else 0.0


# --- the merge sequence ---------------------------------------------------------------------


def test_merging_the_most_confused_pair_never_lowers_oa_on_random_matrices() -> None:
    rng = np.random.default_rng(20261205)
    for _ in range(150):
        k = int(rng.integers(2, 8))
        cm = rng.integers(0, 60, (k, k)) * (rng.random((k, k)) < 0.6)
        cm[np.diag_indices(k)] += rng.integers(0, 200, k)
        cm[rng.random(k) < 0.15] = 0  # some classes never in the reference
        codes = sorted(rng.choice(np.arange(1, 30), k, replace=False).tolist())
        steps = agglomerate(ConfusionTable.build(cm, codes))
        groups = [[codes.index(c) for c in g] for g in steps[0].groups]
        for before, step in zip(steps, steps[1:], strict=False):
            merged = _sum_by_groups(cm, groups)
            oa_before = np.trace(merged) / merged.sum()
            live = [a for a in range(len(groups)) if merged[a].sum() > 0]
            best = max(_criterion(merged, a, b) for a in live for b in live if a < b)
            a, b = (before.groups.index(g) for g in step.merged)
            assert step.criterion == pytest.approx(best)
            assert step.criterion == pytest.approx(_criterion(merged, a, b))
            assert step.scores.overall_accuracy >= oa_before - 1e-12
            gain = (merged[a, b] + merged[b, a]) / merged.sum()
            assert step.scores.overall_accuracy == pytest.approx(oa_before + gain)
            assert step.scores.n_pixels == cm.sum()
            groups[a] = sorted(groups[a] + groups[b])
            del groups[b]
        n = steps[0].n_classes
        assert [s.n_classes for s in steps] == (list(range(n, 0, -1)) if n else [0])


def test_known_matrix_merges_the_confused_pair_first_with_the_hand_computed_scores() -> None:
    # 1 and 2 swap 75 of 200 pixels, 3 and 4 swap 15: (1, 2) first, then (3, 4), then all.
    cm = np.array([[60, 40, 0, 0], [35, 65, 0, 0], [0, 0, 95, 5], [0, 0, 10, 90]])
    steps = agglomerate(ConfusionTable.build(cm, [1, 2, 3, 4], ["a", "b", "c", "d"]))
    assert [s.n_classes for s in steps] == [4, 3, 2, 1]
    assert [s.merged for s in steps[1:]] == [((1,), (2,)), ((3,), (4,)), ((1, 2), (3, 4))]
    # u1 = 100 + 95 - 60 = 135, u2 = 100 + 105 - 65 = 140; u3 = 110, u4 = 105
    assert steps[1].criterion == pytest.approx(75 / 135)
    assert steps[2].criterion == pytest.approx(15 / 105)
    assert steps[3].criterion == 0.0
    assert [s.scores.overall_accuracy for s in steps] == pytest.approx([310 / 400, 385 / 400, 1, 1])
    assert steps[1].names == ("a + b", "c", "d")
    # merged {a, b}: 200 reference, 200 mapped, all correct -> F1 1
    assert steps[1].scores.f1[0] == pytest.approx(1.0)
    z, labels = linkage_matrix(steps)
    assert labels == ["a", "b", "c", "d"] and is_valid_linkage(z)
    expected = [[0, 1, 1 - 75 / 135, 2], [2, 3, 1 - 15 / 105, 2], [4, 5, 1.0, 4]]
    np.testing.assert_allclose(z, expected)


def test_a_small_class_swallowed_by_a_large_one_goes_first() -> None:
    # 'rare' (10 px) is mapped as 'big' 9 times: s = 18/19 ~ 0.95; the large pair exchanges
    # 300 of ~2000 px: s ~ 0.17 only.
    cm = np.array([[1, 9, 0], [0, 900, 150], [0, 150, 900]])
    steps = agglomerate(ConfusionTable.build(cm, [5, 6, 7], ["rare", "big", "other"]))
    assert steps[1].merged == ((5,), (6,))
    assert steps[1].criterion == pytest.approx(9 / 10)  # u_rare = 10 + 1 - 1


def test_a_class_absent_from_the_reference_is_never_merged() -> None:
    # code 9: the chain's "no decision" column (never in the reference)
    cm = np.array([[50, 0, 50], [0, 100, 0], [0, 0, 0]])
    table = ConfusionTable.build(cm, [1, 2, 9], ["a", "b", "no decision"])
    steps = agglomerate(table)
    assert [s.n_classes for s in steps] == [2, 1]
    assert steps[-1].groups == ((1, 2), (9,))
    assert steps[-1].scores.overall_accuracy == pytest.approx(150 / 200)
    result = min_f1_merges(table, 0.8)  # F1(a) = 100/150: its errors are all with column 9
    assert result.proposals == () and result.stuck == ("a",) and not result.reached


# --- minimum F1 -----------------------------------------------------------------------------


def test_min_f1_merges_the_two_mutually_confused_classes_with_the_hand_computed_f1() -> None:
    cm = np.array([[40, 30, 5, 0], [25, 50, 0, 0], [2, 0, 100, 3], [0, 0, 6, 200]])
    table = ConfusionTable.build(cm, [1, 2, 3, 4], ["A", "B", "C", "D"])
    # F1(A) = 2*40/(67+75), F1(B) = 100/155, F1(C) = 200/216, F1(D) = 400/409
    result = min_f1_merges(table, 0.8)
    assert len(result.proposals) == 1 and result.reached
    p = result.proposals[0]
    assert (p.low_name, p.partner_name, p.exchanged) == ("A", "B", 55)
    assert p.low_f1 == pytest.approx(80 / 142) and p.partner_f1 == pytest.approx(100 / 155)
    # A+B: 145 correct of 150 reference, 147 mapped (C's 2 pixels mapped as A)
    assert p.merged_f1 == pytest.approx(290 / 297)
    assert p.overall_accuracy == pytest.approx((145 + 100 + 200) / cm.sum())
    # at 0.95, C (0.926) goes next: it exchanges 9 pixels with D, 7 with A+B
    stricter = min_f1_merges(table, 0.95)
    assert [(q.low_name, q.partner_name) for q in stricter.proposals] == [("A", "B"), ("C", "D")]
    assert stricter.proposals[1].merged_f1 == pytest.approx(618 / 625) and stricter.reached
    assert min_f1_merges(table, 0.5).proposals == ()


# --- hierarchy levels: from the matrix and from the rasters ---------------------------------


def _write(path: Path, array: np.ndarray) -> Path:
    profile = {"driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1,
               "dtype": "uint16", "crs": "EPSG:2154", "nodata": 0,
               "transform": from_origin(600000, 6400000, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint16), 1)
    return path


@pytest.fixture
def oso_rasters(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """SIMULATED 48 x 40 labels: errors mostly between siblings of the OSO hierarchy."""
    rng = np.random.default_rng(3)
    nom = read_hierarchy_csv(OSO)
    parent = nom.parent_mapping(2)
    ref = rng.integers(1, 24, (48, 40))
    siblings = {c: [d for d in nom.codes if parent[d] == parent[c]] for c in nom.codes}
    sib = np.vectorize(lambda c: rng.choice(siblings[int(c)]))(ref)
    produced = np.where(rng.random(ref.shape) < 0.3, sib, ref)
    produced = np.where(rng.random(ref.shape) < 0.05, rng.integers(1, 24, ref.shape), produced)
    ref[:3] = 0  # no-data rows
    ref[5, :7] = 50  # not a class of the hierarchy: ignored
    produced[10, :5] = 99  # not a class: left out
    produced[11, :4] = 0  # unclassified
    return _write(tmp_path / "map.tif", produced), _write(tmp_path / "ref.tif", ref), ref, produced


def test_hierarchy_levels_from_the_matrix_equal_the_remapped_rasters(oso_rasters) -> None:
    map_path, ref_path, ref, produced = oso_rasters
    nom = read_hierarchy_csv(OSO)
    cm = confusion_matrix(ref, produced, nom.codes)
    from_matrix = hierarchy_scores(ConfusionTable.build(cm, nom.codes), nom, OSO)
    from_rasters = raster_level_scores(map_path, ref_path, nom)
    assert [lv.level for lv in from_matrix] == ["level 1", "level 2", "classes"]
    for level, a, b in zip((1, 2, None), from_matrix, from_rasters.levels, strict=True):
        up = nom.parent_mapping(level) if level else {c: c for c in nom.codes}
        remap = np.vectorize(lambda v, up=up: up.get(int(v), 0))
        codes = sorted(set(up.values()))
        expected = confusion_matrix(remap(ref), remap(produced), codes)
        direct = scores(expected, codes)
        assert a.codes == b.codes == tuple(codes)  # every parent has pixels here
        assert np.array_equal(a.matrix, expected) and np.array_equal(b.matrix, expected)
        assert a.scores == b.scores
        assert a.scores.overall_accuracy == direct.overall_accuracy
        assert (a.scores.kappa, a.scores.mean_f1) == (direct.kappa, direct.mean_f1)
    assert from_matrix[0].scores.overall_accuracy > from_matrix[2].scores.overall_accuracy
    assert from_rasters.unknown_reference == 7
    labelled = (ref > 0) & (ref <= 23)
    assert from_rasters.unmapped_produced == int(np.sum(labelled & ~np.isin(produced, nom.codes)))


def test_a_class_missing_from_the_hierarchy_is_named_with_the_file() -> None:
    cm = np.diag([10, 20, 5])
    table = ConfusionTable.build(cm, [1, 2, 99], source="scores.json")
    with pytest.raises(InputError, match=r"hierarchy_oso\.csv: class code\(s\) \[99\]"):
        hierarchy_scores(table, read_hierarchy_csv(OSO), OSO)


# --- the command, through a subprocess ------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iota2_spot_s2.cli", "nomenclature", *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _evaluation_json(path: Path, cm: np.ndarray, codes: list[int]) -> Path:
    from iota2_spot_s2.evaluation import write_report

    paths = write_report(scores(cm, codes), cm, codes, path, title="simulated, test split")
    return paths["json"]


def test_command_writes_the_three_files_and_agrees_with_the_rasters(oso_rasters, tmp_path):
    map_path, ref_path, ref, produced = oso_rasters
    nom = read_hierarchy_csv(OSO)
    scores_json = _evaluation_json(tmp_path / "eval", confusion_matrix(ref, produced, nom.codes),
                                   list(nom.codes))  # fmt: skip
    out = tmp_path / "rep"
    done = _cli("--confusion", str(scores_json), "--hierarchy", str(OSO), "--map", str(map_path),
                "--reference", str(ref_path), "--min-f1", "0.8", "--data", "simulated",
                "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("nomenclature.json", "nomenclature.md", "nomenclature.html"):
        assert (out / name).is_file() and str(out / name) in done.stdout
    html = (out / "nomenclature.html").read_text()
    assert html.count("data:image/png;base64") == 2 and "SIMULATED" in html
    report = json.loads((out / "nomenclature.json").read_text())
    assert report["data_kind"] == "simulated"
    assert [m["n_classes"] for m in report["merges"]] == list(range(23, 0, -1))
    h = report["hierarchies"][0]
    assert h["rasters"]["agree_with_confusion"] is True
    assert [lv["n_classes"] for lv in h["levels"]] == [4, 9, 23]  # OSO: 4 groups, 9 subgroups
    assert report["min_f1"]["proposals"] and "SIMULATED" in done.stdout


def test_command_reads_a_non_square_otb_csv(tmp_path) -> None:
    csv = write_otb_confusion_csv(np.array([[30, 10, 2], [12, 40, 0]]), [1, 2],
                                  tmp_path / "confusion.csv", prod_codes=[1, 2, 3])  # fmt: skip
    done = _cli("--confusion", csv, "--data", "real", "--out", str(tmp_path / "rep"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "rep" / "nomenclature.json").read_text())
    assert report["codes"] == [1, 2, 3] and report["not_in_reference"] == [3]
    assert report["data_kind"] == "real"
    assert [m["n_classes"] for m in report["merges"]] == [2, 1]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    cm = np.array([[30, 10, 0], [12, 40, 3], [0, 2, 50]])
    not_matrix = tmp_path / "notes.txt"
    not_matrix.write_text("OA was fine\n")
    return {"good": _evaluation_json(tmp_path / "ok", cm, [1, 2, 3]),
            "alien": _evaluation_json(tmp_path / "alien", cm, [1, 2, 77]),
            "text": not_matrix, "missing": tmp_path / "nope.json"}  # fmt: skip


@pytest.mark.parametrize(("confusion", "extra", "needle"), [
    ("missing", [], "nope.json"),
    ("text", [], "notes.txt"),
    ("alien", ["--hierarchy", str(OSO)], "hierarchy_oso.csv: class code(s) [77]"),
    ("good", ["--min-f1", "1.5"], "--min-f1"),
    ("good", ["--map", "m.tif"], "--reference"),
])  # fmt: skip
def test_bad_input_gives_one_line_and_no_output(inputs, tmp_path, confusion, extra, needle):
    out = tmp_path / "rep"
    done = _cli("--confusion", str(inputs[confusion]), "--data", "real", "--out", str(out),
                *extra)  # fmt: skip
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1
    assert not out.exists()


def test_the_data_kind_is_required(inputs, tmp_path) -> None:
    done = _cli("--confusion", str(inputs["good"]), "--out", str(tmp_path / "rep"))
    assert done.returncode == 2 and "--data" in done.stderr
    assert not (tmp_path / "rep").exists()


# --- real data ------------------------------------------------------------------------------

SLOVENIA_HIERARCHY = """code,name,level1_code,level1_name
1,Cultivated Land,2,Agricultural areas
2,Forest,3,Forest and semi-natural areas
3,Grassland,3,Forest and semi-natural areas
4,Shrubland,3,Forest and semi-natural areas
8,Artificial Surface,1,Artificial surfaces
"""


def slovenia_rf_merges(shared_data: Path, folder: Path, seed: int = 0):
    """REAL data: the S2 NDVI random forest of the timeseries tests (forest ``seed``), scored on
    TEST blocks and analysed with min F1 0.7; also driven by ``benchmarks/threshold_sweep.py``."""
    from iota2_spot_s2.analysis.nomenclature_inputs import read_hierarchy
    from iota2_spot_s2.reference import TEST, split_blocks
    from iota2_spot_s2.timeseries import open_band_stack, s2_probabilities, train_s2_classifier

    data, codes = shared_data / "s2_slovenia_lulc", [1, 2, 3, 4, 8]
    series = open_band_stack(data / "NDVI_68dates.tif", mask=data / "CLM_68dates.tif")
    with rasterio.open(data / "LULC.tif") as src:
        labels = src.read(1)
    split = split_blocks(labels, block_size=10, seed=0)
    clf = train_s2_classifier(series, labels, split, kind="rf", class_codes=codes, seed=seed,
                              max_per_class=1000)  # fmt: skip
    produced = np.asarray(codes)[np.nanargmax(s2_probabilities(clf, series), axis=0)]
    cm = confusion_matrix(labels, produced, codes, mask=split == TEST)
    test_ref = np.where(split == TEST, labels, 0)
    hierarchy = folder / "hierarchy.csv"
    hierarchy.write_text(SLOVENIA_HIERARCHY)
    result = analyse(ConfusionTable.build(cm, codes, source="slovenia"), min_f1=0.7,
                     hierarchies=[(hierarchy, read_hierarchy(hierarchy))],
                     rasters=(_write(folder / "map.tif", produced),
                              _write(folder / "ref.tif", test_ref)))  # fmt: skip
    return result, cm


def test_real_slovenia_rf_confusion_is_analysed_and_rasters_agree(shared_data, tmp_path) -> None:
    """REAL data: the S2 NDVI random forest of the timeseries tests, scored on TEST blocks."""
    result, cm = slovenia_rf_merges(shared_data, tmp_path)
    oa = [s.scores.overall_accuracy for s in result.steps]
    assert oa[0] == pytest.approx(np.trace(cm) / cm.sum()) and np.all(np.diff(oa) >= 0)
    assert [s.n_classes for s in result.steps] == [5, 4, 3, 2, 1]
    assert result.hierarchies[0].rasters_agree is True
    assert result.min_f1 is not None and result.min_f1.reached
    final = result.min_f1.final.scores
    assert min(f for f, n in zip(final.f1, final.support, strict=True) if n > 0) >= 0.7
