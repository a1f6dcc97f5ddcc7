"""Score a class map on a label raster, window by window, with unmapped labelled pixels as errors.

This is what ``fuse-classify run`` and ``fuse-classify evaluate`` score with: three rasters of
one grid (class map, labels, optional split) read in windows of ``window_size`` pixels, so
memory stays flat whatever the scene size (``benchmarks/bench_memory.py``).

Conventions (same counts as the whole-array computation they replace):

- reference 0, and the label raster's own nodata value, are no-data; with a split raster only
  the pixels whose split value is ``subset`` are scored;
- a labelled pixel whose map value is not one of ``codes`` (the map's nodata 0, an undecided
  pixel, an unknown class) is *unmapped*: it is counted in the "no decision" column, code
  :func:`no_decision_code` (``max(codes) + 1``), so a map with holes is scored on as many pixels
  as the others. That column never counts in the mean F1 (it holds no reference pixel);
- reference values outside ``codes`` are ignored (a ``max(codes) + 1`` reference value counts
  in the no-decision row, as it always did).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.windows import Window
from tqdm import tqdm

from iota2_spot_s2.evaluation.bootstrap import add_block_confusions
from iota2_spot_s2.evaluation.confusion import ConfusionAccumulator
from iota2_spot_s2.evaluation.rasters import _check_same_grid, _open, _read_reference
from iota2_spot_s2.grid import iter_windows

PathLike = str | os.PathLike[str]

#: Side of the square windows read at once (1 Mpx: a few MiB per array).
WINDOW_SIZE = 1024

#: GDAL block cache while scoring, MB: every block is read once, so a cache sized for the scene
#: (GDAL's default, 5 % of the RAM) would only make memory grow with it.
GDAL_CACHE_MB = 64


def no_decision_code(codes: Sequence[int]) -> int:
    """The code of the "no decision" column: one above the largest class code."""
    return max(int(c) for c in codes) + 1


@dataclass
class MapScore:
    """Confusion of a map on ``codes + [no decision]`` and the count of unmapped pixels.

    Attributes:
        codes: The class codes scored (without the no-decision code).
        matrix: ``(K + 1, K + 1)`` int64 counts; the last row and column are "no decision".
        unmapped: Selected labelled pixels (any nonzero label) the map left outside ``codes``.
        blocks: ``{(block_row, block_col): (K + 1, K + 1) matrix}`` per bootstrap block holding
            a labelled pixel (only with ``bootstrap_block``).

    """

    codes: list[int]
    matrix: np.ndarray
    unmapped: int = 0
    blocks: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @property
    def scored_codes(self) -> list[int]:
        """``codes`` followed by the no-decision code (the order of ``matrix``)."""
        return [*self.codes, no_decision_code(self.codes)]

    def block_matrices(self, *, with_no_decision: bool = True) -> np.ndarray:
        """``(n_blocks, K', K')`` matrices of the non-empty blocks, in row-major block order."""
        k = len(self.codes) + (1 if with_no_decision else 0)
        cms = [self.blocks[key][:k, :k] for key in sorted(self.blocks)]
        cms = [cm for cm in cms if cm.sum()]
        if not cms:
            return np.zeros((0, k, k), dtype=np.int64)
        return np.stack(cms)


def score_map(
    labels_path: PathLike,
    class_map_path: PathLike,
    codes: Sequence[int],
    *,
    split_path: PathLike | None = None,
    subset: int | None = None,
    bootstrap_block: int | None = None,
    window_size: int = WINDOW_SIZE,
) -> MapScore:
    """Confusion of ``class_map_path`` against ``labels_path`` with unmapped pixels as errors.

    Args:
        labels_path: Label raster (band 1; 0 and its nodata value are no-data).
        class_map_path: Class map (band 1) on the same grid.
        codes: Class codes, in matrix order.
        split_path: Optional split raster on the same grid.
        subset: The split value to score (needed with ``split_path``).
        bootstrap_block: Also keep one matrix per square block of that many pixels.
        window_size: Side of the read windows (rounded to a multiple of ``bootstrap_block``).

    Returns:
        The :class:`MapScore`.

    Raises:
        InputError: If a raster cannot be read or the grids differ.
        ValueError: With a split raster but no ``subset``, or bad codes.

    """
    if split_path is not None and subset is None:
        raise ValueError("a split raster needs the subset value to score")
    codes = [int(c) for c in codes]
    scored = [*codes, no_decision_code(codes)]
    acc = ConfusionAccumulator(scored)
    known = np.asarray(codes)
    result = MapScore(codes, acc.matrix)
    if bootstrap_block:
        window_size = bootstrap_block * max(1, window_size // bootstrap_block)
    for win, ref, prod in _windows(labels_path, class_map_path, split_path, subset, window_size):
        unmapped = (ref > 0) & ~np.isin(prod, known)
        result.unmapped += int(np.count_nonzero(unmapped))
        prod = np.where(unmapped, scored[-1], prod)
        acc.update(ref, prod)
        if bootstrap_block:
            add_block_confusions(
                result.blocks, ref, prod, scored, bootstrap_block, origin=(win.row_off, win.col_off)
            )
    result.matrix = acc.matrix
    return result


def _windows(
    labels_path: PathLike,
    class_map_path: PathLike,
    split_path: PathLike | None,
    subset: int | None,
    window_size: int,
) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Yield ``(window, reference block, class map block)``, reference 0 off the subset."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        ref = stack.enter_context(_open(labels_path))
        prod = stack.enter_context(_open(class_map_path))
        _check_same_grid(ref, prod, class_map_path, "class map")
        split = None
        if split_path is not None:
            split = stack.enter_context(_open(split_path))
            _check_same_grid(ref, split, split_path, "split raster")
        windows = list(iter_windows(ref.height, ref.width, window_size))
        for win in tqdm(windows, desc="scoring", unit="window", disable=None, leave=False):
            block = _read_reference(ref, win)
            if split is not None:
                block = np.where(split.read(1, window=win) == subset, block, 0)
            yield win, block, prod.read(1, window=win)


def present_codes(
    labels_path: PathLike,
    *,
    split_path: PathLike | None = None,
    subset: int | None = None,
    window_size: int = WINDOW_SIZE,
) -> list[int]:
    """The sorted nonzero label values of a raster (on one split subset), read by windows."""
    found: set[int] = set()
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        ref = stack.enter_context(_open(labels_path))
        split = None if split_path is None else stack.enter_context(_open(split_path))
        if split is not None:
            _check_same_grid(ref, split, split_path, "split raster")
        for win in iter_windows(ref.height, ref.width, window_size):
            block = _read_reference(ref, win)
            if split is not None:
                block = block[split.read(1, window=win) == subset]
            found.update(int(v) for v in np.unique(block) if v != 0)
    return sorted(found)


__all__ = ["MapScore", "no_decision_code", "present_codes", "score_map"]
