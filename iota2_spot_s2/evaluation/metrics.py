"""Accuracy scores from a confusion matrix (rows = reference, columns = produced).

Definitions, for class ``k`` with ``n_kk`` correct pixels, row sum ``r_k`` (reference support)
and column sum ``c_k`` (pixels mapped as ``k``), ``N`` pixels in all:

- overall accuracy ``OA = sum_k n_kk / N``;
- Cohen's kappa ``(OA - pe) / (1 - pe)`` with ``pe = sum_k r_k c_k / N**2``;
- precision (user's accuracy) ``n_kk / c_k``, recall (producer's accuracy) ``n_kk / r_k``,
  F1 their harmonic mean;
- mean F1: the mean of F1 over the classes **present in the reference** (``r_k > 0``), so a
  class absent from the evaluated split does not count as a zero.

Undefined values are reported as 0.0 (like scikit-learn's ``zero_division=0``): precision when
nothing was mapped as the class, recall when the class has no reference pixel, F1 when both
precision and recall are 0, OA and mean F1 of an empty matrix, and kappa when ``pe == 1``
(one class only on both sides: chance explains all agreement) or the matrix is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Accuracy scores of one map against one reference.

    Attributes:
        codes: Class codes, in the order of the per-class tuples.
        overall_accuracy: Fraction of correctly mapped pixels.
        kappa: Cohen's kappa.
        mean_f1: Mean F1 over classes present in the reference.
        precision: Per-class precision (user's accuracy).
        recall: Per-class recall (producer's accuracy).
        f1: Per-class F1.
        support: Per-class number of reference pixels.
        n_pixels: Pixels in the matrix.

    """

    codes: tuple[int, ...]
    overall_accuracy: float
    kappa: float
    mean_f1: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    n_pixels: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists for the per-class values)."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scores:
        """Inverse of :meth:`to_dict`."""
        return cls(
            codes=tuple(int(c) for c in data["codes"]),
            overall_accuracy=float(data["overall_accuracy"]),
            kappa=float(data["kappa"]),
            mean_f1=float(data["mean_f1"]),
            precision=tuple(float(v) for v in data["precision"]),
            recall=tuple(float(v) for v in data["recall"]),
            f1=tuple(float(v) for v in data["f1"]),
            support=tuple(int(v) for v in data["support"]),
            n_pixels=int(data["n_pixels"]),
        )

    def per_class(self) -> dict[int, dict[str, float]]:
        """``{code: {"precision", "recall", "f1", "support"}}``."""
        return {
            code: {
                "precision": self.precision[i],
                "recall": self.recall[i],
                "f1": self.f1[i],
                "support": self.support[i],
            }
            for i, code in enumerate(self.codes)
        }


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores(cm: np.ndarray, codes: Sequence[int]) -> Scores:
    """Compute :class:`Scores` from a square confusion matrix in ``codes`` order."""
    cm = np.asarray(cm, dtype=np.int64)
    k = len(codes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {k} codes")
    if (cm < 0).any():
        raise ValueError("confusion matrix holds negative counts")
    counts = cm.astype(np.float64)
    n = counts.sum()
    diag = np.diag(counts)
    rows, cols = counts.sum(axis=1), counts.sum(axis=0)
    precision = _safe_ratio(diag, cols)
    recall = _safe_ratio(diag, rows)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    oa = float(diag.sum() / n) if n > 0 else 0.0
    pe = float((rows * cols).sum() / n**2) if n > 0 else 1.0
    kappa = (oa - pe) / (1.0 - pe) if pe < 1.0 else 0.0
    present = rows > 0
    mean_f1 = float(f1[present].mean()) if present.any() else 0.0
    return Scores(
        codes=tuple(int(c) for c in codes),
        overall_accuracy=oa,
        kappa=float(kappa),
        mean_f1=mean_f1,
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(int(v) for v in cm.sum(axis=1)),
        n_pixels=int(cm.sum()),
    )
