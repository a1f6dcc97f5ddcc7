"""Our label fusion against OTB's ``FusionOfClassifications``, pixel for pixel.

Class maps are seeded, random but structured: 8x8-pixel blocks of a "truth" over 4 classes (codes
2, 5, 7, 11), each source flipping 35 % of pixels at random (disagreements, ties) and losing
12 % to no-data. Confusion matrices are random with chosen extremes (precision 1, precision 0,
a negative kappa, identical matrices giving exactly equal beliefs).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from iota2_spot_s2.fusion import (
    fuse_labels,
    fuse_rasters,
    iota2_names,
    masses_of_belief,
    otb_fusion_of_classifications,
)

CODES = [2, 5, 7, 11]
SIZE = 64
UNDECIDED = 99
MOBS = ["precision", "recall", "accuracy", "kappa"]


def make_maps(seed: int, n_sources: int, unknown: float = 0.0) -> list[np.ndarray]:
    """Noisy copies of a blocky truth; ``unknown``: share of labels 13-15 (no class code)."""
    rng = np.random.default_rng(seed)
    codes = np.asarray(CODES)
    truth = codes[rng.integers(0, len(CODES), (8, 8))].repeat(8, 0).repeat(8, 1)
    maps = []
    for _ in range(n_sources):
        m = truth.copy()
        flip = rng.random(truth.shape) < 0.35
        m[flip] = codes[rng.integers(0, len(CODES), int(flip.sum()))]
        m[rng.random(truth.shape) < 0.12] = 0
        odd = rng.random(truth.shape) < unknown
        m[odd] = rng.integers(13, 16, int(odd.sum()))  # labels no confusion matrix knows
        maps.append(m.astype(np.uint8))
    return maps


def write_maps(tmp_path, maps: list[np.ndarray]) -> list:
    profile = {
        "driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "uint8",
        "crs": "EPSG:2154", "transform": Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 6800000.0),
    }  # fmt: skip
    paths = []
    for i, m in enumerate(maps):
        path = tmp_path / f"classif_{i}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(m, 1)
        paths.append(path)
    return paths


def random_confusions(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 40, (4, 4)) + np.diag(rng.integers(60, 200, 4)) for _ in range(n)]


def run_otb(tmp_path, paths, **kwargs) -> np.ndarray:
    out = tmp_path / f"otb_{kwargs.get('method')}_{kwargs.get('mob', '')}.tif"
    otb_fusion_of_classifications(
        paths, out, nodata_label=0, undecided_label=UNDECIDED, codes=CODES, **kwargs
    )
    with rasterio.open(out) as src:
        return src.read(1).astype(np.int64)


@pytest.mark.parametrize(("n_sources", "unknown"), [(2, 0.0), (3, 0.0), (3, 0.3)])
def test_majority_vote_matches_otb(tmp_path, need_otb, n_sources, unknown):
    maps = make_maps(n_sources, n_sources, unknown)
    expected = run_otb(tmp_path, write_maps(tmp_path, maps), method="majorityvoting")
    ours = fuse_labels(maps, CODES, "vote", ties="otb", undecided_label=UNDECIDED)
    np.testing.assert_array_equal(ours.classes, expected)
    assert (expected == UNDECIDED).sum() > 50  # the maps do hold ties
    assert ((expected == 0) & (np.stack(maps) > 0).any(axis=0)).any() == (n_sources == 3)
    assert np.isin(expected, [13, 14, 15]).any() == (unknown > 0)  # a voted non-class label


def test_vote_modes_differ_from_otb_only_where_documented(tmp_path, need_otb):
    maps = make_maps(3, 3)
    expected = run_otb(tmp_path, write_maps(tmp_path, maps), method="majorityvoting")
    stacked = np.stack(maps)
    has_nodata = (stacked == 0).any(axis=0)
    undecided = fuse_labels(maps, CODES, "vote", ties="undecided", undecided_label=UNDECIDED)
    differ = undecided.classes != expected
    # "undecided" differs from OTB only where a no-data source voted (OTB counts it as a label)
    assert differ.any() and not (differ & ~has_nodata).any()
    # e.g. (0, 0, c) -> OTB 0, ours c
    two_missing = (stacked == 0).sum(axis=0) == 2
    assert (expected[two_missing] == 0).all()
    np.testing.assert_array_equal(undecided.classes[two_missing], stacked.max(axis=0)[two_missing])
    # "probability" equals "undecided" except at ties, where it picks one of the tied labels
    prob = fuse_labels(maps, CODES, "vote", ties="probability", undecided_label=UNDECIDED)
    tie = undecided.classes == UNDECIDED
    np.testing.assert_array_equal(prob.classes[~tie], undecided.classes[~tie])
    assert tie.any() and (prob.classes[tie] != UNDECIDED).all()
    assert (prob.classes[tie][:, None] == stacked[:, tie].T).any(axis=1).all()


def ds_scenarios():
    """(name, maps, confusion matrices): each reaches a different branch of OTB's rule."""
    equal = random_confusions(10, 1) * 2  # identical matrices: equal masses, exact ties
    certain = random_confusions(11, 3)
    certain[0][:, 1] = 0  # code 5 produced only when right: precision 1
    certain[0][1, 1] = 30
    certain[2][:, 3] = 0  # code 11: precision 1 in another source (conflicting certainties)
    certain[2][3, 3] = 40
    certain[1][:, 2] = 0  # code 7 never right: precision 0
    certain[1][0, 2] = 10
    negative = random_confusions(12, 3)
    negative[1] = np.full((4, 4), 30) - np.diag([29] * 4)  # kappa < 0: OTB ignores the source
    return [
        ("two_equal", make_maps(20, 2), equal),
        ("three_certain", make_maps(21, 3, unknown=0.05), certain),
        ("three_unknown_labels", make_maps(23, 3, unknown=0.3), random_confusions(13, 3)),
        ("three_negative_kappa", make_maps(22, 3), negative),
    ]


@pytest.mark.parametrize("mob", MOBS)
@pytest.mark.parametrize("scenario", ds_scenarios(), ids=lambda s: s[0])
def test_dempster_shafer_matches_otb(tmp_path, need_otb, scenario, mob):
    _, maps, confusions = scenario
    paths = write_maps(tmp_path, maps)
    expected = run_otb(tmp_path, paths, method="dempstershafer", confusions=confusions, mob=mob)
    ours = fuse_labels(
        maps, CODES, "dempster_shafer_otb", confusions=confusions, mob=mob,
        undecided_label=UNDECIDED,
    )  # fmt: skip
    mismatch = ours.classes != expected
    assert not mismatch.any(), (
        f"{mismatch.sum()} pixels differ, first at {np.argwhere(mismatch)[0]}"
    )


def test_dempster_shafer_scenarios_reach_otb_special_cases(tmp_path, need_otb):
    """The OTB comparisons above are not vacuous: ties, certainties and null masses occur."""
    (_, maps2, equal), (_, maps3, certain), (_, odd_maps, odd_cms), _ = ds_scenarios()
    fused = run_otb(
        tmp_path, write_maps(tmp_path, odd_maps), method="dempstershafer", confusions=odd_cms
    )
    stacked = np.stack(odd_maps)
    distinct_unknown = (stacked[0] > 11) & (stacked[1] > 11) & (stacked[2] > 11)
    distinct_unknown &= (stacked[0] != stacked[1]) & (stacked[1] != stacked[2])
    distinct_unknown &= stacked[0] != stacked[2]
    assert distinct_unknown.any() and (fused[distinct_unknown] == UNDECIDED).all()
    shared_unknown = (stacked[0] > 11) & (stacked[0] == stacked[1]) & (stacked[2] == 0)
    assert shared_unknown.any() and (fused[shared_unknown] == 0).all()
    paths = write_maps(tmp_path, maps2)
    tied = run_otb(tmp_path, paths, method="dempstershafer", confusions=equal, mob="accuracy")
    disagree = (maps2[0] != maps2[1]) & (maps2[0] > 0) & (maps2[1] > 0)
    assert (tied[disagree] == UNDECIDED).all() and disagree.sum() > 500
    masses = masses_of_belief(np.stack(certain), "precision")
    assert masses[0, 1] == 1.0 and masses[2, 3] == 1.0 and masses[1, 2] == 0.0
    paths = write_maps(tmp_path, maps3)
    fused = run_otb(tmp_path, paths, method="dempstershafer", confusions=certain, mob="precision")
    stacked = np.stack(maps3)
    conflict = (stacked[0] == 5) & (stacked[2] == 11)  # two certain, different labels
    uncertain = [c for i, c in enumerate(CODES) if 0 < masses[1, i] < 1]
    combined = np.isin(stacked[1], uncertain)  # source 2 gives a mass in (0, 1)
    assert (conflict & ~combined).any() and (fused[conflict & ~combined] == UNDECIDED).all()
    # OTB's quirk: one label combined from uncertain sources wins over the certain ones
    assert (conflict & combined).any()
    np.testing.assert_array_equal(fused[conflict & combined], stacked[1][conflict & combined])


def test_fuse_rasters_on_class_maps_matches_otb(tmp_path, need_otb):
    maps = make_maps(30, 2)
    paths = write_maps(tmp_path, maps)
    confusions = random_confusions(31, 2)
    csvs = []
    for i, cm in enumerate(confusions):
        from iota2_spot_s2.evaluation import write_otb_confusion_csv

        csvs.append(write_otb_confusion_csv(cm, CODES, tmp_path / f"cm_{i}.csv"))
    expected = run_otb(tmp_path, paths, method="dempstershafer", confusions=csvs, mob="recall")
    out = fuse_rasters(
        paths, tmp_path / "classif", codes=CODES, rule="dempster_shafer_otb", confusions=csvs,
        mob="recall", undecided_label=UNDECIDED, names=iota2_names("T31TCJ", 1, 0), block=24,
    )  # fmt: skip
    assert out.paths["classes"].name == "Classif_T31TCJ_model_1_seed_0_DS.tif"
    with rasterio.open(out.paths["classes"]) as src:
        np.testing.assert_array_equal(src.read(1), expected)
    with rasterio.open(out.paths["choice"]) as src:
        choice = src.read(1)
    a, b = maps
    agree = (a == b) & (a > 0)
    assert (choice[agree] == 1).all()
    assert (choice[(a > 0) & (b == 0)] == 2).all() and (choice[(a == 0) & (b > 0)] == 3).all()
    assert (choice[expected == UNDECIDED] == 0).all()
