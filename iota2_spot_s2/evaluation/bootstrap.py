"""Confidence intervals of map accuracy by a spatial block bootstrap.

Neighbouring pixels are not independent samples: resampling pixels gives intervals far too
narrow. Here the scored area is cut into square blocks of ``block`` pixels, one confusion matrix
per block is kept (:func:`block_confusions`), and :func:`bootstrap_scores` draws blocks with
replacement (``n_boot`` times, seeded), sums their matrices and scores each draw. The intervals
are percentile intervals (``level``, e.g. 95 %) of OA, kappa, mean F1 and every class F1.
Blocks without a labelled pixel are dropped before drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iota2_spot_s2.evaluation.confusion import confusion_matrix
from iota2_spot_s2.evaluation.metrics import scores


def block_confusions(
    reference: np.ndarray, produced: np.ndarray, codes: Sequence[int], block: int
) -> np.ndarray:
    """``(n_blocks, K, K)`` confusion matrices of the ``block``-pixel squares holding labels.

    Produced values outside ``codes`` are left out, as in :func:`confusion_matrix`: to count
    unmapped pixels as errors, map them to an extra "no decision" code listed in ``codes``
    (never in the reference, so it never enters the mean F1). Blocks come in row-major order.
    """
    found: dict[tuple[int, int], np.ndarray] = {}
    add_block_confusions(found, reference, produced, codes, block)
    out = [found[key] for key in sorted(found) if found[key].sum()]
    if not out:
        return np.zeros((0, len(codes), len(codes)), dtype=np.int64)
    return np.stack(out)


def add_block_confusions(
    found: dict[tuple[int, int], np.ndarray],
    reference: np.ndarray,
    produced: np.ndarray,
    codes: Sequence[int],
    block: int,
    *,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Add the matrices of the blocks of one window to ``found`` (key: block row, block col).

    ``origin`` (row, col) is the window's place in the scene; it must be a multiple of
    ``block`` so that no block straddles two windows. Blocks without a nonzero reference pixel
    are skipped (empty matrices are kept; :func:`block_confusions` drops them).

    Raises:
        ValueError: If ``block < 1`` or ``origin`` is not on the block grid.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if origin[0] % block or origin[1] % block:
        raise ValueError(f"window origin {origin} is not a multiple of the block {block}")
    codes = [int(c) for c in codes]
    for y0 in range(0, reference.shape[0], block):
        for x0 in range(0, reference.shape[1], block):
            ref = reference[y0 : y0 + block, x0 : x0 + block]
            if not ref.any():
                continue
            key = ((origin[0] + y0) // block, (origin[1] + x0) // block)
            found[key] = confusion_matrix(ref, produced[y0 : y0 + block, x0 : x0 + block], codes)


def bootstrap_scores(
    cms: np.ndarray,
    codes: Sequence[int],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile intervals of OA, kappa, mean F1 and per-class F1 over block resamples.

    Returns:
        ``{"blocks": n, "n_boot": n, "level": level, "overall_accuracy": [lo, hi],
        "kappa": [lo, hi], "mean_f1": [lo, hi], "f1": {code: [lo, hi]}}``.

    Raises:
        ValueError: With fewer than 2 blocks (no interval can be drawn).
    """
    cms = np.asarray(cms, dtype=np.int64)
    if cms.shape[0] < 2:
        raise ValueError(f"a block bootstrap needs at least 2 labelled blocks, got {cms.shape[0]}")
    rng = np.random.default_rng([seed, 23])
    n = cms.shape[0]
    flat = cms.reshape(n, -1)
    draws: dict[str, list[float]] = {"overall_accuracy": [], "kappa": [], "mean_f1": []}
    per_class: list[tuple[float, ...]] = []
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, n, n), minlength=n)
        cm = (weights @ flat).reshape(cms.shape[1:])
        s = scores(cm, list(codes))
        draws["overall_accuracy"].append(s.overall_accuracy)
        draws["kappa"].append(s.kappa)
        draws["mean_f1"].append(s.mean_f1)
        per_class.append(s.f1)
    tail = 100 * (1 - level) / 2
    bounds = (tail, 100 - tail)

    def interval(values: Sequence[float]) -> list[float]:
        return [float(v) for v in np.nanpercentile(np.asarray(values, float), bounds)]

    f1 = np.asarray(per_class, dtype=float)
    return {
        "blocks": n,
        "n_boot": n_boot,
        "level": level,
        **{key: interval(values) for key, values in draws.items()},
        "f1": {int(c): interval(f1[:, i]) for i, c in enumerate(codes)},
    }
