"""Confusion matrices from label arrays, in one shot or accumulated window by window.

Conventions (the same as OTB's ``ComputeConfusionMatrix`` and iota2):

- rows are **reference** classes, columns **produced** classes, both in the order of ``codes``;
- reference value 0 is no-data: those pixels are ignored;
- reference values that are neither 0 nor in ``codes`` are ignored and counted in
  :attr:`ConfusionAccumulator.unknown_reference`;
- produced values not in ``codes`` (the map's no-data 0, or a class the evaluation does not know)
  are left out of the matrix — like OTB's ``-nodatalabel`` — and counted per reference class in
  :attr:`ConfusionAccumulator.unmapped_produced`, so a report can say how many labelled pixels
  the map left unclassified. They do not lower the scores; report them next to the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NODATA = 0


def _check_codes(codes: Sequence[int]) -> np.ndarray:
    arr = np.asarray([int(c) for c in codes], dtype=np.int64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("codes must be a non-empty sequence of class codes")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"duplicate class codes in {arr.tolist()}")
    if (arr <= NODATA).any():
        raise ValueError(f"class codes must be positive (0 is the no-data value): {arr.tolist()}")
    return arr


class _CodeIndex:
    """Maps label values to their position in ``codes`` (-1 for values outside ``codes``)."""

    def __init__(self, codes: np.ndarray) -> None:
        self._codes = codes
        self._order = np.argsort(codes, kind="stable")
        self._sorted = codes[self._order]
        self._luts: dict[int, np.ndarray] = {}

    def _lut(self, size: int) -> np.ndarray:
        """Lookup table value -> index for 8/16-bit unsigned labels (the usual map dtypes)."""
        if size not in self._luts:
            lut = np.full(size, -1, dtype=np.int64)
            inside = self._codes < size
            lut[self._codes[inside]] = np.flatnonzero(inside)
            self._luts[size] = lut
        return self._luts[size]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = np.asarray(values).ravel()
        if flat.dtype.kind == "u" and flat.dtype.itemsize <= 2:
            return self._lut(2 ** (8 * flat.dtype.itemsize))[flat]
        if flat.dtype.kind == "f":
            bad = ~np.isfinite(flat) | (flat != np.round(flat))
            flat = np.where(bad, -1, flat).astype(np.int64)
        else:
            flat = flat.astype(np.int64, copy=False)
        pos = np.searchsorted(self._sorted, flat)
        pos_clipped = np.minimum(pos, self._sorted.size - 1)
        found = self._sorted[pos_clipped] == flat
        return np.where(found, self._order[pos_clipped], -1)


class ConfusionAccumulator:
    """Sum confusion counts over windows so that large rasters never sit in memory at once.

    Example:
        >>> acc = ConfusionAccumulator([1, 2])
        >>> acc.update(np.array([1, 2, 0]), np.array([1, 1, 2]))
        >>> acc.matrix.tolist()
        [[1, 0], [1, 0]]

    Attributes:
        codes: Class codes, in matrix order.
        matrix: ``(K, K)`` int64 counts, rows = reference, columns = produced.
        unmapped_produced: ``(K,)`` int64, per reference class, pixels whose produced value is
            not in ``codes`` (left out of ``matrix``).
        unknown_reference: Pixels whose reference value is neither 0 nor in ``codes`` (ignored).

    """

    def __init__(self, codes: Sequence[int]) -> None:
        arr = _check_codes(codes)
        self.codes: tuple[int, ...] = tuple(int(c) for c in arr)
        self._index = _CodeIndex(arr)
        k = arr.size
        self.matrix = np.zeros((k, k), dtype=np.int64)
        self.unmapped_produced = np.zeros(k, dtype=np.int64)
        self.unknown_reference = 0

    def update(
        self, reference: np.ndarray, produced: np.ndarray, mask: np.ndarray | None = None
    ) -> None:
        """Add the pixels of one window.

        Args:
            reference: Reference labels (0 = no-data), any integer dtype, any shape.
            produced: Produced labels, same shape.
            mask: Optional boolean array, same shape: only ``True`` pixels are counted.

        """
        reference = np.asarray(reference)
        produced = np.asarray(produced)
        if reference.shape != produced.shape:
            raise ValueError(
                f"shape mismatch: reference {reference.shape}, produced {produced.shape}"
            )
        ref_idx = self._index(reference)
        prod_idx = self._index(produced)
        keep = reference.ravel() != NODATA
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != reference.shape:
                raise ValueError(f"shape mismatch: mask {mask.shape}, reference {reference.shape}")
            keep &= mask.ravel()
        self.unknown_reference += int(np.count_nonzero(keep & (ref_idx < 0)))
        keep &= ref_idx >= 0
        outside = keep & (prod_idx < 0)
        k = len(self.codes)
        self.unmapped_produced += np.bincount(ref_idx[outside], minlength=k).astype(np.int64)
        inside = keep & (prod_idx >= 0)
        flat = ref_idx[inside] * k + prod_idx[inside]
        self.matrix += np.bincount(flat, minlength=k * k).reshape(k, k).astype(np.int64)

    def merge(self, other: ConfusionAccumulator) -> None:
        """Add another accumulator's counts (same codes) into this one."""
        if other.codes != self.codes:
            raise ValueError(f"cannot merge accumulators over {other.codes} into {self.codes}")
        self.matrix += other.matrix
        self.unmapped_produced += other.unmapped_produced
        self.unknown_reference += other.unknown_reference


def confusion_matrix(
    reference: np.ndarray,
    produced: np.ndarray,
    codes: Sequence[int],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Confusion matrix of two label arrays (rows = reference, columns = produced, ``codes`` order).

    Pixels with reference 0 are ignored; produced values outside ``codes`` are left out (use
    :class:`ConfusionAccumulator` to also get their count).

    Returns:
        ``(K, K)`` int64 array.

    """
    acc = ConfusionAccumulator(codes)
    acc.update(reference, produced, mask)
    return acc.matrix


def align_matrix(
    matrix: np.ndarray,
    ref_codes: Sequence[int],
    prod_codes: Sequence[int],
    codes: Sequence[int],
) -> np.ndarray:
    """Re-index a possibly non-square matrix (e.g. read from OTB's CSV) onto square ``codes`` order.

    OTB lists only the labels present in each raster; missing classes become zero rows/columns.

    Raises:
        ValueError: If a label with nonzero counts is not in ``codes``.

    """
    matrix = np.asarray(matrix, dtype=np.int64)
    position = {int(c): i for i, c in enumerate(codes)}
    out = np.zeros((len(codes), len(codes)), dtype=np.int64)
    for i, rc in enumerate(ref_codes):
        for j, pc in enumerate(prod_codes):
            count = matrix[i, j]
            if count == 0:
                continue
            if int(rc) not in position or int(pc) not in position:
                raise ValueError(f"labels ({rc}, {pc}) hold {count} pixels but are not in codes")
            out[position[int(rc)], position[int(pc)]] += count
    return out
