"""NumPy helpers shared by training and mapping (no torch, no package imports).

The band normalisation every reader of network inputs applies (training crops, map windows,
early fusion's Sentinel-2 windows).
"""

from __future__ import annotations

import numpy as np


def zero_nonfinite(array: np.ndarray) -> np.ndarray:
    """NaN and infinities set to 0, in place (``np.nan_to_num`` took 11 ms per 1152 px window)."""
    finite = np.isfinite(array)
    if not finite.all():
        np.copyto(array, 0.0, where=~finite)
    return array


def normalize(window: np.ndarray, band_mean: np.ndarray, band_std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per band (axis 0 or -3), NaN and infinities -> 0, float32."""
    shape = (-1, 1, 1)
    out = (window - band_mean.reshape(shape)) / band_std.reshape(shape)
    return zero_nonfinite(out.astype(np.float32, copy=False))
