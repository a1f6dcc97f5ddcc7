"""Input checks shared by the fusion rules: class codes, probability stacks, labels, matrices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from iota2_spot_s2.evaluation import align_matrix, read_otb_confusion_csv

RULES = ("mean", "weighted_mean", "product", "vote", "dempster_shafer", "dempster_shafer_otb")
TIES = ("probability", "undecided", "otb")
MOBS = ("precision", "recall", "accuracy", "kappa")
# a probability this far outside [0, 1] is an error, not round-off
_RANGE_TOLERANCE = 1e-3

ConfusionInput = np.ndarray | str | os.PathLike[str]


class CodeMismatchError(ValueError):
    """Sources (or confusion matrices) do not list the same class codes in the same order."""


def _as_code_tuple(codes: Sequence[int], what: str) -> tuple[int, ...]:
    out = tuple(int(c) for c in codes)
    if not out:
        raise ValueError(f"{what}: the class code list is empty")
    if any(c <= 0 for c in out):
        raise ValueError(f"{what}: class codes must be positive (0 is no-data): {list(out)}")
    if any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"{what}: class codes must be strictly increasing, got {list(out)}")
    return out


def check_codes(codes: Sequence[int] | Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Validate the class code list; a list of lists (one per source) must hold equal lists.

    Raises:
        CodeMismatchError: If per-source code lists differ.
        ValueError: If the codes are empty, non-positive or not strictly increasing.

    """
    items = list(codes)
    if items and all(isinstance(c, Sequence | np.ndarray) for c in items):
        lists = [_as_code_tuple(c, f"source {i + 1}") for i, c in enumerate(items)]  # type: ignore[arg-type]
        for i, other in enumerate(lists[1:], start=2):
            if other != lists[0]:
                raise CodeMismatchError(
                    f"source {i} lists class codes {list(other)} but source 1 lists "
                    f"{list(lists[0])}: all sources must hold the same classes in the same "
                    "(increasing code) order"
                )
        return lists[0]
    return _as_code_tuple(items, "codes")  # type: ignore[arg-type]


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming them."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of: {', '.join(allowed)})")
    return value


def prepare_stacks(sources: Sequence[np.ndarray], n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-source probabilities and find where each source has data.

    A source has no data at a pixel where any of its values is NaN or all of them are 0. Valid
    vectors are renormalised to sum to 1 (PROBAMAP rounding leaves sums of 1000 +- K/2).

    Returns:
        ``(stacks, valid)``: float64 ``(S, K, H, W)`` with zeros where a source has no data, and
        bool ``(S, H, W)``.

    Raises:
        CodeMismatchError: If a source does not have ``n_codes`` bands.
        ValueError: If shapes differ or values lie outside [0, 1].

    """
    if not sources:
        raise ValueError("no source to fuse")
    arrays = [np.asarray(s, dtype=np.float64) for s in sources]
    for i, arr in enumerate(arrays, start=1):
        if arr.ndim != 3:
            raise ValueError(f"source {i}: expected a (K, H, W) array, got shape {arr.shape}")
        if arr.shape[0] != n_codes:
            raise CodeMismatchError(
                f"source {i} has {arr.shape[0]} class bands but {n_codes} codes were given"
            )
        if arr.shape != arrays[0].shape:
            raise ValueError(f"source {i} has shape {arr.shape}, source 1 {arrays[0].shape}")
    stacks = np.stack(arrays)
    finite = np.all(np.isfinite(stacks), axis=1)
    stacks = np.where(finite[:, None], stacks, 0.0)
    if stacks.size and (stacks.min() < -_RANGE_TOLERANCE or stacks.max() > 1 + _RANGE_TOLERANCE):
        raise ValueError(
            f"probabilities must lie in [0, 1] (got {stacks.min():.4g}..{stacks.max():.4g}); "
            "divide PROBAMAP values by 1000"
        )
    stacks = np.clip(stacks, 0.0, 1.0)
    total = stacks.sum(axis=1)
    valid = finite & (total > 0)
    stacks = stacks / np.where(valid, total, 1.0)[:, None]
    return stacks, valid


def label_index(labels: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    """Position of each label in ``codes`` (int64, -1 where the label is not a class code)."""
    arr = np.asarray(codes, dtype=np.int64)
    flat = np.asarray(labels).astype(np.int64, copy=False)
    pos = np.clip(np.searchsorted(arr, flat), 0, arr.size - 1)
    return np.where(arr[pos] == flat, pos, -1)


def one_hot(labels: np.ndarray, codes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(stacks (S, K, H, W) float64, valid (S, H, W))`` from label maps ``(S, H, W)``.

    A label that is not one of ``codes`` (no-data, undecided, unknown) is no data.
    """
    idx = label_index(labels, codes)
    classes = np.arange(len(codes)).reshape(1, -1, *([1] * (idx.ndim - 1)))
    stacks = (idx[:, None] == classes).astype(np.float64)
    return stacks, idx >= 0


def stack_labels(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Stack 2-D label maps of one shape into an int64 ``(S, H, W)`` array."""
    if not labels:
        raise ValueError("no source to fuse")
    arrays = [np.asarray(a) for a in labels]
    for i, arr in enumerate(arrays, start=1):
        if arr.ndim != 2 or arr.shape != arrays[0].shape:
            raise ValueError(f"label map {i} has shape {arr.shape}, expected 2-D like map 1")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"label map {i} holds non-integer values")
    return np.stack([a.astype(np.int64) for a in arrays])


def resolve_confusions(
    confusions: Sequence[ConfusionInput] | None, codes: Sequence[int], n_sources: int, rule: str
) -> np.ndarray:
    """Per-source square confusion matrices on ``codes`` (rows = reference), ``(S, K, K)`` int64.

    Each item is a ``(K, K)`` array in ``codes`` order or the path of an OTB
    ``ComputeConfusionMatrix`` CSV (re-indexed onto ``codes``).

    Raises:
        ValueError: If matrices are missing, of the wrong count or shape.
        CodeMismatchError: If a CSV counts pixels for a label that is not one of ``codes``.

    """
    if confusions is None:
        raise ValueError(f"rule {rule!r} needs one validation confusion matrix per source")
    items = list(confusions)
    if len(items) != n_sources:
        raise ValueError(f"{len(items)} confusion matrices given for {n_sources} sources")
    return np.stack([_one_confusion(c, codes, i) for i, c in enumerate(items, start=1)])


def _one_confusion(item: Any, codes: Sequence[int], i: int) -> np.ndarray:
    k = len(codes)
    if isinstance(item, str | os.PathLike):
        ref, prod, matrix = read_otb_confusion_csv(item)
        try:
            return align_matrix(matrix, ref, prod, codes)
        except ValueError as exc:
            raise CodeMismatchError(f"confusion matrix {os.fspath(item)}: {exc}") from exc
    matrix = np.asarray(item)
    if matrix.shape != (k, k):
        raise CodeMismatchError(
            f"confusion matrix {i} has shape {matrix.shape}, expected ({k}, {k}) on the codes"
        )
    if (matrix < 0).any():
        raise ValueError(f"confusion matrix {i} holds negative counts")
    return matrix.astype(np.int64)
