"""Single-variable time-series stacks (one band per date) as ``(time, band, y, x)`` series.

Some time series arrive as one GeoTIFF holding one variable at every date (an NDVI stack, an
eo-learn export, an iota2 ``userFeat`` raster) with an optional cloud-mask stack of the same
layout. :func:`open_band_stack` turns such a pair into the same shape of series that
:func:`iota2_spot_s2.sensors.open_s2_timeseries` returns: a lazy float32 DataArray with dims
``(time, band, y, x)`` (one band, named by ``band``), a boolean ``valid`` coord, and ``crs`` /
``transform`` / ``sensor`` attrs, so that gap-filling, features and classifiers accept both.

Dates come from ``dates`` (a sequence or a text file of ``YYYYMMDD`` lines) or else from the
band descriptions (ISO date-times). A sample is valid where the value is finite, differs from the
file's nodata, and the mask (if any) is not one of ``mask_invalid`` (default: any non-zero value).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.timeseries.gapfill import DateLike, as_days


class _StackSource:
    """Array-like ``(bands, rows, cols)`` view of a raster, for :func:`dask.array.from_array`."""

    def __init__(self, path: str, dtype: str) -> None:
        self.path = path
        with rasterio.open(path) as src:
            self.shape = (src.count, src.height, src.width)
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        indexes = list(range(bands[0] + 1, bands[1] + 1))
        with rasterio.open(self.path) as src:
            block = src.read(indexes, window=window, out_dtype=self.dtype)
        return block[:: bands[2], :: rows[2], :: cols[2]]


def _open_checked(path: Path) -> tuple[Grid, tuple[str | None, ...], float | None, str]:
    if not path.is_file():
        raise InputError(path, "does not exist")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(path, "raster has no CRS")
            grid = Grid(src.crs, src.transform, src.width, src.height)
            return grid, src.descriptions, src.nodata, src.dtypes[0]
    except rasterio.RasterioIOError as exc:
        raise InputError(path, f"cannot be read as a raster ({exc})") from exc


def _read_dates(
    path: Path, dates: Sequence[DateLike] | str | PathLike[str] | None, descriptions: tuple
) -> np.ndarray:
    if isinstance(dates, str | PathLike):
        lines = [line.strip() for line in Path(dates).read_text().splitlines() if line.strip()]
        return as_days(lines)
    if dates is not None:
        return as_days(list(dates))
    if any(d is None for d in descriptions):
        raise InputError(path, "bands have no descriptions: pass the dates")
    try:
        return np.array([np.datetime64(d) for d in descriptions], dtype="datetime64[ns]")
    except ValueError as exc:
        raise InputError(path, f"band descriptions are not dates ({exc})") from exc


def open_band_stack(
    path: str | PathLike[str],
    *,
    mask: str | PathLike[str] | None = None,
    dates: Sequence[DateLike] | str | PathLike[str] | None = None,
    band: str = "NDVI",
    sensor: str = "Sentinel-2",
    mask_invalid: Sequence[int] | None = None,
    chunks: int = 512,
) -> xr.DataArray:
    """Open a one-band-per-date raster (and its mask stack) as a lazy series.

    Args:
        path: Raster with one band per date.
        mask: Raster of the same grid and band count; non-valid samples where it holds one of
            ``mask_invalid`` (default: any non-zero value, e.g. ``1 = cloud``).
        dates: Dates, or a text file of ``YYYYMMDD`` lines; default the band descriptions.
        band: Name of the variable (the ``band`` coord), e.g. ``"NDVI"``.
        sensor: ``sensor`` attr.
        mask_invalid: Mask values that invalidate a sample.
        chunks: Dask chunk size in pixels.

    Returns:
        ``(time, band, y, x)`` float32 DataArray with a ``valid`` coord.

    Raises:
        InputError: Missing/unreadable files, mismatched grids or band counts, bad dates.
    """
    path = Path(path)
    grid, descriptions, nodata, dtype = _open_checked(path)
    times = _read_dates(path, dates, descriptions)
    if times.size != len(descriptions):
        raise InputError(path, f"{len(descriptions)} bands but {times.size} dates")
    values = _lazy(path, "float32", chunks)
    ok = da.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        ok &= values != np.float32(nodata)
    if mask is not None:
        ok &= _mask_ok(Path(mask), grid, len(descriptions), mask_invalid, chunks)
    t = grid.transform
    coords = {
        "time": times.astype("datetime64[ns]"),
        "band": [band],
        "y": t.f + (np.arange(grid.height) + 0.5) * t.e,
        "x": t.c + (np.arange(grid.width) + 0.5) * t.a,
        "valid": (("time", "band", "y", "x"), ok[:, None]),
    }
    attrs = {
        "crs": grid.crs.to_wkt(),
        "transform": tuple(Affine(*grid.transform))[:6],
        "sensor": sensor,
        "source": str(path),
    }
    return xr.DataArray(
        values[:, None], dims=("time", "band", "y", "x"), coords=coords, attrs=attrs, name=band
    )


def _lazy(path: Path, dtype: str, chunks: int) -> da.Array:
    source = _StackSource(str(path), dtype)
    return da.from_array(
        source, chunks=(source.shape[0], chunks, chunks), asarray=False, fancy=False, lock=False,
        meta=np.empty((0, 0, 0), dtype=dtype), name=f"stack-{path.name}-{path.stat().st_mtime_ns}",
    )  # fmt: skip


def _mask_ok(
    path: Path, grid: Grid, count: int, invalid: Sequence[int] | None, chunks: int
) -> da.Array:
    mask_grid, descriptions, _, dtype = _open_checked(path)
    if mask_grid != grid or len(descriptions) != count:
        raise InputError(path, "mask stack does not match the value stack (grid or band count)")
    values = _lazy(path, dtype, chunks)
    if invalid is None:
        return values == 0
    return ~da.isin(values, np.asarray(list(invalid)))
