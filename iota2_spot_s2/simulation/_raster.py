"""Small raster helpers shared by the SPOT and Sentinel-2 renderers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio import features
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from iota2_spot_s2.grid import Grid


def burn(shapes: Sequence[tuple[BaseGeometry, int]], grid: Grid) -> np.ndarray:
    """Rasterise ``(geometry, value)`` pairs on ``grid`` (pixel centres; 0 elsewhere), int32."""
    if not shapes:
        return np.zeros(grid.shape, dtype=np.int32)
    return features.rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32"
    )


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes (shape must divide)."""
    *lead, h, w = array.shape
    blocks = array.reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1))


def shift(array: np.ndarray, drow: int, dcol: int, fill: float = 0.0) -> np.ndarray:
    """``out[r, c] = array[r + drow, c + dcol]``, ``fill`` outside the array."""
    out = np.full_like(array, fill)
    h, w = array.shape
    rs, re = max(0, -drow), min(h, h - drow)
    cs, ce = max(0, -dcol), min(w, w - dcol)
    if rs < re and cs < ce:
        out[rs:re, cs:ce] = array[rs + drow : re + drow, cs + dcol : ce + dcol]
    return out
