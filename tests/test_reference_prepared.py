"""Labels and split prepared window by window equal the whole-array computation (SIMULATED).

``prepare_reference`` never holds the scene (its memory is measured by
``benchmarks/bench_memory.py``); here small windows (32 px, not a divisor of the scene or of the
blocks) must give exactly the labels and split of the whole-array route: rasterize or read the
reference, drop image no-data, split by blocks (on the image grid or on a coarser Sentinel-2
grid carried back by nearest neighbour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.pipeline.prepared import prepare_reference, spread_over_blocks, warp_nearest
from iota2_spot_s2.pipeline.stages import read_label_raster
from iota2_spot_s2.reference import rasterize_reference, split_blocks, split_summary
from iota2_spot_s2.reference.split import BlockCounts
from iota2_spot_s2.sensors import open_spot

HEIGHT, WIDTH, RES = 150, 130, 1.5
ORIGIN = (700_000.0, 6_600_000.0)
GRID = Grid(CRS.from_epsg(2154), Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]), WIDTH, HEIGHT)


def _image(path: Path, rng: np.random.Generator) -> Path:
    """4-band uint16 image, nodata 0 in one band over a corner and in scattered pixels."""
    bands = rng.integers(100, 4000, (4, HEIGHT, WIDTH)).astype(np.uint16)
    bands[2, :20, :35] = 0
    bands[rng.integers(4), rng.random((HEIGHT, WIDTH)) < 0.02] = 0
    profile = GRID.profile(driver="GTiff", count=4, dtype="uint16", nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path


def _vector(path: Path, rng: np.random.Generator) -> Path:
    """Overlapping boxes with codes 1..5 (later features win where they overlap)."""
    x = ORIGIN[0] + rng.uniform(-20, WIDTH * RES, 60)
    y = ORIGIN[1] - rng.uniform(-20, HEIGHT * RES, 60)
    size = rng.uniform(5, 60, (2, 60))
    boxes = shapely.box(x, y - size[1], x + size[0], y)
    codes = rng.integers(1, 6, 60).astype(np.int32)
    pyogrio.raw.write(path, shapely.to_wkb(boxes), [codes], ["code"], driver="GPKG",
                      crs=GRID.crs.to_wkt(), geometry_type="Polygon")  # fmt: skip
    return path


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(7)
    return {"image": _image(root / "image.tif", rng), "vector": _vector(root / "ref.gpkg", rng)}


def _invalid(image_path: Path) -> np.ndarray:
    with rasterio.open(image_path) as src:
        return (src.read() == 0).any(axis=0)


@pytest.mark.parametrize("seed", [0, 3])
def test_windowed_labels_and_split_equal_the_whole_array_route(scene, tmp_path, seed) -> None:
    block = 17  # neither the window (32) nor the scene is a multiple of it
    prepared = prepare_reference(
        open_spot(scene["image"]), scene["vector"], "code", tmp_path, block_m=block * RES,
        seed=seed, window_size=32,
    )  # fmt: skip
    labels = rasterize_reference(scene["vector"], GRID, "code").labels
    labels = np.where(_invalid(scene["image"]), 0, labels)
    split = split_blocks(labels, block_size=block, seed=seed)
    np.testing.assert_array_equal(_read(prepared.labels_path), labels)
    np.testing.assert_array_equal(_read(prepared.split_path), split)
    assert set(np.unique(split)) == {0, 1, 2, 3}  # a split that could have differed
    assert prepared.report["split"] == split_summary(labels, split)
    np.testing.assert_array_equal(prepared.labels, labels)  # read back on demand
    np.testing.assert_array_equal(prepared.split, split)


def test_a_label_raster_keeps_its_no_data_and_the_ignored_code_out(scene, tmp_path) -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(1, 7, (HEIGHT, WIDTH)).astype(np.uint16)  # 6 = the raster's nodata
    raster = tmp_path / "labels_in.tif"
    with rasterio.open(raster, "w", **GRID.profile(driver="GTiff", count=1, dtype="uint16",
                                                   nodata=6)) as dst:  # fmt: skip
        dst.write(codes, 1)
    prepared = prepare_reference(
        open_spot(scene["image"]), raster, "code", tmp_path / "out", block_m=20 * RES, seed=1,
        ignore_label=5, window_size=32,
    )  # fmt: skip
    expected, _ = read_label_raster(raster, GRID, ignore_label=5)
    expected = np.where(_invalid(scene["image"]), 0, expected)
    got = _read(prepared.labels_path)
    np.testing.assert_array_equal(got, expected)
    assert not np.isin(got, [5, 6]).any() and np.isin(got, [1, 2, 3, 4]).all(where=got > 0)
    assert prepared.report["rasterize"]["ignored"] == [5, 6]


def test_split_drawn_on_the_sentinel2_grid_is_carried_window_by_window(scene, tmp_path) -> None:
    s2 = Grid(GRID.crs, Affine(10.0, 0, ORIGIN[0] - 4, 0, -10.0, ORIGIN[1] + 3), 21, 24)
    block = 4  # the smallest block prepare_reference draws
    prepared = prepare_reference(
        open_spot(scene["image"]), scene["vector"], "code", tmp_path, block_m=block * 10.0,
        seed=2, s2_grid=s2, window_size=32,
    )  # fmt: skip
    labels = np.where(
        _invalid(scene["image"]), 0, rasterize_reference(scene["vector"], GRID, "code").labels
    )
    s2_labels = rasterize_reference(scene["vector"], s2, "code").labels
    s2_split = split_blocks(s2_labels, block_size=block, seed=2)
    carried = warp_nearest(spread_over_blocks(s2_split, block), s2, GRID)
    np.testing.assert_array_equal(_read(prepared.split_path), np.where(labels > 0, carried, 0))
    np.testing.assert_array_equal(prepared.s2_split, s2_split)
    assert {1, 2, 3} <= set(np.unique(_read(prepared.split_path)).tolist())


def test_a_reference_that_labels_nothing_is_refused_and_writes_nothing(scene, tmp_path) -> None:
    empty = tmp_path / "far.gpkg"
    far = shapely.box(0, 0, 10, 10)  # far from the scene
    pyogrio.raw.write(empty, shapely.to_wkb(np.array([far])), [np.array([3], np.int32)],
                      ["code"], driver="GPKG", crs=GRID.crs.to_wkt(),
                      geometry_type="Polygon")  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no labelled pixel"):
        prepare_reference(open_spot(scene["image"]), empty, "code", out, block_m=30.0, seed=0)
    assert not out.exists()


def test_block_counts_do_not_depend_on_the_window_order_or_size() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, (90, 77)).astype(np.uint8)
    expected = split_blocks(labels, block_size=13, seed=4)
    counts = BlockCounts(labels.shape, 13)
    windows = [(r, c) for r in range(0, 90, 23) for c in range(0, 77, 31)]
    for r, c in reversed(windows):
        counts.add(labels[r : r + 23, c : c + 31], r, c)
    subsets = counts.assign(seed=4)
    got = np.zeros_like(expected)
    for r, c in windows:
        got[r : r + 23, c : c + 31] = counts.split_window(
            subsets, labels[r : r + 23, c : c + 31], r, c
        )
    np.testing.assert_array_equal(got, expected)
