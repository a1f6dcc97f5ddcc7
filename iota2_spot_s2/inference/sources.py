"""Window readers: the only place that touches the input image during inference.

A source reads one in-scene window at a time (never the whole scene) as float32 ``(C, h, w)`` plus
an ``(h, w)`` boolean *invalid* mask. Band values equal to the nodata value (GeoTIFF nodata / GDAL
mask for files; ``nodata`` or ``_FillValue`` attribute for DataArrays) are returned as NaN, so the
engine treats them like NaN (0 after normalisation). A pixel is invalid (nodata in the outputs)
when any band is NaN/nodata, or where the optional user ``valid_mask`` is False (the mask does not
change the input values the network sees).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.tiling import PixelWindow

MaskLike = np.ndarray | xr.DataArray


class WindowSource(Protocol):
    """What the engine needs from an input image."""

    count: int
    height: int
    width: int

    def read(
        self, window: PixelWindow, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read an in-scene window: ``(data float32 (C, h, w), invalid bool (h, w))``.

        ``data`` is a new array the caller owns (the engine normalises it in place); given
        ``out`` (float32 ``(C, h, w)``, possibly a strided view), fill it and return it.
        """
        ...


class ArraySource:
    """A numpy array or a (lazy) ``xr.DataArray`` with dims ``(band, y, x)``."""

    def __init__(self, array: np.ndarray | xr.DataArray, valid_mask: MaskLike | None = None):
        if array.ndim != 3:
            raise ValueError(f"expected a (band, y, x) array, got shape {array.shape}")
        self.array = array
        self.count, self.height, self.width = (int(n) for n in array.shape)
        self.nodata = _array_nodata(array)
        self.valid_mask = _check_mask(valid_mask, self.height, self.width)

    def read(
        self, window: PixelWindow, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read an in-scene window (loads only that window from a lazy DataArray)."""
        rows = slice(window.row, window.row_stop)
        cols = slice(window.col, window.col_stop)
        part = self.array[:, rows, cols]
        values = np.asarray(part.to_numpy() if isinstance(part, xr.DataArray) else part)
        if out is None:
            data = values.astype(np.float32)
        else:
            np.copyto(out, values, casting="unsafe")
            data = out
        if self.nodata is not None:
            data[data == self.nodata] = np.nan
        invalid = np.isnan(data).any(axis=0)
        return data, invalid | _mask_window(self.valid_mask, rows, cols)

    def close(self) -> None:
        """Nothing to release (the array belongs to the caller)."""


class RasterSource:
    """A raster file read window by window with rasterio (nodata and GDAL masks honoured)."""

    def __init__(self, path: str | os.PathLike[str], valid_mask: MaskLike | None = None):
        self.path = Path(path)
        try:
            self.dataset = rasterio.open(self.path)
        except rasterio.RasterioIOError as exc:
            raise InputError(path, f"cannot be read as a raster ({exc})") from exc
        self.count, self.height, self.width = (
            self.dataset.count,
            self.dataset.height,
            self.dataset.width,
        )
        self.valid_mask = _check_mask(valid_mask, self.height, self.width)
        # no nodata, no mask band: GDAL's masks are all valid, not worth reading per window
        flags = self.dataset.mask_flag_enums
        self.all_valid = all(MaskFlags.all_valid in band for band in flags)

    def read(
        self, window: PixelWindow, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read an in-scene window (GDAL converts to float32, into ``out`` when given)."""
        win = Window(window.col, window.row, window.width, window.height)
        if out is None:
            data = self.dataset.read(window=win, out_dtype=np.float32)
        else:
            self.dataset.read(window=win, out=out)
            data = out
        if not self.all_valid:
            data[self.dataset.read_masks(window=win) == 0] = np.nan
        invalid = np.isnan(data).any(axis=0)
        rows = slice(window.row, window.row_stop)
        cols = slice(window.col, window.col_stop)
        return data, invalid | _mask_window(self.valid_mask, rows, cols)

    def close(self) -> None:
        """Close the dataset."""
        self.dataset.close()


def open_source(
    image: str | os.PathLike[str] | xr.DataArray | np.ndarray, valid_mask: MaskLike | None = None
) -> ArraySource | RasterSource:
    """Wrap a path, DataArray or array in a window reader."""
    if isinstance(image, str | os.PathLike):
        if not Path(image).exists():
            raise InputError(image, "does not exist")
        return RasterSource(image, valid_mask)
    return ArraySource(image, valid_mask)


def source_grid(source: ArraySource | RasterSource) -> Grid:
    """The grid of an input: the file's, or the DataArray's ``crs``/``transform`` attributes."""
    if isinstance(source, RasterSource):
        if source.dataset.crs is None:
            raise InputError(source.path, "raster has no CRS")
        return Grid(source.dataset.crs, source.dataset.transform, source.width, source.height)
    attrs = getattr(source.array, "attrs", {})
    if "crs" not in attrs or "transform" not in attrs:
        raise InputError("<DataArray>", "needs 'crs' and 'transform' attributes to write a map")
    transform = attrs["transform"]
    affine = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
    return Grid(CRS.from_user_input(attrs["crs"]), affine, source.width, source.height)


def source_identity(source: ArraySource | RasterSource) -> str:
    """A string that changes whenever the input's content may have changed (for resuming).

    Files: resolved path, size and modification time. Dask-backed DataArrays: the dask graph name
    (deterministic for the same file and operations in most xarray backends; otherwise a rerun
    simply recomputes). In-memory arrays: a hash of their bytes.
    """
    if isinstance(source, RasterSource):
        stat = source.path.stat()
        parts: list[Any] = [str(source.path.resolve()), stat.st_size, stat.st_mtime_ns]
    else:
        parts = [_content_token(source.array), source.nodata]
    if source.valid_mask is not None:
        parts.append(_content_token(source.valid_mask))
    return repr(parts)


def _content_token(array: np.ndarray | xr.DataArray) -> str:
    data = array.data if isinstance(array, xr.DataArray) else array
    shape = tuple(int(n) for n in data.shape)
    name = getattr(data, "name", None)
    if isinstance(name, str) and hasattr(data, "dask"):
        return f"dask:{name}:{shape}"
    values = np.ascontiguousarray(np.asarray(data))
    return f"sha256:{hashlib.sha256(values.tobytes()).hexdigest()}:{values.dtype}:{shape}"


def _array_nodata(array: np.ndarray | xr.DataArray) -> float | None:
    if not isinstance(array, xr.DataArray):
        return None
    for key in ("nodata", "_FillValue"):
        value = array.attrs.get(key, array.encoding.get(key))
        if value is not None and not np.isnan(value):
            return float(value)
    return None


def _check_mask(mask: MaskLike | None, height: int, width: int) -> MaskLike | None:
    if mask is not None and tuple(mask.shape) != (height, width):
        raise ValueError(f"valid_mask shape {tuple(mask.shape)} != image shape {(height, width)}")
    return mask


def _mask_window(mask: MaskLike | None, rows: slice, cols: slice) -> np.ndarray | bool:
    if mask is None:
        return False
    part = mask[rows, cols]
    values = part.to_numpy() if isinstance(part, xr.DataArray) else np.asarray(part)
    return ~values.astype(bool)
