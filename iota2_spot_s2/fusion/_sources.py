"""Raster sources of a fusion: probability maps or class maps, read window by window on one grid.

A source whose grid differs from the target is warped on the fly by GDAL
(``rasterio.warp.reproject``, window by window, see :class:`SourceReader`) — never resampled
by hand:

- probabilities: ``average`` when coarsening (a coarse pixel gets the mean probabilities of the
  fine pixels it covers, still summing to 1), ``bilinear`` when refining (smooth transitions
  between the coarse pixel centres; pass ``resampling="nearest"`` for blocky but unmixed
  values); any GDAL name may be forced;
- class maps: ``mode`` when coarsening, ``nearest`` when refining (labels are never mixed).

Probability rasters are iota2 ``PROBAMAP``-like: one band per class in increasing code order,
integers scaled 0–1000 (divided by 1000 here) or floats in [0, 1]. Their no-data is the file's
nodata value (65535 in our maps), NaN, or an all-zero vector; outside its extent a source has no
data. Band tags ``code`` (written by :mod:`iota2_spot_s2.inference`) are checked against the
expected codes when present.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors._raster import (
    choose_resampling,
    dataset_grid,
    open_raster,
    read_under,
)

PROBA_SCALE = 1000.0


@dataclass(frozen=True)
class RasterSource:
    """One input raster of a fusion.

    Attributes:
        path: The file.
        kind: ``"probabilities"`` (K bands) or ``"labels"`` (1 band class map).
        grid: The file's own grid.
        nodata: The file's nodata value, if any.
        scale: Divisor turning stored probabilities into [0, 1] (1 for float files).

    """

    path: Path
    kind: str
    grid: Grid
    nodata: float | None
    scale: float


def inspect_source(path: str | os.PathLike[str], codes: tuple[int, ...]) -> RasterSource:
    """Open ``path`` and tell its kind from its band count; check its class codes.

    Raises:
        InputError: If it is unreadable, has neither 1 nor K bands, or its band ``code`` tags
            list other classes than ``codes``.

    """
    with open_raster(path) as src:
        grid = dataset_grid(src, path)
        count, dtype, nodata = src.count, src.dtypes[0], src.nodata
        tags = [src.tags(b).get("code") for b in range(1, count + 1)]
    if count == len(codes):
        kind = "probabilities"
    elif count == 1:
        kind = "labels"
    else:
        raise InputError(
            path, f"{count} bands: expected {len(codes)} class probability bands or one class map"
        )
    found = _tag_codes(tags)
    if kind == "probabilities" and found is not None and tuple(found) != codes:
        raise InputError(
            path, f"bands hold class codes {found} but the fusion expects {list(codes)}"
        )
    floating = np.dtype(dtype).kind == "f"
    scale = 1.0 if floating or kind == "labels" else PROBA_SCALE
    return RasterSource(Path(path), kind, grid, nodata, scale)


def _tag_codes(tags: list[str | None]) -> list[int] | None:
    """The band ``code`` tags as integers, or None if any is missing or not a number."""
    try:
        return [int(float(t)) for t in tags if t is not None] if None not in tags else None
    except ValueError:
        return None


class SourceReader:
    """Reads windows of one source on the target grid (natively, or warped window by window).

    A source on another grid is warped by GDAL (``rasterio.warp.reproject``) one target window
    at a time, from the source pixels under that window plus a 2-pixel margin, no data beyond
    the source's edges: with the default methods (average / bilinear, mode / nearest) this gives
    what a whole-raster warp gives (checked in another CRS and across the footprint's edge by
    the tests); a forced kernel wider than 2 source pixels (lanczos when refining) can differ
    near window edges. Each source block is read once per window and memory does not depend on
    the scene (a whole-raster ``WarpedVRT`` re-read its source blocks unless GDAL's block cache
    held whole strips of the scene: 8x slower with the cache capped, measured by
    ``benchmarks/bench_iota2.py``).
    """

    def __init__(
        self,
        source: RasterSource,
        target: Grid,
        stack: contextlib.ExitStack,
        resampling: str | Resampling | None,
        nodata_label: int,
    ) -> None:
        self.source = source
        self.target = target
        self.nodata_label = nodata_label
        self.dataset = stack.enter_context(rasterio.open(source.path))
        self.warped = source.grid != target
        if source.kind == "labels":
            self.method = choose_resampling(source.grid, target, "categorical")
            self.src_nodata: float | None = nodata_label if source.nodata is None else source.nodata
        else:
            self.method = choose_resampling(source.grid, target, resampling)
            self.src_nodata = source.nodata

    def read_probabilities(self, window: Window) -> np.ndarray:
        """``(K, h, w)`` float64 in [0, 1]; NaN where the source has no data."""
        if self.warped:
            data = self._warp(window, np.float32, math.nan).astype(np.float64)
        else:
            data = self.dataset.read(window=window).astype(np.float64)
            nodata = self.source.nodata
            if nodata is not None and not math.isnan(nodata):
                data[:, (data == nodata).any(axis=0)] = np.nan
        return data / self.source.scale

    def read_labels(self, window: Window) -> np.ndarray:
        """``(h, w)`` int64 labels; the file's nodata value becomes ``nodata_label``."""
        if self.warped:
            return self._warp(window, np.int32, self.nodata_label, bands=[1])[0].astype(np.int64)
        data = self.dataset.read(1, window=window).astype(np.int64)
        nodata = self.source.nodata
        if nodata is not None and not math.isnan(nodata) and nodata != self.nodata_label:
            data[data == int(nodata)] = self.nodata_label
        return data

    def _warp(
        self, window: Window, dtype: Any, fill: float, bands: list[int] | None = None
    ) -> np.ndarray:
        """One target window warped from the source pixels under it (``fill`` elsewhere)."""
        sub = self.target.window_grid(window)
        count = len(bands) if bands else self.dataset.count
        out = np.full((count, sub.height, sub.width), fill, dtype=dtype)
        src_fill = fill if self.src_nodata is None else self.src_nodata
        under = read_under(self.dataset, sub, src_fill, dtype, bands)
        if under is None:
            return out
        data, transform = under
        nodata = self.src_nodata
        if np.dtype(dtype).kind == "f":  # probabilities: every no-data value becomes NaN
            if nodata is not None and not math.isnan(nodata):
                data[data == nodata] = np.nan
            nodata = math.nan
        elif nodata is None:
            nodata = fill
        reproject(
            data, out, src_transform=transform, src_crs=self.dataset.crs,
            dst_transform=sub.transform, dst_crs=sub.crs, resampling=self.method,
            src_nodata=nodata, dst_nodata=fill,
        )  # fmt: skip
        return out


def windows(grid: Grid, block: int) -> list[Window]:
    """Row-major blocks of at most ``block`` x ``block`` pixels covering ``grid``."""
    return list(grid.windows(block))
