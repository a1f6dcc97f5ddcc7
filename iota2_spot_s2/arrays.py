"""Small NumPy helpers shared by training and mapping (no torch, no package imports)."""

from __future__ import annotations

import numpy as np


def zero_nonfinite(array: np.ndarray) -> np.ndarray:
    """NaN and infinities set to 0, in place (``np.nan_to_num`` took 11 ms per 1152 px window)."""
    finite = np.isfinite(array)
    if not finite.all():
        np.copyto(array, 0.0, where=~finite)
    return array
