"""Pixel samples for the Sentinel-2 classifiers: which pixels, and their features.

- :func:`sample_pixels`: the labelled pixels of one subset of the split raster (TRAIN, VAL or
  TEST), at most ``max_per_class`` per class, drawn at random (seeded) without replacement, like
  iota2's per-class sample caps. Classes with fewer pixels keep them all.
- :func:`pixel_features`: gap-filled spectro-temporal features of given pixels, reading the lazy
  series one window at a time (only windows holding samples are read).
- :func:`series_grid`: the 10 m grid of a series (windows: :func:`iota2_spot_s2.grid.iter_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.timeseries.features import compute_features
from iota2_spot_s2.timeseries.gapfill import gapfill

DEFAULT_WINDOW = 256


@dataclass(frozen=True)
class FeatureSpec:
    """How a series becomes features: gap-filling dates, bands, indices."""

    bands: tuple[str, ...]
    dates: tuple[str, ...]
    indices: tuple[str, ...]
    ndwi: str
    step_days: int


def series_grid(series: xr.DataArray) -> Grid:
    """The grid of a ``(..., y, x)`` series from its ``crs``/``transform`` attrs and coords."""
    t = Affine(*series.attrs["transform"][:6])
    xs, ys = series["x"].values, series["y"].values
    origin_x, origin_y = float(xs[0]) - t.a / 2, float(ys[0]) - t.e / 2
    transform = Affine(t.a, t.b, origin_x, t.d, t.e, origin_y)
    return Grid(CRS.from_user_input(series.attrs["crs"]), transform, xs.size, ys.size)


def read_window(series: xr.DataArray, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Values and validity ``(T, B, h, w)`` of one window (one dask pass for both)."""
    rows, cols = window.toslices()
    sub = series.isel(y=rows, x=cols)
    mask = sub.coords["valid"].data if "valid" in sub.coords else None
    values, valid = dask.compute(sub.data, mask)
    values = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(values) if valid is None else np.asarray(valid, dtype=bool)
    return values, valid


def features_of(
    values: np.ndarray, valid: np.ndarray, times: np.ndarray, spec: FeatureSpec
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, B, n)`` raw series -> ``(C, T_out, n)`` features and the ``(n,)`` usable flag.

    A pixel is usable when every band had at least one valid sample (its features are finite).
    """
    filled = gapfill(values, valid, times, out_dates=list(spec.dates), step_days=spec.step_days)
    cube = compute_features(filled.values, spec.bands, spec.dates, indices=spec.indices,
                            ndwi=spec.ndwi)  # fmt: skip
    usable = ~filled.no_valid_sample.any(axis=0) & np.isfinite(cube.values).all(axis=(0, 1))
    return cube.values, usable


def sample_pixels(
    labels: np.ndarray,
    split: np.ndarray,
    subset: int,
    class_codes: Sequence[int],
    *,
    max_per_class: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and class indices (position in ``class_codes``) of sampled pixels."""
    rows, cols, targets = [], [], []
    for k, code in enumerate(class_codes):
        r, c = np.nonzero((labels == code) & (split == subset))
        if max_per_class is not None and r.size > max_per_class:
            keep = np.sort(rng.choice(r.size, size=max_per_class, replace=False))
            r, c = r[keep], c[keep]
        rows.append(r)
        cols.append(c)
        targets.append(np.full(r.size, k, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(targets)


def pixel_features(
    series: xr.DataArray,
    rows: np.ndarray,
    cols: np.ndarray,
    spec: FeatureSpec,
    *,
    window: int = DEFAULT_WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, C, T)`` of the pixels ``(rows, cols)`` and their ``(n,)`` usable flag."""
    n = rows.size
    times = series["time"].values
    out: np.ndarray | None = None
    usable = np.zeros(n, dtype=bool)
    keys = (rows // window) * (series.sizes["x"] // window + 1) + cols // window
    for key in np.unique(keys):
        picked = np.nonzero(keys == key)[0]
        r0 = (rows[picked[0]] // window) * window
        c0 = (cols[picked[0]] // window) * window
        win = Window(c0, r0, min(window, series.sizes["x"] - c0),
                     min(window, series.sizes["y"] - r0))  # fmt: skip
        values, valid = read_window(series, win)
        pr, pc = rows[picked] - r0, cols[picked] - c0
        cube, ok = features_of(values[:, :, pr, pc], valid[:, :, pr, pc], times, spec)
        if out is None:
            out = np.full((n, *cube.shape[:2]), np.nan, dtype=np.float32)
        out[picked] = np.moveaxis(cube, -1, 0)
        usable[picked] = ok
    if out is None:
        raise ValueError("no pixel to extract")
    return out, usable
