"""Majority vote on class labels, with three ways to settle what a plain count cannot.

``ties`` selects the behaviour:

- ``"otb"``: exactly OTB's ``FusionOfClassifications -method majorityvoting`` (ITK's
  ``LabelVotingImageFilter``): every input value is a vote, **the no-data label included** (OTB
  ignores ``-nodatalabel`` in this method: sources ``(0, 0, 3)`` give 0, ``(0, 3)`` is a tie);
  the single most-voted value wins, any tie at the top gives ``undecided_label``.
- ``"undecided"``: only labels that are class codes vote (no-data and unknown values abstain); a
  tie at the top gives ``undecided_label``; no vote at all gives ``nodata_label``.
- ``"probability"`` (default): votes as in ``"undecided"``; a tie is settled by the highest
  summed probability of the tied classes over the sources (``support``), and a tie that remains
  (e.g. one-hot class maps) by source order: the tied class voted by the earliest source wins
  (the first source has priority, like iota2's ``learningPriority``). Never undecided.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iota2_spot_s2.fusion._inputs import TIES, check_choice, label_index

_SUPPORT_TOLERANCE = 1e-9


def _vote_counts(labels: np.ndarray, voting: np.ndarray) -> np.ndarray:
    """``counts[s]`` = number of voting sources sharing source ``s``'s label (0 if s abstains)."""
    same = labels[:, None] == labels[None, :]
    return (same & voting[None, :]).sum(axis=1) * voting


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Index of the first True along axis 0 (0 where none)."""
    return np.argmax(mask, axis=0)


def _pick(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(labels, index[None], axis=0)[0]


def majority_vote(
    labels: np.ndarray,
    codes: Sequence[int],
    *,
    ties: str = "probability",
    nodata_label: int = 0,
    undecided_label: int = 0,
    support: np.ndarray | None = None,
) -> np.ndarray:
    """Fuse label maps by majority vote (see the module docstring for ``ties``).

    Args:
        labels: int ``(S, H, W)`` label maps (class codes; anything else is no data, except with
            ``ties="otb"`` where every value votes).
        codes: Class codes, increasing.
        ties: ``"probability"``, ``"undecided"`` or ``"otb"``.
        nodata_label: Output where no source votes (unused by ``"otb"``, where it is a vote).
        undecided_label: Output at ties (``"undecided"``, ``"otb"``).
        support: ``(K, H, W)`` summed probability of each class over the sources, used by
            ``"probability"`` to settle ties (absent: ties go straight to source order).

    Returns:
        int64 ``(H, W)`` fused labels.

    """
    check_choice(ties, TIES, "tie rule")
    labels = np.asarray(labels, dtype=np.int64)
    # OTB: every value votes; otherwise only class codes do
    voting = np.ones(labels.shape, bool) if ties == "otb" else label_index(labels, codes) >= 0
    counts = _vote_counts(labels, voting)
    top = counts.max(axis=0)
    candidates = voting & (counts == top)
    first = _pick(labels, _first_true(candidates))
    unique = np.all(~candidates | (labels == first), axis=0)
    if ties == "probability":
        settled = _settle_ties(labels, candidates, codes, support)
        out = np.where(unique, first, settled)
    else:
        out = np.where(unique, first, undecided_label)
    if ties != "otb":
        out = np.where(voting.any(axis=0), out, nodata_label)
    return out


def _settle_ties(
    labels: np.ndarray, candidates: np.ndarray, codes: Sequence[int], support: np.ndarray | None
) -> np.ndarray:
    """Among tied sources, the label with the highest support; then the earliest source's."""
    if support is not None:
        idx = np.maximum(label_index(labels, codes), 0)
        score = np.take_along_axis(np.asarray(support, dtype=np.float64), idx, axis=0)
        score = np.where(candidates, score, -np.inf)
        best = score.max(axis=0)
        candidates = candidates & (score >= best - _SUPPORT_TOLERANCE)
    return _pick(labels, _first_true(candidates))


def vote_shares(labels: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    """Fraction of the voting sources (labels that are codes) choosing each class.

    Returns:
        float64 ``(K, H, W)``, summing to 1 where a source votes, NaN elsewhere.

    """
    idx = label_index(np.asarray(labels), codes)
    classes = np.arange(len(codes)).reshape(1, -1, 1, 1)
    votes = (idx[:, None] == classes).sum(axis=0).astype(np.float64)
    total = votes.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = votes / total
    shares[:, total == 0] = np.nan
    return shares
