"""Gap-filling: exact on linear signals, masks honoured, edges, date grid, real Slovenia data."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.windows import Window

from iota2_spot_s2.timeseries import (
    format_dates,
    gapfill,
    gapfill_series,
    open_band_stack,
    regular_dates,
)

DATES = np.array(
    ["2021-01-03", "2021-01-09", "2021-01-20", "2021-02-07", "2021-02-10", "2021-03-01",
     "2021-03-22", "2021-04-02"],
    dtype="datetime64[D]",
)  # fmt: skip


def _linear(days: np.ndarray, slope: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``offset + slope * (day - 2021-01-01)`` for every pixel: (T, P)."""
    t = (days - np.datetime64("2021-01-01")).astype(float)
    return offset[None] + slope[None] * t[:, None]


def test_regular_dates_every_ten_days_from_first_to_last() -> None:
    grid = regular_dates("2021-01-03", "2021-04-02")
    assert grid[0] == np.datetime64("2021-01-03")
    assert set(np.diff(grid).astype(int)) == {10}
    assert grid[-1] <= np.datetime64("2021-04-02") < grid[-1] + np.timedelta64(10, "D")
    assert format_dates(grid[:2]) == ["20210103", "20210113"]
    with pytest.raises(ValueError):
        regular_dates("2021-02-01", "2021-01-01")


def test_linear_signal_is_recovered_exactly_despite_masked_dates() -> None:
    rng = np.random.default_rng(0)
    slope, offset = rng.normal(size=50), rng.normal(size=50)
    values = _linear(DATES, slope, offset).astype(np.float32)
    valid = np.ones_like(values, dtype=bool)
    valid[1:-1] = rng.random((len(DATES) - 2, 50)) > 0.5  # first and last dates stay valid
    out = gapfill(values, valid, DATES)
    assert out.dates[0] == DATES[0] and set(np.diff(out.dates).astype(int)) == {10}
    expected = _linear(out.dates, slope, offset)
    np.testing.assert_allclose(out.values, expected, rtol=1e-5, atol=1e-4)
    assert not out.no_valid_sample.any()


def test_invalid_samples_are_never_used() -> None:
    rng = np.random.default_rng(1)
    values = rng.random((len(DATES), 3, 20)).astype(np.float32)
    valid = rng.random(values.shape) > 0.4
    valid[0] = True
    poisoned = np.where(valid, values, np.float32(1e30))
    nan_poisoned = np.where(valid, values, np.nan)
    clean = gapfill(values, valid, DATES).values
    np.testing.assert_array_equal(gapfill(poisoned, valid, DATES).values, clean)
    np.testing.assert_array_equal(gapfill(nan_poisoned, valid, DATES).values, clean)
    assert np.nanmax(clean) <= values.max()


def test_edges_repeat_the_nearest_valid_value_and_empty_series_are_flagged() -> None:
    values = np.arange(len(DATES), dtype=np.float32)[:, None].repeat(3, axis=1)
    valid = np.zeros_like(values, dtype=bool)
    valid[2:5, 0] = True  # pixel 0: valid on 01-20, 02-07, 02-10 only
    valid[3, 1] = True  # pixel 1: a single valid sample
    out = gapfill(values, valid, DATES)
    before = out.dates <= DATES[2]
    after = out.dates >= DATES[4]
    assert np.all(out.values[before, 0] == 2.0)
    assert np.all(out.values[after, 0] == 4.0)
    assert np.all(out.values[:, 1] == 3.0)
    assert np.isnan(out.values[:, 2]).all()
    assert out.no_valid_sample.tolist() == [False, False, True]


def test_same_day_samples_are_merged_by_averaging_valid_ones() -> None:
    dates = np.array(["2021-01-01", "2021-01-11", "2021-01-11", "2021-01-21"], "datetime64[D]")
    values = np.array([[0.0, 0.0], [4.0, 4.0], [8.0, 100.0], [0.0, 0.0]], dtype=np.float32)
    valid = np.array([[1, 1], [1, 1], [1, 0], [1, 1]], dtype=bool)
    out = gapfill(values, valid, dates)
    assert out.dates.tolist() == regular_dates("2021-01-01", "2021-01-21").tolist()
    np.testing.assert_allclose(out.values[1], [6.0, 4.0])


def test_gapfill_series_on_a_window_matches_the_whole_array() -> None:
    rng = np.random.default_rng(2)
    data = rng.random((len(DATES), 2, 12, 10)).astype(np.float32)
    ok = rng.random(data.shape) > 0.3
    series = xr.DataArray(
        da.from_array(data, chunks=(-1, -1, 5, 5)),
        dims=("time", "band", "y", "x"),
        coords={"time": DATES.astype("datetime64[ns]"), "band": ["B4", "B8"],
                "y": np.arange(12.0), "x": np.arange(10.0),
                "valid": (("time", "band", "y", "x"), da.from_array(ok, chunks=(-1, -1, 5, 5)))},
        attrs={"sensor": "test"},
    )  # fmt: skip
    whole = gapfill(data, ok, DATES)
    part = gapfill_series(series, Window(3, 4, 5, 6))
    np.testing.assert_array_equal(part.values, whole.values[:, :, 4:10, 3:8])
    assert part.attrs["gapfill_method"] == "linear"
    assert part.attrs["gapfill_dates"] == format_dates(whole.dates)
    assert part.attrs["sensor"] == "test"
    assert part.sizes == {"time": whole.dates.size, "band": 2, "y": 6, "x": 5}
    assert part["no_valid_sample"].dims == ("band", "y", "x")


def test_real_slovenia_ndvi_is_filled_without_touching_clear_samples(shared_data) -> None:
    folder = shared_data / "s2_slovenia_lulc"
    series = open_band_stack(folder / "NDVI_68dates.tif", mask=folder / "CLM_68dates.tif",
                             dates=folder / "dates.txt")  # fmt: skip
    with rasterio.open(folder / "NDVI_68dates.tif") as src:
        ndvi = src.read()
    with rasterio.open(folder / "CLM_68dates.tif") as src:
        clear = src.read() == 0
    lines = (folder / "dates.txt").read_text().split()
    days = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in lines], dtype="datetime64[D]")
    assert len(np.unique(days)) == len(days) - 1  # the 2015-12-08 pair
    filled = gapfill_series(series)
    out_days = filled["time"].values.astype("datetime64[D]")
    assert out_days[0] == days.min() and set(np.diff(out_days).astype(int)) == {10}
    assert filled.attrs["gapfill_dates"][0] == "20150711"
    values = filled.values[:, 0]
    has_valid = clear.any(axis=0)
    assert not np.isnan(values[:, has_valid]).any()
    checked = 0
    for k, day in enumerate(out_days):
        same = np.nonzero(days == day)[0]
        if same.size == 0:
            continue
        n_clear = clear[same].sum(axis=0)
        mean_clear = np.where(clear[same], ndvi[same], 0).sum(axis=0) / np.maximum(n_clear, 1)
        np.testing.assert_allclose(values[k][n_clear > 0], mean_clear[n_clear > 0], rtol=1e-6)
        checked += int((n_clear > 0).sum())
    assert checked > 100_000  # many grid dates fall on clear acquisitions
    poisoned = gapfill(np.where(clear, ndvi, np.float32(1e6)), clear, days)
    np.testing.assert_array_equal(poisoned.values, values)
