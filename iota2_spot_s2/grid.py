"""The grid: a CRS, an affine transform and a shape. Every raster we write lies on one.

Sensors are brought onto a grid by GDAL warping (:func:`iota2_spot_s2.sensors.align`), never by
hand-made index arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from iota2_spot_s2.errors import InputError


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Attributes:
        crs: Coordinate reference system.
        transform: Affine transform from (col, row) to map coordinates of pixel corners.
        width: Number of columns.
        height: Number of rows.

    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_raster(cls, path: str | PathLike[str]) -> Grid:
        """Read the grid of an existing raster file.

        Raises:
            InputError: If the file cannot be opened or has no CRS.

        """
        try:
            with rasterio.open(path) as src:
                crs, transform, width, height = src.crs, src.transform, src.width, src.height
        except rasterio.RasterioIOError as exc:
            raise InputError(path, f"cannot be read as a raster ({_first_line(exc)})") from exc
        if crs is None:
            raise InputError(path, "raster has no CRS")
        return cls(crs, transform, width, height)

    @classmethod
    def from_bounds(
        cls, crs: CRS | str | int, left: float, bottom: float, right: float, top: float, res: float
    ) -> Grid:
        """Build a grid of square ``res`` pixels covering the bounds (origin at top-left)."""
        width = max(1, math.ceil(round((right - left) / res, 6)))
        height = max(1, math.ceil(round((top - bottom) / res, 6)))
        return cls(_as_crs(crs), Affine(res, 0.0, left, 0.0, -res, top), width, height)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` as positive numbers."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        left, top = self.transform.c, self.transform.f
        right = left + self.transform.a * self.width
        bottom = top + self.transform.e * self.height
        return (left, min(bottom, top), right, max(bottom, top))

    def window_grid(self, window: Window) -> Grid:
        """The sub-grid covered by a pixel window of this grid."""
        return Grid(
            self.crs,
            window_transform(window, self.transform),
            int(window.width),
            int(window.height),
        )

    def with_resolution(self, res: float) -> Grid:
        """Same CRS and bounds, square pixels of size ``res`` (edges rounded outward)."""
        left, bottom, right, top = self.bounds
        return Grid.from_bounds(self.crs, left, bottom, right, top, res)

    def windows(self, size: int) -> Iterator[Window]:
        """Row-major windows of at most ``size`` x ``size`` pixels covering the grid."""
        return iter_windows(self.height, self.width, size)

    def profile(self, **kwargs: object) -> dict[str, object]:
        """A rasterio profile for writing on this grid; keyword arguments are added to it."""
        base: dict[str, object] = {
            "crs": self.crs,
            "transform": self.transform,
            "width": self.width,
            "height": self.height,
        }
        base.update(kwargs)
        return base


def iter_windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Row-major windows of at most ``size`` x ``size`` pixels covering ``height x width``."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def _as_crs(crs: CRS | str | int) -> CRS:
    if isinstance(crs, CRS):
        return crs
    if isinstance(crs, int):
        return CRS.from_epsg(crs)
    return CRS.from_user_input(crs)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
