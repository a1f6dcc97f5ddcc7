"""Fusion rules on probability stacks: mean, class-weighted mean, normalised product.

Every rule takes ``stacks`` float ``(S, K, H, W)`` (S sources, K classes in increasing code
order, each valid vector summing to 1, zeros where a source has no data) and ``valid`` bool
``(S, H, W)`` — what :func:`iota2_spot_s2.fusion.prepare_stacks` returns — and gives fused
probabilities ``(K, H, W)`` summing to 1 over classes, NaN where no source has data. A source
with no data at a pixel is left out there (the others are fused as if it did not exist).

What each rule assumes:

- :func:`mean_rule` (sum rule): probabilities on a comparable scale; robust to one
  over-confident source, works with uncalibrated scores.
- :func:`weighted_mean_rule`: as the mean, with per-class trust learnt from validation:
  ``w[s, k] = F1[s, k] / sum_s F1[s, k]`` (:func:`class_weights`). Per-class weights break the
  sum-to-one property, so the weighted vector is renormalised over classes.
- :func:`product_rule` (naive Bayes): **calibrated** posteriors from conditionally independent
  sources with the same class priors (priors are not divided out); one source's near-zero
  probability vetoes a class, hence a floor ``epsilon`` (default 1e-6, below PROBAMAP's 1/1000
  quantum) so one source cannot zero a class alone.
"""

from __future__ import annotations

import numpy as np


def _no_data(valid: np.ndarray) -> np.ndarray:
    return np.logical_not(valid.any(axis=0))


def mean_rule(stacks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of the valid sources' probabilities."""
    count = valid.sum(axis=0)
    total = (stacks * valid[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fused = total / count
    fused[:, count == 0] = np.nan
    return fused


def class_weights(f1: np.ndarray) -> np.ndarray:
    """Per-source, per-class weights ``w[s, k] = F1[s, k] / sum_s F1[s, k]``.

    A class with F1 = 0 for every source gets equal weights ``1 / S``.

    Args:
        f1: ``(S, K)`` validation F1 of each source for each class (in [0, 1]).

    Returns:
        ``(S, K)`` float64, each column summing to 1.

    """
    f1 = np.asarray(f1, dtype=np.float64)
    if f1.ndim != 2 or (f1 < 0).any():
        raise ValueError(f"F1 scores must be a non-negative (S, K) array, got shape {f1.shape}")
    total = f1.sum(axis=0, keepdims=True)
    equal = np.full_like(f1, 1.0 / f1.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, f1 / total, equal)


def weighted_mean_rule(stacks: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Class-weighted mean, renormalised over classes.

    At each pixel the weights of class ``k`` are renormalised over the sources that have data
    (``w'[s, k] = w[s, k] / sum_{valid s} w[s, k]``; equal weights if that sum is 0), then
    ``q[k] = sum_s w'[s, k] p_s[k]`` and ``p[k] = q[k] / sum_j q[j]`` (the plain mean where every
    ``q`` is 0).

    Args:
        stacks: ``(S, K, H, W)`` probabilities.
        valid: ``(S, H, W)`` where each source has data.
        weights: ``(S, K)``, e.g. from :func:`class_weights`.

    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != stacks.shape[:2] or (weights < 0).any():
        raise ValueError(f"weights must be non-negative of shape {stacks.shape[:2]}")
    w = weights[:, :, None, None] * valid[:, None]
    den = w.sum(axis=0)
    w = np.where(den > 0, w, valid[:, None].astype(np.float64))
    den = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = (w * stacks).sum(axis=0) / den
        total = q.sum(axis=0)
        fused = q / total
    degenerate = ~(total > 0)
    if degenerate.any():
        fused = np.where(degenerate, mean_rule(stacks, valid), fused)
    fused[:, _no_data(valid)] = np.nan
    return fused


def product_rule(stacks: np.ndarray, valid: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Normalised product ``p[k] ∝ prod_s max(p_s[k], epsilon)`` over the valid sources."""
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    logs = np.log(np.maximum(stacks, epsilon)) * valid[:, None]
    total = logs.sum(axis=0)
    total -= total.max(axis=0, keepdims=True)
    fused = np.exp(total)
    fused /= fused.sum(axis=0, keepdims=True)
    fused[:, _no_data(valid)] = np.nan
    return fused
