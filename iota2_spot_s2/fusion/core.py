"""Array-level fusion: one entry point per input kind, one result type, the choice map.

- :func:`fuse_probabilities` fuses per-class probability stacks ``(K, H, W)``;
- :func:`fuse_labels` fuses class maps ``(H, W)`` (one-hot for the probability rules, raw labels
  for ``vote`` and ``dempster_shafer_otb``, so those match OTB pixel for pixel);
- :class:`FusionPlan` holds the rule and what it needs (weights, masses), resolved once, so a
  raster is fused window by window without re-reading matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iota2_spot_s2.evaluation import scores
from iota2_spot_s2.fusion._inputs import (
    RULES,
    TIES,
    ConfusionInput,
    check_choice,
    check_codes,
    label_index,
    one_hot,
    prepare_stacks,
    resolve_confusions,
    stack_labels,
)
from iota2_spot_s2.fusion.dempster_shafer import dempster_shafer_probabilities, masses_of_belief
from iota2_spot_s2.fusion.ds_otb import dempster_shafer_otb
from iota2_spot_s2.fusion.rules import class_weights, mean_rule, product_rule, weighted_mean_rule
from iota2_spot_s2.fusion.vote import majority_vote, vote_shares

LABEL_RULES = ("vote", "dempster_shafer_otb")


@dataclass(frozen=True)
class FusionResult:
    """Fused maps of one window or scene.

    Attributes:
        codes: Class codes, in the order of the probability bands.
        classes: int64 ``(H, W)`` fused class codes; ``nodata_label`` where no source has data,
            ``undecided_label`` where a label rule could not decide (OTB-compatible label rules
            may also return a non-code label that the sources gave, as OTB does).
        confidence: float32 ``(H, W)`` max fused probability in [0, 1], NaN where no data.
        probabilities: float32 ``(K, H, W)`` fused probabilities summing to 1, NaN where no data.
        choice: uint8 ``(H, W)`` which source(s) the fused class came from (:func:`choice_map`).
        valid: bool ``(H, W)``, True where at least one source has data (a class code).

    """

    codes: tuple[int, ...]
    classes: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    choice: np.ndarray
    valid: np.ndarray


def choice_map(labels: np.ndarray, has_data: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Which source decided, iota2's ``DSchoice`` convention extended to S sources.

    Values: 0 none (no source has data, undecided, or a class no source chose); 1 at least two
    sources have data and all of them chose the fused class ("both"); ``1 + s`` only source
    ``s`` (1-based) chose it — 2 first, 3 second, as in iota2; ``S + 2`` (only for S >= 3)
    several but not all of the sources with data chose it.

    Args:
        labels: ``(S, H, W)`` each source's own class (argmax of its probabilities).
        has_data: ``(S, H, W)`` where each source has data.
        fused: ``(H, W)`` fused class codes.

    """
    n_sources = labels.shape[0]
    agree = has_data & (labels == fused[None])
    n_agree, n_valid = agree.sum(axis=0), has_data.sum(axis=0)
    out = np.zeros(fused.shape, dtype=np.uint8)
    out = np.where(n_agree == 1, 2 + np.argmax(agree, axis=0), out)
    out = np.where(n_agree >= 2, n_sources + 2, out)
    out = np.where((n_agree >= 2) & (n_agree == n_valid), 1, out)
    return out.astype(np.uint8)


@dataclass(frozen=True)
class FusionPlan:
    """A fusion rule with its parameters resolved (see :func:`make_plan`)."""

    codes: tuple[int, ...]
    rule: str
    ties: str = "probability"
    weights: np.ndarray | None = None
    masses: np.ndarray | None = None
    epsilon: float = 1e-6
    nodata_label: int = 0
    undecided_label: int = 0

    def fuse_stacks(self, stacks: np.ndarray, valid: np.ndarray) -> FusionResult:
        """Fuse prepared stacks ``(S, K, H, W)`` / validity ``(S, H, W)``."""
        codes = np.asarray(self.codes)
        labels = np.where(valid, codes[np.argmax(stacks, axis=1)], self.nodata_label)
        if self.rule in LABEL_RULES:
            support = (stacks * valid[:, None]).sum(axis=0)
            classes, probs = self._label_rule(labels, support)
        else:
            probs = self._probability_rule(stacks, valid)
            best = codes[np.argmax(np.nan_to_num(probs, nan=-1.0), axis=0)]
            classes = np.where(np.any(valid, axis=0), best, self.nodata_label)
        return self._result(classes, probs, labels, valid)

    def fuse_labels(self, labels: np.ndarray) -> FusionResult:
        """Fuse label maps ``(S, H, W)`` (label rules on raw labels, others on one-hot)."""
        if self.rule not in LABEL_RULES:
            return self.fuse_stacks(*one_hot(labels, self.codes))
        valid = label_index(labels, self.codes) >= 0
        support = one_hot(labels, self.codes)[0].sum(axis=0)
        classes, probs = self._label_rule(labels, support)
        return self._result(classes, probs, labels, valid)

    def _label_rule(self, labels: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.rule == "vote":
            classes = majority_vote(
                labels, self.codes, ties=self.ties, nodata_label=self.nodata_label,
                undecided_label=self.undecided_label, support=support,
            )  # fmt: skip
            return classes, vote_shares(labels, self.codes)
        assert self.masses is not None
        return dempster_shafer_otb(
            labels, self.masses, self.codes,
            nodata_label=self.nodata_label, undecided_label=self.undecided_label,
        )  # fmt: skip

    def _probability_rule(self, stacks: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.rule == "mean":
            return mean_rule(stacks, valid)
        if self.rule == "product":
            return product_rule(stacks, valid, self.epsilon)
        if self.rule == "weighted_mean":
            assert self.weights is not None
            return weighted_mean_rule(stacks, valid, self.weights)
        assert self.masses is not None
        return dempster_shafer_probabilities(stacks, valid, self.masses)

    def _result(
        self, classes: np.ndarray, probs: np.ndarray, labels: np.ndarray, valid: np.ndarray
    ) -> FusionResult:
        any_valid = np.any(valid, axis=0)
        classes = classes.astype(np.int64)  # label rules decide no-data themselves, like OTB
        probs = probs.astype(np.float32)
        probs[:, ~any_valid] = np.nan
        confidence = np.full(any_valid.shape, np.nan, dtype=np.float32)
        confidence[any_valid] = probs[:, any_valid].max(axis=0)
        choice = choice_map(labels, valid, classes)
        return FusionResult(self.codes, classes, confidence, probs, choice, any_valid)


def make_plan(
    codes: Sequence[int] | Sequence[Sequence[int]],
    rule: str,
    n_sources: int,
    *,
    confusions: Sequence[ConfusionInput] | None = None,
    weights: np.ndarray | None = None,
    mob: str = "precision",
    ties: str = "probability",
    epsilon: float = 1e-6,
    nodata_label: int = 0,
    undecided_label: int = 0,
) -> FusionPlan:
    """Check the inputs of a rule and resolve what it needs (see :func:`fuse_probabilities`)."""
    code_tuple = check_codes(codes)
    check_choice(rule, RULES, "fusion rule")
    check_choice(ties, TIES, "tie rule")
    if nodata_label in code_tuple:
        raise ValueError(f"the no-data label {nodata_label} is also a class code")
    if undecided_label != nodata_label and undecided_label in code_tuple:
        raise ValueError(f"the undecided label {undecided_label} is also a class code")
    masses = None
    if rule == "weighted_mean" and weights is None:
        matrices = resolve_confusions(confusions, code_tuple, n_sources, rule)
        weights = class_weights(np.stack([scores(cm, code_tuple).f1 for cm in matrices]))
    if rule in ("dempster_shafer", "dempster_shafer_otb"):
        matrices = resolve_confusions(confusions, code_tuple, n_sources, rule)
        masses = masses_of_belief(matrices, mob)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_sources, len(code_tuple)):
            raise ValueError(f"weights must have shape {(n_sources, len(code_tuple))}")
    return FusionPlan(
        code_tuple, rule, ties, weights, masses, epsilon, int(nodata_label), int(undecided_label)
    )


def fuse_probabilities(
    sources: Sequence[np.ndarray],
    codes: Sequence[int] | Sequence[Sequence[int]],
    rule: str = "mean",
    *,
    confusions: Sequence[ConfusionInput] | None = None,
    weights: np.ndarray | None = None,
    mob: str = "precision",
    ties: str = "probability",
    epsilon: float = 1e-6,
    nodata_label: int = 0,
    undecided_label: int = 0,
) -> FusionResult:
    """Fuse per-class probability stacks of several sources on one grid.

    Args:
        sources: ``(K, H, W)`` float arrays in [0, 1], bands in ``codes`` order; NaN (or an
            all-zero vector) where a source has no data.
        codes: The class codes, increasing — or one list per source, checked to be equal.
        rule: ``mean``, ``weighted_mean``, ``product``, ``vote``, ``dempster_shafer``
            (probability-aware) or ``dempster_shafer_otb`` (OTB's rule on the argmax labels).
        confusions: One validation confusion matrix per source (``(K, K)`` array on ``codes``,
            rows = reference, or an OTB CSV path), for ``weighted_mean`` (F1 weights) and both
            Dempster–Shafer rules (masses).
        weights: ``(S, K)`` explicit weights for ``weighted_mean`` (instead of F1 weights).
        mob: Mass of belief measure: ``precision``, ``recall``, ``accuracy`` or ``kappa``.
        ties: Tie rule of ``vote``: ``probability``, ``undecided`` or ``otb``.
        epsilon: Probability floor of ``product``.
        nodata_label: Class value where no source has data.
        undecided_label: Class value where a label rule cannot decide.

    Raises:
        CodeMismatchError: If code lists, band counts or matrices disagree.
        ValueError: On unknown rules or malformed inputs.

    """
    plan = make_plan(
        codes, rule, len(sources), confusions=confusions, weights=weights, mob=mob, ties=ties,
        epsilon=epsilon, nodata_label=nodata_label, undecided_label=undecided_label,
    )  # fmt: skip
    return plan.fuse_stacks(*prepare_stacks(sources, len(plan.codes)))


def fuse_labels(
    labels: Sequence[np.ndarray],
    codes: Sequence[int] | Sequence[Sequence[int]],
    rule: str = "vote",
    *,
    confusions: Sequence[ConfusionInput] | None = None,
    weights: np.ndarray | None = None,
    mob: str = "precision",
    ties: str = "probability",
    epsilon: float = 1e-6,
    nodata_label: int = 0,
    undecided_label: int = 0,
) -> FusionResult:
    """Fuse class maps ``(H, W)``; same options as :func:`fuse_probabilities`.

    ``vote`` and ``dempster_shafer_otb`` work on the raw labels (as OTB's
    ``FusionOfClassifications`` does); the other rules see each map as one-hot probabilities,
    a value that is not a class code being no data.
    """
    stacked = stack_labels(labels)
    plan = make_plan(
        codes, rule, stacked.shape[0], confusions=confusions, weights=weights, mob=mob,
        ties=ties, epsilon=epsilon, nodata_label=nodata_label, undecided_label=undecided_label,
    )  # fmt: skip
    return plan.fuse_labels(stacked)
