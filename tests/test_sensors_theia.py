"""Theia Sentinel-2 L2A reading: the real Gers product, synthetic products and sensor_data trees."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors import (
    find_products,
    list_sensor_data,
    open_s2_timeseries,
    parse_product_name,
)
from tests.test_sensors_data import theia_name, write_theia_product, write_tif

GERS = "theia_l2a_gers/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"
THEIA_ORDER = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]


@pytest.fixture(scope="module")
def gers(shared_data: Path) -> Path:
    return shared_data / GERS


def band_file(product: Path, band: str) -> Path:
    return product / f"{product.name}_FRE_{band}.tif"


def test_parse_product_name() -> None:
    info = parse_product_name("/x/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9")
    assert info is not None
    assert info.platform == "SENTINEL2B"
    assert info.tile == "T30TYP"
    assert info.version == "1.9"
    assert info.date == datetime(2018, 10, 23, 10, 51, 7, 455000)
    assert parse_product_name("/x/LANDSAT8_20181023_L2A") is None


def test_gers_opens_lazily_with_theia_band_order(gers: Path) -> None:
    s2 = open_s2_timeseries(gers)
    assert list(s2.band.values) == THEIA_ORDER
    assert s2.dims == ("time", "band", "y", "x")
    assert s2.shape == (1, 10, 1170, 1198)
    assert isinstance(s2.data, da.Array)
    assert isinstance(s2.coords["valid"].data, da.Array)
    assert s2.dtype == np.float32
    assert s2.time.values[0] == np.datetime64("2018-10-23T10:51:07.455")
    with rasterio.open(band_file(gers, "B2")) as src:
        assert s2.attrs["transform"] == tuple(src.transform)[:6]
        assert rasterio.crs.CRS.from_wkt(s2.attrs["crs"]) == src.crs
        assert s2.x.values[0] == src.xy(0, 0)[0] and s2.y.values[0] == src.xy(0, 0)[1]
    small = s2.isel(y=slice(100, 110), x=slice(200, 205)).compute()
    assert small.shape == (1, 10, 10, 5) and np.isfinite(small.values).all()


def test_reflectance_is_theia_integer_over_10000(gers: Path) -> None:
    s2 = open_s2_timeseries(gers)
    rows, cols = np.array([0, 17, 600, 1169]), np.array([0, 999, 45, 1197])
    for band in ("B2", "B8"):
        with rasterio.open(band_file(gers, band)) as src:
            raw = src.read(1)
        got = s2.sel(band=band).isel(time=0).values[rows, cols]
        np.testing.assert_allclose(got, raw[rows, cols] / 10000.0, rtol=1e-6)
    window = s2.isel(y=slice(0, 300), x=slice(0, 300)).values
    assert np.nanmin(window) > -0.1 and np.nanmax(window) < 1.5


def test_clm_sets_valid_false_exactly_where_cloudy(gers: Path) -> None:
    s2 = open_s2_timeseries(gers)
    with rasterio.open(gers / "MASKS" / f"{gers.name}_CLM_R1.tif") as src:
        clm = src.read(1)
    assert set(np.unique(clm)) == {0, 11}
    valid_b2 = s2.valid.sel(band="B2").isel(time=0).values
    np.testing.assert_array_equal(valid_b2, clm == 0)
    b5 = s2.sel(band="B5").isel(time=0)
    np.testing.assert_array_equal(b5.valid.values, (clm == 0) & ~np.isnan(b5.values))


def test_20m_band_lands_where_gdal_reproject_puts_it(gers: Path) -> None:
    with rasterio.open(band_file(gers, "B2")) as r1, rasterio.open(band_file(gers, "B5")) as r2:
        # the 20 m grid starts half a 20 m pixel off the 10 m grid
        assert (r2.transform.c, r2.transform.f) == (r1.transform.c - 10, r1.transform.f + 10)
        expected = np.full(r1.shape, np.nan, dtype=np.float32)
        reproject(
            r2.read(1).astype(np.float32), expected,
            src_transform=r2.transform, src_crs=r2.crs, src_nodata=-10000,
            dst_transform=r1.transform, dst_crs=r1.crs, dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )  # fmt: skip
        r1_transform, raw20, t20 = r1.transform, r2.read(1).astype(float), r2.transform
    s2 = open_s2_timeseries(gers)
    got = s2.sel(band="B5").isel(time=0).values
    assert s2.attrs["transform"] == tuple(r1_transform)[:6]
    np.testing.assert_allclose(got, expected / 10000.0, rtol=1e-6, equal_nan=True)
    # an interior 10 m pixel by hand: bilinear weights from map coordinates
    i, j = 501, 601
    x = r1_transform.c + (j + 0.5) * r1_transform.a
    y = r1_transform.f + (i + 0.5) * r1_transform.e
    col, row = (x - t20.c) / t20.a, (y - t20.f) / t20.e
    c0, r0 = int(np.floor(col - 0.5)), int(np.floor(row - 0.5))
    fx, fy = col - 0.5 - c0, row - 0.5 - r0
    patch = raw20[r0 : r0 + 2, c0 : c0 + 2]
    weights = np.array([[(1 - fx) * (1 - fy), fx * (1 - fy)], [(1 - fx) * fy, fx * fy]])
    assert got[i, j] == pytest.approx((patch * weights).sum() / 10000.0, rel=1e-6)


def link_product(src: Path, dst_root: Path, skip: str) -> Path:
    dst = dst_root / src.name
    (dst / "MASKS").mkdir(parents=True)
    for path in src.rglob("*.tif"):
        if not path.name.endswith(skip):
            os.symlink(path, dst / path.relative_to(src))
    return dst


def test_theia_nodata_becomes_nan_and_invalid(gers: Path, tmp_path: Path) -> None:
    product = link_product(gers, tmp_path, skip="_FRE_B3.tif")
    with rasterio.open(band_file(gers, "B3")) as src:
        data, profile = src.read(1), src.profile
    data[10:20, 30:50] = -10000
    with rasterio.open(band_file(product, "B3"), "w", **profile) as dst:
        dst.write(data, 1)
    s2 = open_s2_timeseries(product).isel(time=0).sel(band="B3")
    values, valid = s2.values, s2.valid.values
    assert np.isnan(values[10:20, 30:50]).all() and not valid[10:20, 30:50].any()
    outside = np.ones(data.shape, bool)
    outside[10:20, 30:50] = False
    assert np.isfinite(values[outside]).all()
    np.testing.assert_allclose(values[outside], data[outside] / 10000.0, rtol=1e-6)


def test_sat_and_edg_masks(tmp_path: Path) -> None:
    sat, edg = np.zeros((40, 40), "uint8"), np.zeros((40, 40), "uint8")
    sat[5, 5] = 0b0010  # bit 1 = B3 saturated
    edg[30, 30] = 1
    product = write_theia_product(tmp_path, masks={"SAT_R1": sat, "EDG_R1": edg})
    s2 = open_s2_timeseries(product, chunks=16).isel(time=0)
    valid = s2.valid.values
    assert not valid[s2.get_index("band").get_loc("B3"), 5, 5]
    assert valid[s2.get_index("band").get_loc("B2"), 5, 5]
    # no SAT_R2: any R1 bit invalidates the 20 m bands
    assert not valid[s2.get_index("band").get_loc("B11"), 5, 5]
    assert not valid[:, 30, 30].any()
    assert valid[:4, 10, 10].all()


def test_products_sorted_in_time_and_warped_onto_first_grid(tmp_path: Path) -> None:
    late = write_theia_product(tmp_path, date="20200301-103000-000", seed=1)
    early = write_theia_product(tmp_path, date="20200101-103000-000", seed=2)
    shifted = write_theia_product(
        tmp_path, date="20200401-103000-000", origin=(500100.0, 4799900.0), seed=3
    )
    s2 = open_s2_timeseries([late, shifted, early], chunks=16)
    assert list(s2.time.values) == sorted(s2.time.values)
    assert s2.time.values[0] == np.datetime64("2020-01-01T10:30:00")
    assert s2.attrs["transform"][2:6:3] == (500000.0, 4800000.0)
    with rasterio.open(band_file(shifted, "B2")) as src:
        raw = src.read(1)
    b2 = s2.sel(band="B2").isel(time=2)
    # the shifted product starts 10 px east and 10 px south: map coordinates must agree
    x, y = float(b2.x[15]), float(b2.y[12])
    with rasterio.open(band_file(shifted, "B2")) as src:
        r, c = src.index(x, y)
    assert b2.values[12, 15] == pytest.approx(raw[r, c] / 10000.0)
    assert np.isnan(b2.values[:10, :]).all() and not b2.valid.values[:10, :].any()


def test_truncated_band_fails_at_compute_not_at_open(tmp_path: Path) -> None:
    product = write_theia_product(tmp_path)
    path = band_file(product, "B4")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    s2 = open_s2_timeseries(product)  # headers only: no error yet
    assert np.isfinite(s2.sel(band="B2").values).all()  # other bands read fine
    with pytest.raises(InputError, match="pixels cannot be read"):
        s2.sel(band="B4").compute()


def test_sensor_data_tree_listing(tmp_path: Path) -> None:
    root = tmp_path / "sensor_data"
    for tile, dates in {"T31TCJ": ["20200301-103000-000", "20200101-103000-000"],
                        "T30TYP": ["20190505-105000-123"]}.items():  # fmt: skip
        for date in dates:
            (root / tile / theia_name(date, tile)).mkdir(parents=True)
    (root / "T31TCJ" / "not_a_product").mkdir()
    (root / "README").mkdir()
    tiles = list_sensor_data(root)
    assert list(tiles) == ["T30TYP", "T31TCJ"]
    assert [i.date.month for i in tiles["T31TCJ"]] == [1, 3]
    assert tiles["T30TYP"][0].date == datetime(2019, 5, 5, 10, 50, 0, 123000)
    with pytest.raises(InputError, match="several tiles"):
        find_products(root)
    assert len(find_products(root / "T31TCJ")) == 2


def test_gers_folder_as_products_folder(shared_data: Path) -> None:
    tiles = list_sensor_data(shared_data / "theia_l2a_gers")
    assert list(tiles) == ["T30TYP"] and len(tiles["T30TYP"]) == 1


def test_grid_argument_coarsens_with_average(gers: Path) -> None:
    with rasterio.open(band_file(gers, "B2")) as src:
        raw = src.read(1, window=((0, 40), (0, 60))) / 10000.0
        left, top = src.transform.c, src.transform.f
    grid = Grid.from_bounds(src.crs, left, top - 400, left + 600, top, 20.0)
    s2 = open_s2_timeseries(gers, grid=grid)
    assert s2.shape == (1, 10, 20, 30)
    expected = raw.reshape(20, 2, 30, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(s2.sel(band="B2").values[0], expected, rtol=1e-5)


@pytest.mark.parametrize("product", ["SRE", "FRE"])
def test_folder_without_band_files(tmp_path: Path, product: str) -> None:
    empty = tmp_path / theia_name()
    (empty / "MASKS").mkdir(parents=True)
    with pytest.raises(InputError, match=f"no {product} band files"):
        open_s2_timeseries(empty, product=product)


def test_missing_sre_in_gers(gers: Path) -> None:
    with pytest.raises(InputError, match="SRE"):
        open_s2_timeseries(gers, product="SRE")


def test_missing_band_and_missing_path(tmp_path: Path) -> None:
    product = write_theia_product(tmp_path)
    band_file(product, "B8A").unlink()
    with pytest.raises(InputError, match="B8A"):
        open_s2_timeseries(product)
    with pytest.raises(InputError, match="does not exist"):
        open_s2_timeseries(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no Theia L2A product"):
        open_s2_timeseries(tmp_path / "empty")


def test_band_without_crs(tmp_path: Path) -> None:
    product = write_theia_product(tmp_path)
    path = band_file(product, "B2")
    with rasterio.open(path) as src:
        data, transform = src.read(1), src.transform
    write_tif(path, data, transform, None)
    with pytest.raises(InputError, match="no CRS"):
        open_s2_timeseries(product)


def test_r2_masks_serve_the_20m_bands(tmp_path: Path) -> None:
    clm_r1, clm_r2 = np.zeros((40, 40), "uint8"), np.zeros((20, 20), "uint8")
    clm_r1[0, 0] = 2  # cloudy in R1 only
    clm_r2[10, 10] = 2  # cloudy in R2 only: 10 m pixels 20-21 x 20-21
    product = write_theia_product(tmp_path, masks={"CLM_R1": clm_r1, "CLM_R2": clm_r2})
    valid = open_s2_timeseries(product).isel(time=0).valid
    b2, b5 = valid.sel(band="B2").values, valid.sel(band="B5").values
    assert not b2[0, 0] and b2[20:22, 20:22].all()
    assert b5[0, 0] and not b5[20:22, 20:22].any()
    assert b5[19, 20] and b5[22, 21]
