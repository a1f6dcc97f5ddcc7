"""SPOT 6/7 reading (GeoTIFF and DIMAP) and alignment of rasters onto grids."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors import align, open_s2_timeseries, open_spot
from tests.test_sensors_data import write_dimap, write_spot_tif, write_tif

L93 = CRS.from_epsg(2154)
GERS = "theia_l2a_gers/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"


def spot_data(bands: int = 4, rows: int = 48, cols: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 4000, (bands, rows, cols)).astype("uint16")


def test_spot_geotiff_ms(tmp_path: Path) -> None:
    data = spot_data()
    data[:, 0, :5] = 0  # nodata
    path = write_spot_tif(tmp_path / "IMG_SPOT6_MS_001_R1C1.TIF", data)
    spot = open_spot(path, chunks=16)
    assert isinstance(spot.data, da.Array)
    assert spot.dims == ("band", "y", "x") and spot.dtype == np.float32
    assert list(spot.band.values) == ["B0", "B1", "B2", "B3"]
    assert spot.attrs["sensor"] == "SPOT6/7"
    assert rasterio.crs.CRS.from_wkt(spot.attrs["crs"]).to_epsg() == 2154
    assert spot.attrs["transform"] == (6.0, 0.0, 600000.0, 0.0, -6.0, 6300000.0)
    values = spot.values
    assert np.isnan(values[:, 0, :5]).all()
    np.testing.assert_array_equal(values[:, 1:], data[:, 1:].astype(np.float32))


def test_spot_band_order_argument(tmp_path: Path) -> None:
    data = spot_data()  # stored R, G, B, NIR
    path = write_spot_tif(tmp_path / "rgbn.tif", data)
    spot = open_spot(path, band_order=("B2", "B1", "B0", "B3"))
    np.testing.assert_array_equal(spot.sel(band="B0").values, data[2])
    np.testing.assert_array_equal(spot.sel(band="B2").values, data[0])
    with pytest.raises(InputError, match="does not fit"):
        open_spot(path, band_order=("B0", "B1"))


def test_spot_panchromatic(tmp_path: Path) -> None:
    data = spot_data(bands=1)
    spot = open_spot(write_spot_tif(tmp_path / "IMG_SPOT7_P_R1C1.TIF", data, res=1.5))
    assert list(spot.band.values) == ["P"]
    np.testing.assert_array_equal(spot.values, data.astype(np.float32))


def test_spot_dimap_reorders_bands_from_xml(tmp_path: Path) -> None:
    data = spot_data(rows=20, cols=30)
    data[:, -1, -1] = 0
    xml = write_dimap(tmp_path / "PROD", data, ("B2", "B1", "B0", "B3"))
    for source in (xml, tmp_path / "PROD"):
        spot = open_spot(source)
        assert list(spot.band.values) == ["B0", "B1", "B2", "B3"]
        assert rasterio.crs.CRS.from_wkt(spot.attrs["crs"]).to_epsg() == 2154
        assert spot.attrs["date"].startswith("2019-06-02T10:41")
        values = spot.values
        np.testing.assert_array_equal(values[0, :-1], data[2, :-1])  # blue is file band 3
        np.testing.assert_array_equal(values[2, :-1], data[0, :-1])  # red is file band 1
        np.testing.assert_array_equal(values[3, :-1], data[3, :-1])
        assert np.isnan(values[:, -1, -1]).all()  # DIMAP NODATA special value 0


def test_spot_folder_with_two_dimaps(tmp_path: Path) -> None:
    write_dimap(tmp_path / "a", spot_data(), ("B2", "B1", "B0", "B3"))
    write_dimap(tmp_path / "b", spot_data(bands=1), ("P",))
    with pytest.raises(InputError, match="several DIMAP"):
        open_spot(tmp_path)
    spot = open_spot(next((tmp_path / "b").glob("DIM_*.XML")))
    assert list(spot.band.values) == ["P"]


def test_spot_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_spot(tmp_path / "missing.tif")
    no_crs = write_tif(tmp_path / "no_crs.tif", spot_data(), Affine(6, 0, 0, 0, -6, 0), None)
    with pytest.raises(InputError, match="no CRS"):
        open_spot(no_crs)
    garbage = tmp_path / "IMG_SPOT6_MS.tif"
    garbage.write_text("not a tiff")
    with pytest.raises(InputError, match="cannot be read"):
        open_spot(garbage)


def raster(data: np.ndarray, transform: Affine, crs: str = "EPSG:2154") -> xr.DataArray:
    rows, cols = data.shape[-2:]
    xs = transform.c + (np.arange(cols) + 0.5) * transform.a
    ys = transform.f + (np.arange(rows) + 0.5) * transform.e
    dims = ("band", "y", "x")[-data.ndim :] if data.ndim <= 3 else ("time", "band", "y", "x")
    attrs = {"crs": crs, "transform": tuple(transform)[:6]}
    return xr.DataArray(data, dims=dims, coords={"y": ys, "x": xs}, attrs=attrs)


def test_align_coarsening_is_block_mean(tmp_path: Path) -> None:
    data = np.random.default_rng(1).random((3, 64, 48)).astype(np.float32)
    src = raster(data, Affine(1.5, 0, 600000.0, 0, -1.5, 6300000.0))
    grid = Grid.from_bounds("EPSG:2154", 600000.0, 6300000.0 - 96, 600000.0 + 72, 6300000.0, 6.0)
    expected = data.reshape(3, 16, 4, 12, 4).mean(axis=(2, 4))
    eager = align(src, grid)
    assert eager.shape == (3, 16, 12)
    np.testing.assert_allclose(eager.values, expected, rtol=1e-5)
    lazy = align(src.chunk({"y": 16, "x": 16}), grid, chunks=5)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, expected, rtol=1e-5)
    assert lazy.attrs["transform"] == tuple(grid.transform)[:6]
    assert lazy.x.values[0] == 600003.0 and lazy.y.values[0] == 6300000.0 - 3.0


def test_align_average_ignores_nan_and_carries_valid() -> None:
    data = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    data[0, 0:4, 0:4] = np.nan  # a whole output block
    data[0, 4, 4] = np.nan  # one pixel of another block
    src = raster(data, Affine(1.5, 0, 0.0, 0, -1.5, 12.0))
    valid = np.ones(data.shape, bool)
    valid[0, 7, 0] = False
    src = src.assign_coords(valid=(src.dims, valid))
    out = align(src, Grid(L93, Affine(6, 0, 0.0, 0, -6, 12.0), 2, 2))
    assert np.isnan(out.values[0, 0, 0])
    assert out.values[0, 1, 1] == pytest.approx(np.nanmean(data[0, 4:8, 4:8]))
    # all-NaN block and the block holding an invalid pixel are invalid; a NaN alone is averaged out
    np.testing.assert_array_equal(out.valid.values[0], [[False, True], [False, True]])


def test_align_blockwise_equals_one_warp(shared_data: Path) -> None:
    s2 = open_s2_timeseries(shared_data / GERS).isel(y=slice(200, 300), x=slice(300, 420))
    left, top = float(s2.x[0]) - 5, float(s2.y[0]) + 5
    grid = Grid.from_bounds(s2.attrs["crs"], left + 3, top - 900, left + 1100, top - 7, 3.0)
    lazy = align(s2.sel(band=["B4", "B11"]), grid, chunks=64)
    eager = align(s2.sel(band=["B4", "B11"]).compute(), grid)
    assert isinstance(lazy.data, da.Array) and not isinstance(eager.data, da.Array)
    np.testing.assert_allclose(lazy.values, eager.values, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(lazy.valid.values, eager.valid.values)
    assert np.isfinite(eager.values).mean() > 0.95


def test_align_across_crs_nearest_samples_the_right_pixel(shared_data: Path) -> None:
    b2 = open_s2_timeseries(shared_data / GERS).isel(time=0).sel(band=["B2"])
    to_l93 = Transformer.from_crs(32630, 2154, always_xy=True)
    cx, cy = to_l93.transform(748900.0, 4842760.0)
    grid = Grid.from_bounds("EPSG:2154", cx - 500, cy - 500, cx + 500, cy + 500, 25.0)
    out = align(b2, grid, "nearest").values[0]
    back = Transformer.from_crs(2154, 32630, always_xy=True)
    source = b2.values[0]
    checked = 0
    for i in range(0, 40, 3):
        for j in range(0, 40, 7):
            x, y = back.transform(
                grid.transform.c + (j + 0.5) * 25, grid.transform.f - (i + 0.5) * 25
            )
            col, row = (x - 742910.0) / 10, (4848610.0 - y) / 10
            if min(col % 1, 1 - col % 1, row % 1, 1 - row % 1) < 0.2:
                continue  # too close to a pixel edge for GDAL's approximate transformer
            assert out[i, j] == source[int(row), int(col)]
            checked += 1
    assert checked > 20


def test_align_categorical_integers(tmp_path: Path) -> None:
    labels = np.repeat(np.repeat(np.array([[1, 2], [3, 4]], "uint8"), 4, 0), 4, 1)
    labels[0, 0] = 9  # minority inside the top-left block
    src = raster(labels[None], Affine(1.5, 0, 0.0, 0, -1.5, 12.0))
    coarse = align(src, Grid(L93, Affine(6, 0, 0.0, 0, -6, 12.0), 2, 2), "categorical")
    assert coarse.dtype == np.uint8
    np.testing.assert_array_equal(coarse.values[0], [[1, 2], [3, 4]])
    fine_grid = Grid(L93, Affine(0.75, 0, 0.0, 0, -0.75, 12.0), 16, 16)
    fine = align(src, fine_grid, "nearest").values[0]
    np.testing.assert_array_equal(fine, np.repeat(np.repeat(labels, 2, 0), 2, 1))


def test_align_same_grid_is_identity_and_needs_crs() -> None:
    src = raster(np.ones((1, 4, 4), np.float32), Affine(10, 0, 0, 0, -10, 40))
    grid = Grid(L93, Affine(10, 0, 0, 0, -10, 40), 4, 4)
    assert align(src, grid) is not src and align(src, grid).equals(src)
    with pytest.raises(ValueError, match="crs"):
        align(src.drop_attrs(), grid)
    with pytest.raises(ValueError, match="unknown resampling"):
        align(src, Grid(grid.crs, Affine(5, 0, 0, 0, -5, 40), 8, 8), "fancy")


def test_many_band_geotiff_keeps_file_band_order(tmp_path: Path) -> None:
    """12 bands are named B0..B11 and must come back in file order, not sorted as strings."""
    import rasterio
    from rasterio.transform import from_origin

    from iota2_spot_s2.sensors import open_spot

    data = np.arange(12, dtype=np.uint16)[:, None, None] * np.ones((12, 4, 5), np.uint16) + 1
    path = tmp_path / "twelve.tif"
    profile = {
        "driver": "GTiff",
        "width": 5,
        "height": 4,
        "count": 12,
        "dtype": "uint16",
        "crs": "EPSG:2154",
        "transform": from_origin(500000, 6300000, 3, 3),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    opened = open_spot(path)
    np.testing.assert_array_equal(opened.values[:, 0, 0], np.arange(12) + 1)
