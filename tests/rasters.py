"""Helpers for tests that write small rasters: one-band GeoTIFFs on EPSG:2154."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine


def write_band(
    path: Path,
    array: np.ndarray,
    nodata: float | None = None,
    *,
    transform: Affine,
    block_size: int | None = None,
) -> Path:
    """Write ``array`` as a one-band GeoTIFF in EPSG:2154 and return ``path``.

    Args:
        path: Where to write.
        array: The ``(height, width)`` band; its dtype is the file's.
        nodata: The file's no-data value, or None for none.
        transform: The affine transform of the pixel grid.
        block_size: Tiled in square blocks of this size (e.g. 64, for windowed readers);
            None keeps GDAL's default layout (strips).

    """
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": "EPSG:2154",
        "transform": transform,
        "nodata": nodata,
    }
    if block_size is not None:
        profile.update(tiled=True, blockxsize=block_size, blockysize=block_size)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path
