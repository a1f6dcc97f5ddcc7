"""Evaluate a class map raster against a reference raster, window by window (bounded memory).

Both rasters (and the optional mask, e.g. the split raster of
:func:`iota2_spot_s2.reference.split_blocks`) must lie on the same grid: same CRS, transform and
shape. Bring them onto one grid first (:func:`iota2_spot_s2.sensors.align`) — we never resample
silently here. Reference 0, and the reference file's own nodata value if it has another one, are
no-data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import rasterio
from rasterio.io import DatasetReader
from rasterio.windows import Window
from tqdm import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation.confusion import NODATA, ConfusionAccumulator
from iota2_spot_s2.grid import iter_windows

PathLike = str | os.PathLike[str]


def _open(path: PathLike) -> DatasetReader:
    try:
        return rasterio.open(path)
    except rasterio.RasterioIOError as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise InputError(path, f"cannot be read as a raster ({problem})") from exc


def _check_same_grid(ref: DatasetReader, other: DatasetReader, path: PathLike, what: str) -> None:
    if (ref.width, ref.height) != (other.width, other.height):
        raise InputError(
            path,
            f"{what} is {other.width}x{other.height} px but the reference is "
            f"{ref.width}x{ref.height} px: align it on the reference grid first",
        )
    if not ref.transform.almost_equals(other.transform, precision=1e-6):
        raise InputError(
            path,
            f"{what} transform {tuple(other.transform)[:6]} differs from the "
            f"reference's {tuple(ref.transform)[:6]}",
        )
    if ref.crs is not None and other.crs is not None and ref.crs != other.crs:
        raise InputError(path, f"{what} CRS {other.crs} differs from the reference's {ref.crs}")


def accumulate_rasters(
    reference_path: PathLike,
    produced_path: PathLike,
    codes: Sequence[int],
    *,
    mask: PathLike | np.ndarray | None = None,
    mask_values: Iterable[int] | None = None,
    window_size: int = 1024,
) -> ConfusionAccumulator:
    """Confusion counts of ``produced_path`` against ``reference_path``, read window by window.

    Args:
        reference_path: Reference label raster (band 1; 0 = no-data).
        produced_path: Class map (band 1) on the same grid.
        codes: Class codes, in matrix order.
        mask: Optional raster path or in-memory array on the same grid selecting pixels to
            evaluate, typically the split raster (1 train, 2 validation, 3 test).
        mask_values: Mask values to evaluate (e.g. ``[3]`` for the test split). ``None`` means
            every nonzero mask value.
        window_size: Side of the square read windows, in pixels.

    Returns:
        The filled :class:`ConfusionAccumulator` (matrix plus counts of unmapped pixels).

    Raises:
        InputError: If a raster cannot be read or the grids differ.

    """
    acc = ConfusionAccumulator(codes)
    selected = None if mask_values is None else np.asarray(sorted(set(mask_values)))
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(_open(reference_path))
        prod = stack.enter_context(_open(produced_path))
        _check_same_grid(ref, prod, produced_path, "produced map")
        read_mask = _mask_reader(mask, ref, stack)
        windows = list(iter_windows(ref.height, ref.width, window_size))
        for win in tqdm(windows, desc="evaluating", unit="window", disable=None, leave=False):
            keep = None
            if read_mask is not None:
                block = read_mask(win)
                keep = block != 0 if selected is None else np.isin(block, selected)
            acc.update(_read_reference(ref, win), prod.read(1, window=win), keep)
    return acc


def _mask_reader(
    mask: PathLike | np.ndarray | None, ref: DatasetReader, stack: contextlib.ExitStack
) -> Callable[[Window], np.ndarray] | None:
    """A function returning the mask block of a window, or ``None`` without a mask."""
    if mask is None:
        return None
    if isinstance(mask, np.ndarray):
        if mask.shape != (ref.height, ref.width):
            raise InputError(
                "<mask array>",
                f"shape {mask.shape} differs from the reference's {(ref.height, ref.width)}",
            )
        array = mask
        return lambda win: array[win.toslices()]
    src = stack.enter_context(_open(mask))
    _check_same_grid(ref, src, mask, "mask")
    return lambda win: src.read(1, window=win)


def _read_reference(src: DatasetReader, win: Window) -> np.ndarray:
    block = src.read(1, window=win)
    if src.nodata is not None and src.nodata != NODATA:
        block = np.where(block == src.nodata, NODATA, block)
    return block


def evaluate_rasters(
    reference_path: PathLike,
    produced_path: PathLike,
    codes: Sequence[int],
    *,
    mask: PathLike | np.ndarray | None = None,
    mask_values: Iterable[int] | None = None,
    window_size: int = 1024,
) -> np.ndarray:
    """Confusion matrix (rows = reference, columns = produced, ``codes`` order) of two rasters.

    Same arguments as :func:`accumulate_rasters`, which also returns the counts of labelled
    pixels the map left outside ``codes``.
    """
    acc = accumulate_rasters(
        reference_path,
        produced_path,
        codes,
        mask=mask,
        mask_values=mask_values,
        window_size=window_size,
    )
    return acc.matrix
