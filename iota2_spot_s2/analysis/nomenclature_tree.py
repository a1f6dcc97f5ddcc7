"""Which and how many classes can be mapped reliably: merging classes along their confusion.

Everything works on one confusion matrix ``C`` (rows = reference, columns = produced, as in
:mod:`iota2_spot_s2.evaluation.confusion`) held with its codes and names in a
:class:`ConfusionTable`. Merging classes sums their rows and their columns, so no pixel is
re-read and every level is scored by :func:`iota2_spot_s2.evaluation.scores` (OA, kappa, F1).

- :func:`agglomerate`: from K classes down to 1, merge at each step the pair with the largest
  **pair criterion** ``s(i, j) = (C[i,j] + C[j,i]) / min(u_i, u_j)``, where
  ``u_k = r_k + c_k - C[k,k]`` counts the pixels labelled ``k`` in the reference *or* the map
  (the union of the IoU, ``r`` row and ``c`` column sums). ``s`` is the share of the smaller
  class's pixels that the pair exchanges, in 0..1 (1: the smaller class is never right and all
  its errors are with the other one); the merge distance is ``1 - s``. Ties go to the pair that
  exchanges more pixels, then to the first pair in matrix order.
- :func:`min_f1_merges`: greedy proposals to bring every class to a minimum F1: take the class
  with the lowest F1 below the threshold, merge it with the class it exchanges the most pixels
  with (``C[i,j] + C[j,i]``), rescore, repeat until every class reaches the threshold or one
  class remains. Greedy: one merge at a time, never revisited, so not guaranteed to be the
  fewest merges.
- :mod:`.nomenclature_levels` scores the levels of a hierarchical nomenclature the same way.

Merging any two classes turns their exchanged pixels into agreement, so OA never decreases
along the sequence; kappa and mean F1 may go either way.

Classes with no pixel at all (zero row and column) are left out. Classes absent from the
reference but present in the map (e.g. the chain's "no decision" column) are never merged: their
pixels stay errors at every level, and they are not counted in the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iota2_spot_s2.evaluation.metrics import Scores, scores

CRITERION = (
    "pair criterion s(i, j) = (C[i,j] + C[j,i]) / min(u_i, u_j), with C the confusion matrix "
    "(rows = reference) and u_k = r_k + c_k - C[k,k] the pixels labelled k in the reference or "
    "in the map: the share of the smaller class that the pair exchanges (0..1); merge distance "
    "1 - s; the pair with the largest s is merged first"
)
Group = tuple[int, ...]


@dataclass(frozen=True)
class ConfusionTable:
    """A square confusion matrix with its classes.

    Attributes:
        matrix: ``(K, K)`` int64 counts, rows = reference, columns = produced, ``codes`` order.
        codes: Class codes.
        names: Class names, aligned with ``codes``.
        source: Where the matrix comes from (a file name), for messages and reports.

    """

    matrix: np.ndarray
    codes: tuple[int, ...]
    names: tuple[str, ...]
    source: str = "<matrix>"

    def __post_init__(self) -> None:
        k = len(self.codes)
        if np.shape(self.matrix) != (k, k) or len(self.names) != k:
            raise ValueError(f"matrix {np.shape(self.matrix)} and {len(self.names)} names "
                             f"do not match {k} codes")  # fmt: skip
        if len(set(self.codes)) != k:
            raise ValueError(f"duplicate class codes in {list(self.codes)}")
        if (np.asarray(self.matrix) < 0).any():
            raise ValueError("confusion matrix holds negative counts")

    @classmethod
    def build(
        cls, matrix: Any, codes: Sequence[int], names: Sequence[str] | None = None,
        source: str = "<matrix>",
    ) -> ConfusionTable:  # fmt: skip
        """A table from any array-like and code list (names default to the codes)."""
        labels = tuple(str(n) for n in names) if names is not None else tuple(map(str, codes))
        return cls(np.asarray(matrix, dtype=np.int64), tuple(int(c) for c in codes), labels,
                   source)  # fmt: skip


@dataclass(frozen=True)
class MergeStep:
    """One level of the merge sequence.

    Attributes:
        n_classes: Classes present in the reference after this step.
        groups: Original codes of every class at this step (fixed columns included).
        names: Name of every class (merged names joined with " + ").
        scores: Scores at this step, in ``groups`` order (codes: first code of each group).
        merged: The two groups merged at this step (``None`` for the starting level).
        criterion: Their pair criterion ``s`` (``None`` for the starting level).
        exchanged: Pixels they exchanged before the merge.

    """

    n_classes: int
    groups: tuple[Group, ...]
    names: tuple[str, ...]
    scores: Scores
    merged: tuple[Group, Group] | None = None
    criterion: float | None = None
    exchanged: int = 0


@dataclass(frozen=True)
class Proposal:
    """One greedy merge of :func:`min_f1_merges` (class and partner before, merged class after)."""

    low: Group
    low_name: str
    low_f1: float
    partner: Group
    partner_name: str
    partner_f1: float
    exchanged: int
    merged_f1: float
    n_classes: int
    overall_accuracy: float
    mean_f1: float


@dataclass(frozen=True)
class MinF1Merges:
    """The outcome of :func:`min_f1_merges`.

    Attributes:
        threshold: The minimum F1 asked for.
        proposals: The merges, in order.
        final: The last level (every class, its F1).
        stuck: Names of classes still below the threshold that exchange no pixel with another.
        reached: Whether every class present in the reference reached the threshold.

    """

    threshold: float
    proposals: tuple[Proposal, ...]
    final: MergeStep
    stuck: tuple[str, ...]
    reached: bool


def merge_matrix(matrix: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Sum the rows and the columns of ``matrix`` by ``groups`` (lists of row indices).

    Raises:
        ValueError: If an index is in two groups, or an index in no group holds pixels.

    """
    matrix = np.asarray(matrix, dtype=np.int64)
    member = np.zeros((matrix.shape[0], len(groups)), dtype=np.int64)
    for g, idx in enumerate(groups):
        member[list(idx), g] += 1
    if (member.sum(axis=1) > 1).any():
        raise ValueError("a class index is in two groups")
    left_out = member.sum(axis=1) == 0
    if matrix[left_out].any() or matrix[:, left_out].any():
        raise ValueError("a class left out of every group holds pixels")
    return member.T @ matrix @ member


def pair_criterion(matrix: np.ndarray) -> np.ndarray:
    """``s(i, j)`` of every pair (see the module docstring); 0 on the diagonal."""
    m = np.asarray(matrix, dtype=np.float64)
    union = m.sum(axis=1) + m.sum(axis=0) - np.diag(m)
    den = np.minimum.outer(union, union)
    out = np.zeros_like(m)
    np.divide(m + m.T, den, out=out, where=den > 0)
    np.fill_diagonal(out, 0.0)
    return out


def _codes_of(table: ConfusionTable, group: Group) -> Group:
    return tuple(table.codes[i] for i in group)


def _step(table: ConfusionTable, groups: list[Group], **merge: Any) -> MergeStep:
    cm = merge_matrix(table.matrix, groups)
    firsts = [table.codes[g[0]] for g in groups]
    return MergeStep(
        n_classes=int((cm.sum(axis=1) > 0).sum()),
        groups=tuple(_codes_of(table, g) for g in groups),
        names=tuple(" + ".join(table.names[i] for i in g) for g in groups),
        scores=scores(cm, firsts), **merge,
    )  # fmt: skip


def _start(table: ConfusionTable) -> list[Group]:
    """One group per class holding pixels (reference or map)."""
    m = table.matrix
    return [(i,) for i in range(len(table.codes)) if m[i].any() or m[:, i].any()]


def _mergeable(table: ConfusionTable, groups: list[Group]) -> list[int]:
    """Positions of the groups present in the reference."""
    rows = table.matrix.sum(axis=1)
    return [g for g, idx in enumerate(groups) if rows[list(idx)].sum() > 0]


def _join(groups: list[Group], a: int, b: int) -> list[Group]:
    a, b = min(a, b), max(a, b)
    out = list(groups)
    out[a] = tuple(sorted(groups[a] + groups[b]))
    del out[b]
    return out


def _most_confused(table: ConfusionTable, groups: list[Group]) -> tuple[int, int, float, int]:
    cm = merge_matrix(table.matrix, groups)
    crit, exchange = pair_criterion(cm), cm + cm.T
    live = _mergeable(table, groups)
    pairs = [(a, b) for n, a in enumerate(live) for b in live[n + 1 :]]
    a, b = max(pairs, key=lambda p: (crit[p], exchange[p], -p[0], -p[1]))
    return a, b, float(crit[a, b]), int(exchange[a, b])


def agglomerate(table: ConfusionTable) -> list[MergeStep]:
    """The merge sequence from every class down to one (see the module docstring).

    Returns:
        One :class:`MergeStep` per number of classes, the starting level first.

    """
    groups = _start(table)
    steps = [_step(table, groups)]
    while len(_mergeable(table, groups)) > 1:
        a, b, crit, exchanged = _most_confused(table, groups)
        pair = (_codes_of(table, groups[a]), _codes_of(table, groups[b]))
        groups = _join(groups, a, b)
        steps.append(_step(table, groups, merged=pair, criterion=crit, exchanged=exchanged))
    return steps


def linkage_matrix(steps: Sequence[MergeStep]) -> tuple[np.ndarray, list[str]]:
    """A SciPy linkage matrix of :func:`agglomerate`'s sequence, and its leaf labels.

    Leaves are the starting classes present in the reference. Heights are the merge distance
    ``1 - s`` made non-decreasing (a merge drawn below an earlier one is raised to its height),
    so the dendrogram never crosses itself; the true ``s`` of each merge is in ``steps``.
    """
    first = steps[0]
    leaves = [g for g, n in zip(first.groups, first.scores.support, strict=True) if n > 0]
    ids = {frozenset(g): i for i, g in enumerate(leaves)}
    labels = [first.names[first.groups.index(g)] for g in leaves]
    rows, height = [], 0.0
    for step in steps[1:]:
        assert step.merged is not None and step.criterion is not None
        a, b = (frozenset(g) for g in step.merged)
        height = max(height, 1.0 - step.criterion)
        rows.append([ids[a], ids[b], height, len(a | b)])
        ids[a | b] = len(leaves) + len(rows) - 1
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4), labels


def _containing(step: MergeStep, code: int) -> int:
    """Position of the class of ``step`` holding the original class ``code``."""
    return next(g for g, group in enumerate(step.groups) if code in group)


def min_f1_merges(table: ConfusionTable, threshold: float) -> MinF1Merges:
    """Greedy merges until every class reaches ``threshold`` F1 (see the module docstring)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the minimum F1 must be within 0-1, got {threshold}")
    groups = _start(table)
    step, proposals, stuck = _step(table, groups), [], set()
    while len(_mergeable(table, groups)) > 1:
        low = [g for g in _mergeable(table, groups)
               if step.scores.f1[g] < threshold and step.groups[g] not in stuck]  # fmt: skip
        if not low:
            break
        a = min(low, key=lambda g: (step.scores.f1[g], step.groups[g]))
        b, exchanged = _partner(table, groups, a)
        if not exchanged:
            stuck.add(step.groups[a])
            continue
        groups = _join(groups, a, b)
        new = _step(table, groups)
        proposals.append(_proposal(step, new, a, b, exchanged))
        step = new
    below = [g for g in _mergeable(table, groups) if step.scores.f1[g] < threshold]
    names = tuple(step.names[g] for g in below if step.groups[g] in stuck)
    return MinF1Merges(threshold, tuple(proposals), step, names, reached=not below)


def _partner(table: ConfusionTable, groups: list[Group], a: int) -> tuple[int, int]:
    """The group (present in the reference) that ``a`` exchanges the most pixels with."""
    cm = merge_matrix(table.matrix, groups)
    exchange = cm[a] + cm[:, a]
    others = [g for g in _mergeable(table, groups) if g != a]
    best = max(others, key=lambda g: (exchange[g], -g))
    return best, int(exchange[best])


def _proposal(before: MergeStep, after: MergeStep, a: int, b: int, exchanged: int) -> Proposal:
    s = after.scores
    return Proposal(
        low=before.groups[a], low_name=before.names[a], low_f1=before.scores.f1[a],
        partner=before.groups[b], partner_name=before.names[b], partner_f1=before.scores.f1[b],
        exchanged=exchanged, merged_f1=s.f1[_containing(after, before.groups[a][0])],
        n_classes=after.n_classes, overall_accuracy=s.overall_accuracy, mean_f1=s.mean_f1,
    )  # fmt: skip
