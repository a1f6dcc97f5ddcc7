"""Statistics of per-class map comparisons: McNemar, Holm, paired block bootstrap, Shapley.

Conventions (each written into the complementarity report as well):

- **McNemar per class** (Foody 2004, exact binomial form): for class ``c`` the pixels taken are
  the labelled test pixels where the reference *or* either map says ``c`` (omission and
  commission both count); a pixel is "right" for a map when the map equals the reference.
  ``n01`` = first map right and second wrong, ``n10`` = the reverse; the two-sided p-value is
  ``min(1, 2 * P[Binomial(n01 + n10, 1/2) <= min(n01, n10)])``. Pixels are not independent, so
  the test alone over-states significance: verdicts also need the block-bootstrap interval.
- **Holm–Bonferroni** adjusts the p-values of one family (one pair of maps, all classes).
- **Paired block bootstrap**: every map is scored on the same blocks; each draw picks blocks
  with replacement *once* and applies the same draw to every map, so differences between maps
  keep their pairing. Percentile intervals.
- **Shapley value** of each source for a score ``v`` over coalitions of sources (exact, every
  ordering of the sources; meant for 2–3 sources): the empty coalition is chance level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import binom


def mcnemar_counts(
    reference: np.ndarray, first: np.ndarray, second: np.ndarray, code: int
) -> tuple[int, int]:
    """``(n01, n10)`` of class ``code`` on labelled pixels (reference > 0) concerning the class."""
    labelled = reference > 0
    concerned = labelled & ((reference == code) | (first == code) | (second == code))
    right1 = first[concerned] == reference[concerned]
    right2 = second[concerned] == reference[concerned]
    return int(np.sum(right1 & ~right2)), int(np.sum(~right1 & right2))


def mcnemar_exact(n01: int, n10: int) -> float:
    """Two-sided exact McNemar p-value of discordant counts ``n01``, ``n10``."""
    n = n01 + n10
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(n01, n10), n, 0.5)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def f1_per_class(cms: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of the first ``n_classes`` classes of ``(..., K, K)`` confusion matrices (NaN if absent).

    Rows are the reference, columns the map; extra trailing columns (e.g. "no decision") count
    as errors of the reference class.
    """
    diag = np.diagonal(cms, axis1=-2, axis2=-1)[..., :n_classes].astype(float)
    rows = cms.sum(axis=-1)[..., :n_classes].astype(float)
    cols = cms.sum(axis=-2)[..., :n_classes].astype(float)
    den = rows + cols
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(rows > 0, 2.0 * diag / np.where(den > 0, den, 1.0), np.nan)
    return f1


def bootstrap_weights(n_blocks: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_blocks)`` how many times each block is drawn in each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    weights = np.zeros((n_boot, n_blocks), dtype=np.int64)
    np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1)
    return weights


def paired_bootstrap_f1(
    block_cms: Mapping[str, np.ndarray], n_classes: int, *, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Per-class F1 of each map in each paired resample: ``{name: (n_boot, n_classes)}``.

    Args:
        block_cms: ``{map name: (n_blocks, K, K)}`` on the *same* blocks for every map.
        n_classes: Classes scored (the first of the K).
        n_boot: Resamples.
        seed: Seed of the block draws (shared by every map: the pairing).

    """
    sizes = {cms.shape[0] for cms in block_cms.values()}
    if len(sizes) != 1:
        raise ValueError(f"maps were cut into different numbers of blocks: {sorted(sizes)}")
    weights = bootstrap_weights(sizes.pop(), n_boot, seed)
    return {
        name: f1_per_class(np.einsum("bn,nij->bij", weights, cms), n_classes)
        for name, cms in block_cms.items()
    }


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of finite ``samples`` (NaN, NaN when none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def shapley_values(
    value: Mapping[frozenset[str], float], players: Sequence[str]
) -> dict[str, float]:
    """Exact Shapley value of each player: its marginal gain averaged over every ordering.

    Args:
        value: Score of every coalition (subset of ``players``), the empty set included.
        players: The sources.

    Raises:
        KeyError: A coalition's value is missing.

    """
    totals = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        members: set[str] = set()
        for player in order:
            before = value[frozenset(members)]
            members.add(player)
            totals[player] += value[frozenset(members)] - before
    return {p: totals[p] / len(orders) for p in players}
