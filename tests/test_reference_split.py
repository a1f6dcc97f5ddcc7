from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.reference import (
    TEST,
    TRAIN,
    VAL,
    assign_groups,
    rasterize_reference,
    split_blocks,
    split_polygons,
    split_summary,
)

TARGET = {TRAIN: 0.64, VAL: 0.16, TEST: 0.20}


def _shares(labels: np.ndarray, split: np.ndarray) -> dict[int, float]:
    labelled = labels != 0
    return {s: float((split[labelled] == s).mean()) for s in TARGET}


def _assert_groups_whole(groups: np.ndarray, labels: np.ndarray, split: np.ndarray) -> None:
    labelled = labels != 0
    for gid in np.unique(groups[labelled]):
        values = np.unique(split[labelled & (groups == gid)])
        assert len(values) == 1 and values[0] in TARGET, f"group {gid} got {values}"


@pytest.fixture(scope="module")
def lulc(shared_data: Path) -> np.ndarray:
    with rasterio.open(shared_data / "s2_slovenia_lulc" / "LULC.tif") as src:
        return src.read(1)


def test_blocks_on_real_lulc(lulc: np.ndarray) -> None:
    split = split_blocks(lulc, block_size=10, seed=0)
    assert split.dtype == np.uint8 and split.shape == lulc.shape
    assert (split[lulc == 0] == 0).all() and (split[lulc != 0] > 0).all()
    rows, cols = np.indices(lulc.shape)
    _assert_groups_whole((rows // 10) * 100 + cols // 10, lulc, split)
    for subset, share in _shares(lulc, split).items():
        assert abs(share - TARGET[subset]) <= 0.03
    np.testing.assert_array_equal(split, split_blocks(lulc, block_size=10, seed=0))
    assert not np.array_equal(split, split_blocks(lulc, block_size=10, seed=1))


def test_blocks_stratify_each_major_class(lulc: np.ndarray) -> None:
    split = split_blocks(lulc, block_size=10, seed=3)
    for code in (2, 3):  # classes covering >= 15 blocks
        in_class = lulc == code
        train_share = float((split[in_class] == TRAIN).mean())
        assert abs(train_share - 0.64) <= 0.05


def test_polygons_on_real_lulc(shared_data: Path) -> None:
    folder = shared_data / "s2_slovenia_lulc"
    grid = Grid.from_raster(folder / "LULC.tif")
    res = rasterize_reference(folder / "LULC.gpkg", grid, "LULC_ID", feature_ids=True)
    assert res.feature_ids is not None
    split = split_polygons(res.feature_ids, res.labels, seed=0)
    _assert_groups_whole(res.feature_ids, res.labels, split)
    shares = _shares(res.labels, split)
    assert all(share > 0.05 for share in shares.values())
    assert abs(shares[TRAIN] - 0.64) <= 0.08  # a few large forest polygons limit precision
    np.testing.assert_array_equal(split, split_polygons(res.feature_ids, res.labels, seed=0))


def test_synthetic_blocks_hit_every_class_target() -> None:
    rng = np.random.default_rng(42)
    coarse = rng.integers(1, 5, size=(25, 25))  # 4 classes in 8 x 8 patches
    labels = np.kron(coarse, np.ones((8, 8), dtype=np.int64)).astype(np.uint16)
    labels[rng.random(labels.shape) < 0.1] = 0
    split = split_blocks(labels, block_size=16, seed=7)
    for code in range(1, 5):
        in_class = labels == code
        for subset, target in TARGET.items():
            assert abs(float((split[in_class] == subset).mean()) - target) <= 0.04


def test_split_summary_counts(lulc: np.ndarray) -> None:
    split = split_blocks(lulc, block_size=10, seed=0)
    summary = split_summary(lulc, split)
    assert summary["labelled_pixels"] == int(np.count_nonzero(lulc))
    assert summary["unassigned_labelled_pixels"] == 0
    assert summary["subsets"]["val"]["pixels"] == int(((lulc != 0) & (split == VAL)).sum())
    assert sum(s["share"] for s in summary["subsets"].values()) == pytest.approx(1.0)
    for code, row in summary["classes"].items():
        assert row["total"] == int((lulc == int(code)).sum())
        assert row["train"] + row["val"] + row["test"] == row["total"]


def test_assign_groups_edge_cases() -> None:
    hist = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [0, 0]])
    out = assign_groups(hist, seed=0, fractions=(0.5, 0.0, 0.5))
    assert out[0] == 0 and out[5] == 0
    assert set(out[1:5]) <= {TRAIN, TEST}
    with pytest.raises(ValueError, match="fractions"):
        assign_groups(hist, seed=0, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="block_size"):
        split_blocks(np.ones((4, 4), np.uint16), block_size=0, seed=0)
    empty = split_blocks(np.zeros((5, 5), np.uint16), block_size=2, seed=0)
    assert not empty.any()
