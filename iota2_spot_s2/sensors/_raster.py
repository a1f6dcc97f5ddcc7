"""Lazy, windowed raster reading shared by the sensor readers.

A :class:`BandSource` is a tiny array-like (``shape``, ``dtype``, ``__getitem__``) standing for one
band of one file, either in its own pixels or warped by GDAL (``WarpedVRT``) onto a target
:class:`~iota2_spot_s2.grid.Grid`. Wrapped with :func:`dask.array.from_array` it becomes a lazy
array: a chunk opens the file, reads (or warps) only its own window, and closes the file again.
Nothing is read when the array is built, only file headers.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid

_COARSENING_TOLERANCE = 1e-6


def first_line(exc: BaseException) -> str:
    """The first line of an exception message (GDAL messages can be long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def open_raster(path: str | PathLike[str]) -> Iterator[DatasetReader]:
    """Open a raster with rasterio, turning GDAL open failures into :class:`InputError`."""
    if not os.path.exists(path):
        raise InputError(path, "does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"cannot be read as a raster ({first_line(exc)})") from exc
    with src:
        yield src


def dataset_grid(src: DatasetReader, path: str | PathLike[str]) -> Grid:
    """The grid of an open dataset; a raster without CRS is an :class:`InputError`."""
    if src.crs is None:
        raise InputError(path, "raster has no CRS")
    return Grid(src.crs, src.transform, src.width, src.height)


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` map coordinates of pixel centres of a north-up grid."""
    t = grid.transform
    xs = t.c + (np.arange(grid.width) + 0.5) * t.a
    ys = t.f + (np.arange(grid.height) + 0.5) * t.e
    return ys, xs


def grid_attrs(grid: Grid) -> dict[str, object]:
    """The ``crs`` (WKT) and ``transform`` (6-tuple) attributes every DataArray carries."""
    return {"crs": grid.crs.to_wkt(), "transform": tuple(grid.transform)[:6]}


def grid_of(array: xr.DataArray) -> Grid:
    """The grid of a ``(..., y, x)`` DataArray from its ``crs`` attr, coords and ``transform``.

    The ``y``/``x`` pixel-centre coords win over the ``transform`` attr, so that a sliced array
    (``isel``/``sel``) keeps a correct grid; the attr supplies the pixel size of one-pixel axes
    and absorbs float round-off (an origin within 1e-6 pixel of the attr's lattice snaps to it).

    Raises:
        ValueError: If the array has no ``crs`` attr, or neither coords nor ``transform``.
    """
    attrs = array.attrs
    if "crs" not in attrs:
        raise ValueError("DataArray needs a 'crs' attr to be aligned")
    crs = attrs["crs"] if isinstance(attrs["crs"], CRS) else CRS.from_user_input(attrs["crs"])
    height, width = int(array.shape[-2]), int(array.shape[-1])
    base = Affine(*attrs["transform"][:6]) if "transform" in attrs else None
    if "x" not in array.coords or "y" not in array.coords:
        if base is None:
            raise ValueError("DataArray needs 'x'/'y' coords or a 'transform' attr")
        return Grid(crs, base, width, height)
    xs, ys = array.coords["x"].values, array.coords["y"].values
    a = float(xs[1] - xs[0]) if xs.size > 1 else (base.a if base else None)
    e = float(ys[1] - ys[0]) if ys.size > 1 else (base.e if base else None)
    if a is None or e is None:
        raise ValueError("cannot tell the pixel size of a one-pixel axis without 'transform'")
    c, f = float(xs[0]) - a / 2, float(ys[0]) - e / 2
    if base is not None and math.isclose(a, base.a, rel_tol=1e-9):
        a, c = base.a, _snap(c, base.c, base.a)
    if base is not None and math.isclose(e, base.e, rel_tol=1e-9):
        e, f = base.e, _snap(f, base.f, base.e)
    return Grid(crs, Affine(a, 0.0, c, 0.0, e, f), width, height)


def _snap(origin: float, base_origin: float, step: float) -> float:
    offset = (origin - base_origin) / step
    return base_origin + round(offset) * step if abs(offset - round(offset)) < 1e-6 else origin


def read_under(
    dataset: DatasetReader,
    sub: Grid,
    fill: float,
    dtype: Any,
    bands: list[int] | None = None,
    margin: int = 2,
) -> tuple[np.ndarray, Affine] | None:
    """The source pixels under ``sub`` plus ``margin``, ``fill`` beyond the source's edges.

    The window is not clipped to the raster (a pixel outside it is ``fill``, i.e. no data), so
    warping it onto ``sub`` gives what a whole-raster warp gives at the footprint's edges.

    Returns:
        ``(array (bands, h, w) of dtype, its transform)``, or None if ``sub`` misses the raster.

    """
    left, bottom, right, top = transform_bounds(sub.crs, dataset.crs, *sub.bounds)
    exact = from_bounds(left, bottom, right, top, transform=dataset.transform)
    c0, r0 = math.floor(exact.col_off) - margin, math.floor(exact.row_off) - margin
    c1 = math.ceil(exact.col_off + exact.width) + margin
    r1 = math.ceil(exact.row_off + exact.height) + margin
    ic0, ir0 = max(c0, 0), max(r0, 0)
    ic1, ir1 = min(c1, dataset.width), min(r1, dataset.height)
    if ic1 <= ic0 or ir1 <= ir0:
        return None
    count = len(bands) if bands else dataset.count
    out = np.full((count, r1 - r0, c1 - c0), fill, dtype=dtype)
    inner = dataset.read(bands, window=Window(ic0, ir0, ic1 - ic0, ir1 - ir0))
    out[:, ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] = inner
    return out, dataset.transform @ Affine.translation(c0, r0)


def resolution_ratio(src: Grid, dst: Grid) -> float:
    """Destination pixel size over source pixel size (> 1 means coarsening)."""
    dst_res = (dst.res[0] + dst.res[1]) / 2
    if src.crs == dst.crs:
        src_res = (src.res[0] + src.res[1]) / 2
    else:
        left, bottom, right, top = transform_bounds(src.crs, dst.crs, *src.bounds, densify_pts=21)
        src_res = ((right - left) / src.width + (top - bottom) / src.height) / 2
    return dst_res / src_res


def choose_resampling(
    src: Grid, dst: Grid, requested: str | Resampling | None = None
) -> Resampling:
    """Pick the GDAL resampling for warping ``src`` onto ``dst``.

    Args:
        src: Source grid.
        dst: Destination grid.
        requested: ``None`` for continuous data (average when coarsening, bilinear otherwise),
            ``"categorical"`` (mode when coarsening, nearest otherwise), ``"mask"`` for
            quality masks where any flagged pixel must survive (max when coarsening, nearest
            otherwise), or any :class:`rasterio.enums.Resampling` member or name, used as given.

    Raises:
        ValueError: If ``requested`` names no GDAL resampling.
    """
    if isinstance(requested, Resampling):
        return requested
    coarsening = resolution_ratio(src, dst) > 1 + _COARSENING_TOLERANCE
    if requested is None:
        return Resampling.average if coarsening else Resampling.bilinear
    if requested == "categorical":
        return Resampling.mode if coarsening else Resampling.nearest
    if requested == "mask":
        return Resampling.max if coarsening else Resampling.nearest
    try:
        return Resampling[requested]
    except KeyError:
        names = ", ".join(["categorical", "mask", *Resampling.__members__])
        raise ValueError(f"unknown resampling {requested!r} (one of: {names})") from None


@dataclass(frozen=True)
class BandSource:
    """One band of one raster file, read in its own pixels or warped onto ``grid``.

    Attributes:
        path: Raster file (anything GDAL opens, e.g. a GeoTIFF or a DIMAP ``DIM_*.XML``).
        band: 1-based band index.
        out_dtype: dtype of what ``__getitem__`` returns.
        shape: ``(rows, cols)`` of the source (native) or of ``grid`` (warped).
        grid: Target grid, or ``None`` to read native pixels.
        resampling: GDAL resampling used when warping.
        src_nodata: Source value treated as missing when warping.
        fill: Value written where the warp has no source data.
    """

    path: str
    band: int
    out_dtype: str
    shape: tuple[int, int]
    grid: Grid | None = None
    resampling: Resampling = Resampling.nearest
    src_nodata: float | None = None
    fill: float | None = None

    @property
    def ndim(self) -> int:
        """Always 2."""
        return 2

    @property
    def dtype(self) -> np.dtype:
        """NumPy dtype of the returned blocks."""
        return np.dtype(self.out_dtype)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        """Read the window given by two slices (steps are applied after reading)."""
        rows, cols = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        window = Window(cols[0], rows[0], max(cols[1] - cols[0], 0), max(rows[1] - rows[0], 0))
        try:
            with rasterio.open(self.path) as src:
                if self.grid is None:
                    block = src.read(self.band, window=window, out_dtype=self.out_dtype)
                else:
                    with WarpedVRT(
                        src,
                        crs=self.grid.crs,
                        transform=self.grid.transform,
                        width=self.grid.width,
                        height=self.grid.height,
                        resampling=self.resampling,
                        src_nodata=self.src_nodata,
                        nodata=self.fill,
                        dtype=self.out_dtype,
                    ) as vrt:
                        block = vrt.read(self.band, window=window)
        except RasterioIOError as exc:
            raise InputError(self.path, f"pixels cannot be read ({first_line(exc)})") from exc
        return block[:: rows[2], :: cols[2]]

    def token(self) -> str:
        """Deterministic dask name: same file, band, grid and options -> same chunks."""
        stat = os.stat(self.path)
        grid = None
        if self.grid is not None:
            g = self.grid
            grid = (g.crs.to_wkt(), tuple(g.transform), g.width, g.height)
        return tokenize(
            os.path.abspath(self.path), stat.st_mtime_ns, stat.st_size, self.band,
            self.out_dtype, self.shape, grid, self.resampling.name,
            _nan_safe(self.src_nodata), _nan_safe(self.fill),
        )  # fmt: skip


def _nan_safe(value: float | None) -> object:
    return "nan" if value is not None and math.isnan(value) else value


def lazy(source: BandSource, chunks: int, prefix: str = "read") -> da.Array:
    """Wrap a :class:`BandSource` as a 2-D dask array of ``chunks`` x ``chunks`` blocks."""
    return da.from_array(
        source,
        chunks=(chunks, chunks),
        name=f"{prefix}-{source.token()}",
        meta=np.empty((0, 0), dtype=source.dtype),
        asarray=False,
        fancy=False,
        lock=False,
    )


def band_on_grid(
    path: str | PathLike[str],
    band: int,
    grid: Grid,
    chunks: int,
    *,
    resampling: str | Resampling | None,
    src_nodata: float | None,
    warped_dtype: str,
    fill: float,
) -> tuple[da.Array, Grid]:
    """A lazy band on ``grid``: native pixels when the file already lies on it, else warped.

    Returns:
        The 2-D dask array and the file's own grid.
    """
    with open_raster(path) as src:
        native = dataset_grid(src, path)
        native_dtype = src.dtypes[band - 1]
    if native == grid:
        source = BandSource(str(path), band, native_dtype, grid.shape)
    else:
        method = choose_resampling(native, grid, resampling)
        source = BandSource(
            str(path), band, warped_dtype, grid.shape, grid, method, src_nodata, fill
        )
    return lazy(source, chunks), native
