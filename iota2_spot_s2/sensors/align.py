"""Bring a raster DataArray onto a :class:`~iota2_spot_s2.grid.Grid` by GDAL warping.

``align`` works on ``(..., y, x)`` DataArrays carrying ``crs`` and ``transform`` attrs (what every
reader of this package returns). Dask-backed input stays lazy: each output block is warped by
:func:`rasterio.warp.reproject` from the source window that covers it (plus a margin for the
resampling kernel), so a scene is never loaded whole. NumPy-backed input is warped in one call.

Resampling: ``None`` = average when coarsening, bilinear when refining (continuous data);
``"categorical"`` = mode when coarsening, nearest when refining; any GDAL name (``"nearest"``,
``"mode"``, ``"cubic"``...) is used as given. Float data come out float32 with NaN where there is
no source; integer data keep their dtype with ``attrs["nodata"]`` (default 0) there. A ``valid``
coord is warped too: an output pixel is valid only where all of its source footprint was valid
(and, for float data, its value is not NaN).
"""

from __future__ import annotations

import functools
import math
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors._raster import (
    choose_resampling,
    grid_attrs,
    grid_of,
    pixel_centres,
    resolution_ratio,
)

_KERNEL_RADIUS = {
    Resampling.cubic: 2,
    Resampling.cubic_spline: 2,
    Resampling.lanczos: 3,
}
_VALID_THRESHOLD = 0.999


def align(
    da_in: xr.DataArray,
    grid: Grid,
    resampling: str | Resampling | None = None,
    *,
    chunks: int | None = None,
) -> xr.DataArray:
    """Warp a ``(band, y, x)`` or ``(time, band, y, x)`` DataArray onto ``grid``.

    Args:
        da_in: Raster whose last two dims are ``y, x``, with a ``crs`` attr and pixel-centre
            ``y``/``x`` coords and/or a ``transform`` attr (coords win, so slices align right).
        grid: Target grid.
        resampling: See the module docstring.
        chunks: Output block size for dask input (default: the input's block size).

    Returns:
        The warped DataArray, lazy if the input was; ``crs``/``transform`` attrs and ``y``/``x``
        coords describe ``grid``.

    Raises:
        ValueError: If the input has no ``crs`` attr or no georeferencing, or its last dims are
            not ``y, x``.
    """
    if tuple(da_in.dims[-2:]) != ("y", "x"):
        raise ValueError(f"last two dims must be ('y', 'x'), got {da_in.dims}")
    src = grid_of(da_in)
    if src == grid:
        return da_in.assign_attrs(grid_attrs(grid))
    method = choose_resampling(src, grid, resampling)
    floating = np.issubdtype(da_in.dtype, np.floating)
    nodata = da_in.attrs.get("nodata")
    src_nodata = np.nan if floating else nodata
    fill = np.nan if floating else (0 if nodata is None else nodata)
    out_dtype = np.dtype(np.float32) if floating else da_in.dtype
    warp = _Warp(src, grid, method, chunks)
    data = warp(da_in.data, src_nodata, fill, out_dtype)
    ys, xs = pixel_centres(grid)
    coords: dict[Any, Any] = {
        name: coord
        for name, coord in da_in.coords.items()
        if "y" not in coord.dims and "x" not in coord.dims
    }
    coords.update(y=ys, x=xs)
    if "valid" in da_in.coords:
        valid_src = da_in.coords["valid"].data.astype(np.float32)
        valid = warp(valid_src, None, np.nan, np.dtype(np.float32)) >= _VALID_THRESHOLD
        if floating:
            valid = valid & ~_isnan(data)
        coords["valid"] = (da_in.dims, valid)
    attrs = {**da_in.attrs, **grid_attrs(grid)}
    return xr.DataArray(data, dims=da_in.dims, coords=coords, attrs=attrs, name=da_in.name)


def _isnan(data: Any) -> Any:
    return da.isnan(data) if isinstance(data, da.Array) else np.isnan(data)


class _Warp:
    """Warps arrays of one source grid onto one destination grid, eagerly or blockwise."""

    def __init__(self, src: Grid, dst: Grid, method: Resampling, chunks: int | None) -> None:
        self.src, self.dst, self.method, self.chunks = src, dst, method, chunks
        radius = _KERNEL_RADIUS.get(method, 1)
        self.pad = math.ceil(radius * max(1.0, resolution_ratio(src, dst))) + 2

    def __call__(
        self, data: Any, src_nodata: float | None, fill: float, dtype: np.dtype
    ) -> np.ndarray | da.Array:
        """Warp ``data`` (``(..., y, x)`` NumPy or dask) onto the destination grid."""
        if not isinstance(data, da.Array):
            return warp_array(
                np.asarray(data), self.src, self.dst, self.method, src_nodata, fill, dtype
            )
        size = int(self.chunks or max(data.chunksize[-2:]))
        row_edges = _edges(self.dst.height, size)
        col_edges = _edges(self.dst.width, size)
        lead_edges = [np.cumsum((0, *c)) for c in data.chunks[:-2]]

        def block(index: tuple[int, ...]) -> da.Array:
            lead, (i, j) = index[:-2], index[-2:]
            lead_slices = tuple(
                slice(int(e[k]), int(e[k + 1])) for e, k in zip(lead_edges, lead, strict=True)
            )
            window = Window(
                col_edges[j], row_edges[i],
                col_edges[j + 1] - col_edges[j], row_edges[i + 1] - row_edges[i],
            )  # fmt: skip
            return self._block(data, lead_slices, window, src_nodata, fill, dtype)

        shape = (*data.numblocks[:-2], len(row_edges) - 1, len(col_edges) - 1)
        return da.block(_nest(shape, block))

    def _block(
        self,
        data: da.Array,
        lead: tuple[slice, ...],
        window: Window,
        src_nodata: float | None,
        fill: float,
        dtype: np.dtype,
    ) -> da.Array:
        dst = self.dst.window_grid(window)
        lead_shape = tuple(s.stop - s.start for s in lead)
        shape = (*lead_shape, dst.height, dst.width)
        src_window = self._source_window(dst)
        if src_window is None:
            return da.full(shape, fill, dtype=dtype)
        rows, cols = src_window.toslices()
        piece = data[(*lead, rows, cols)]
        warp_piece = functools.partial(
            warp_array,
            src=self.src.window_grid(src_window),
            dst=dst,
            method=self.method,
            src_nodata=src_nodata,
            fill=fill,
            dtype=dtype,
        )
        return piece.rechunk(piece.shape).map_blocks(
            warp_piece,
            chunks=shape,
            dtype=dtype,
            meta=np.empty((0,) * len(shape), dtype=dtype),
            name=f"align-{uuid.uuid4().hex}",
        )

    def _source_window(self, dst: Grid) -> Window | None:
        """Source pixels needed for one destination block, padded and clipped; None if none."""
        left, bottom, right, top = dst.bounds
        if dst.crs != self.src.crs:
            left, bottom, right, top = transform_bounds(
                dst.crs, self.src.crs, left, bottom, right, top, densify_pts=21
            )
        win = from_bounds(left, bottom, right, top, self.src.transform)
        col0 = max(math.floor(win.col_off) - self.pad, 0)
        row0 = max(math.floor(win.row_off) - self.pad, 0)
        col1 = min(math.ceil(win.col_off + win.width) + self.pad, self.src.width)
        row1 = min(math.ceil(win.row_off + win.height) + self.pad, self.src.height)
        if col1 <= col0 or row1 <= row0:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)


def warp_array(
    array: np.ndarray,
    src: Grid,
    dst: Grid,
    method: Resampling,
    src_nodata: float | None,
    fill: float,
    dtype: np.dtype,
) -> np.ndarray:
    """Warp a NumPy ``(..., y, x)`` array lying on ``src`` onto ``dst`` with one GDAL call."""
    lead = array.shape[:-2]
    flat = array.reshape((-1, *array.shape[-2:]))
    out = np.full((flat.shape[0], dst.height, dst.width), fill, dtype=dtype)
    if flat.shape[0] and flat.size:
        with warnings.catch_warnings():  # rasterio warns on its in-memory datasets; spurious
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            reproject(
                source=flat,
                destination=out,
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=src_nodata,
                dst_transform=dst.transform,
                dst_crs=dst.crs,
                dst_nodata=fill,
                resampling=method,
            )
    return out.reshape((*lead, dst.height, dst.width))


def _edges(length: int, size: int) -> list[int]:
    return [*range(0, length, size), length]


def _nest(
    shape: tuple[int, ...], make: Callable[[tuple[int, ...]], Any], prefix: tuple[int, ...] = ()
) -> Any:
    if not shape:
        return make(prefix)
    return [_nest(shape[1:], make, (*prefix, i)) for i in range(shape[0])]
