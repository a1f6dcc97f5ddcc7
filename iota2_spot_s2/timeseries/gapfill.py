"""Temporal gap-filling of a ``(time, ...)`` series onto a regular date grid, like iota2's.

iota2 resamples every Sentinel-2 pixel series onto dates spaced ``temporalResolution`` days
(10 by default) from the first to the last acquisition, interpolating linearly in time between
the cloud-free samples (OTB ``ImageTimeSeriesGapFilling``, ``it=linear``). This module does the
same in vectorised numpy:

- **Input**: values ``(T, ...)`` (any trailing dims, e.g. ``(band, y, x)``), a validity mask of
  the same shape (``True`` = usable sample: not cloudy, not nodata, not saturated) and ``T``
  acquisition dates. Dates are taken at day resolution; samples acquired on the same day (two
  products of one orbit, e.g. Slovenia's 2015-12-08 pair) are merged first: their valid values
  are averaged and the merged sample is valid if any of them is.
- **Rule** for an output date ``d`` and one series: the nearest valid samples before (``t0``,
  ``v0``) and after (``t1``, ``v1``) ``d`` (a sample *on* ``d`` is both) give
  ``v0 + (d - t0) / (t1 - t0) * (v1 - v0)``. Before the first valid sample or after the last one
  the nearest valid value is repeated (no extrapolation). A series without any valid sample
  becomes NaN at every date and is flagged in ``no_valid_sample``. Invalid samples are never
  read: their values (NaN, fill values, anything) cannot leak into the result.
- **Output dates** default to :func:`regular_dates` from the first to the last *acquisition*
  (valid or not, like iota2's ``dateInterval``), every ``step_days`` days; pass ``out_dates``
  to reuse the dates of a trained model on another window or series.

:func:`gapfill` works on numpy arrays (bounded memory: series are processed in chunks);
:func:`gapfill_series` reads one window of a lazy ``(time, band, y, x)``
:class:`xarray.DataArray` (its ``valid`` coord is the mask) and returns a filled DataArray whose
attrs record ``gapfill_dates`` (``YYYYMMDD`` strings), ``gapfill_method="linear"``,
``gapfill_step_days`` and ``gapfill_input_dates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr
from rasterio.windows import Window

METHOD = "linear"
DEFAULT_STEP_DAYS = 10
_CHUNK_SERIES = 1 << 16

DateLike = Any  # anything np.datetime64 accepts: str, date, datetime, np.datetime64


@dataclass(frozen=True)
class GapFilled:
    """Result of :func:`gapfill`.

    Attributes:
        values: ``(T_out, ...)`` float32 filled values (NaN only where ``no_valid_sample``).
        dates: ``(T_out,)`` ``datetime64[D]`` output dates.
        no_valid_sample: ``(...)`` bool, True for series without any valid input sample.
        input_dates: ``(T_in,)`` ``datetime64[D]`` distinct input days, sorted.
    """

    values: np.ndarray
    dates: np.ndarray
    no_valid_sample: np.ndarray
    input_dates: np.ndarray


def as_days(dates: Sequence[DateLike] | np.ndarray) -> np.ndarray:
    """Dates as a 1-D ``datetime64[D]`` array (``YYYYMMDD`` strings are accepted too)."""
    arr = np.asarray(dates)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[D]").ravel()
    out = []
    for d in arr.ravel().tolist():
        if isinstance(d, str) and len(d) == 8 and d.isdigit():
            d = f"{d[:4]}-{d[4:6]}-{d[6:]}"
        out.append(np.datetime64(d, "D"))
    return np.array(out, dtype="datetime64[D]")


def format_dates(dates: Sequence[DateLike] | np.ndarray) -> list[str]:
    """Dates as iota2's ``YYYYMMDD`` strings."""
    return [str(d).replace("-", "") for d in as_days(dates)]


def regular_dates(
    first: DateLike, last: DateLike, step_days: int = DEFAULT_STEP_DAYS
) -> np.ndarray:
    """Every ``step_days`` days from ``first`` while not after ``last`` (``datetime64[D]``)."""
    if step_days < 1:
        raise ValueError(f"step_days must be >= 1, got {step_days}")
    start, stop = as_days([first, last])
    if stop < start:
        raise ValueError(f"last date {stop} is before first date {start}")
    return np.arange(start, stop + np.timedelta64(1, "D"), np.timedelta64(step_days, "D"))


def _merge_same_days(
    values: np.ndarray, valid: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by day and average the valid samples of each day: ``(values, valid, unique_days)``."""
    order = np.argsort(days, kind="stable")
    days, values, valid = days[order], values[order], valid[order]
    unique, starts = np.unique(days, return_index=True)
    if unique.size == days.size:
        return values, valid, unique
    total = np.add.reduceat(np.where(valid, values, 0).astype(np.float64), starts, axis=0)
    count = np.add.reduceat(valid.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = total / np.maximum(count, 1)
    return merged, count > 0, unique


def _interpolate(
    values: np.ndarray, valid: np.ndarray, t_in: np.ndarray, t_out: np.ndarray
) -> np.ndarray:
    """Linear gap-filling of ``(T_in, P)`` series onto ``t_out`` (float day numbers)."""
    n_in = t_in.size
    idx = np.arange(n_in)[:, None]
    prev_valid = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    next_valid = np.minimum.accumulate(np.where(valid, idx, n_in)[::-1], axis=0)[::-1]
    left = np.searchsorted(t_in, t_out, side="right") - 1  # last input day <= output day
    right = np.searchsorted(t_in, t_out, side="left")  # first input day >= output day
    before = np.where((left >= 0)[:, None], prev_valid[np.clip(left, 0, n_in - 1)], -1)
    after = np.where((right < n_in)[:, None], next_valid[np.clip(right, 0, n_in - 1)], n_in)
    has_before, has_after = before >= 0, after < n_in
    i0, i1 = np.clip(before, 0, n_in - 1), np.clip(after, 0, n_in - 1)
    v0 = np.take_along_axis(values, i0, axis=0).astype(np.float64)
    v1 = np.take_along_axis(values, i1, axis=0).astype(np.float64)
    t0, t1 = t_in[i0], t_in[i1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        span = t1 - t0
        weight = np.where(span > 0, (t_out[:, None] - t0) / np.where(span > 0, span, 1), 0.0)
        both = v0 + weight * (v1 - v0)
    out = np.where(has_before & has_after, both, np.where(has_before, v0, v1))
    out[~has_before & ~has_after] = np.nan
    return out.astype(np.float32)


def gapfill(
    values: np.ndarray,
    valid: np.ndarray | None,
    dates: Sequence[DateLike] | np.ndarray,
    *,
    out_dates: Sequence[DateLike] | np.ndarray | None = None,
    step_days: int = DEFAULT_STEP_DAYS,
) -> GapFilled:
    """Gap-fill series linearly in time onto a regular date grid (see the module docstring).

    Args:
        values: ``(T, ...)`` samples; the first axis is time.
        valid: Same shape, True where a sample may be used; ``None`` = finite values. A NaN
            value is never used, whatever the mask says.
        dates: ``T`` acquisition dates (any order; same-day samples are merged).
        out_dates: Output dates; default :func:`regular_dates` over the input dates.
        step_days: Spacing of the default output dates.

    Returns:
        A :class:`GapFilled` with ``(len(out_dates), ...)`` float32 values.

    Raises:
        ValueError: On inconsistent shapes or empty input.
    """
    values = np.asarray(values)
    valid = np.isfinite(values) if valid is None else np.asarray(valid, dtype=bool)
    days = as_days(dates)
    if values.ndim < 1 or values.shape[0] != days.size or days.size == 0:
        raise ValueError(f"values of shape {values.shape} do not match {days.size} dates")
    if valid.shape != values.shape:
        valid = np.broadcast_to(valid, values.shape)
    valid = valid & ~np.isnan(values) if values.dtype.kind == "f" else valid
    trailing = values.shape[1:]
    merged, ok, unique = _merge_same_days(
        values.reshape(days.size, -1), valid.reshape(days.size, -1), days
    )
    if out_dates is None:
        targets = regular_dates(unique[0], unique[-1], step_days)
    else:
        targets = as_days(out_dates)
    t_in = unique.astype(np.int64).astype(np.float64)
    t_out = targets.astype(np.int64).astype(np.float64)
    out = np.empty((targets.size, merged.shape[1]), dtype=np.float32)
    for start in range(0, merged.shape[1], _CHUNK_SERIES):
        sl = slice(start, start + _CHUNK_SERIES)
        out[:, sl] = _interpolate(merged[:, sl], ok[:, sl], t_in, t_out)
    return GapFilled(
        values=out.reshape((targets.size, *trailing)),
        dates=targets,
        no_valid_sample=np.asarray(~ok.any(axis=0)).reshape(trailing),
        input_dates=unique,
    )


def _window_slices(window: Window | tuple[slice, slice] | None) -> tuple[slice, slice]:
    if window is None:
        return slice(None), slice(None)
    if isinstance(window, Window):
        return window.toslices()
    rows, cols = window
    return rows, cols


def gapfill_series(
    series: xr.DataArray,
    window: Window | tuple[slice, slice] | None = None,
    *,
    out_dates: Sequence[DateLike] | np.ndarray | None = None,
    step_days: int = DEFAULT_STEP_DAYS,
) -> xr.DataArray:
    """Read one window of a ``(time, band, y, x)`` series and gap-fill it.

    The default output dates come from the *whole* series' ``time`` coord, so every window of
    one series gets the same dates.

    Args:
        series: Lazy or in-memory DataArray (e.g. from
            :func:`iota2_spot_s2.sensors.open_s2_timeseries`); its ``valid`` coord (same dims)
            marks usable samples, else finite values are used.
        window: Pixel window (``rasterio`` ``Window`` or ``(row_slice, col_slice)``); default
            the whole extent.
        out_dates: Output dates (e.g. a trained classifier's); default every ``step_days``.
        step_days: Spacing of the default output dates.

    Returns:
        ``(time, band, y, x)`` float32 DataArray on the output dates, coord
        ``no_valid_sample`` ``(band, y, x)``, attrs of ``series`` plus ``gapfill_dates``,
        ``gapfill_method``, ``gapfill_step_days`` and ``gapfill_input_dates``.
    """
    if out_dates is None:
        out_dates = regular_dates(
            series["time"].values.min(), series["time"].values.max(), step_days
        )
    rows, cols = _window_slices(window)
    sub = series.isel(y=rows, x=cols)
    mask = sub.coords["valid"].data if "valid" in sub.coords else None
    values, valid = dask.compute(sub.data, mask)
    filled = gapfill(values, valid, sub["time"].values, out_dates=out_dates, step_days=step_days)
    coords = {
        "time": filled.dates.astype("datetime64[ns]"),
        **{d: sub.coords[d].values for d in sub.dims[1:] if d in sub.coords},
        "no_valid_sample": (sub.dims[1:], filled.no_valid_sample),
    }
    attrs = {
        **series.attrs,
        "gapfill_method": METHOD,
        "gapfill_step_days": int(step_days),
        "gapfill_dates": format_dates(filled.dates),
        "gapfill_input_dates": format_dates(filled.input_dates),
    }
    return xr.DataArray(filled.values, dims=sub.dims, coords=coords, attrs=attrs, name=series.name)
