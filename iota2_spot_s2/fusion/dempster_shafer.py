"""Dempster–Shafer fusion: masses of belief from confusion matrices, and a probability-aware rule.

Masses of belief (:func:`mass_of_belief`), as OTB's ``ConfusionMatrixToMassOfBelief`` computes
them from a validation confusion matrix (rows = reference, columns = produced; OTB's
``ConfusionMatrixMeasurements``), selected like ``-method.dempstershafer.mob``:

- ``precision``: per class, ``TP / (TP + FP)`` (column-wise; 0 for a class never produced);
- ``recall``: per class, ``TP / (TP + FN)`` (row-wise; 0 for a class absent from the reference);
- ``accuracy``: the overall accuracy, one value for every class;
- ``kappa``: Cohen's kappa, one value for every class; OTB sets it to **1** when the chance
  agreement is 1 (within 1e-10) — unlike :func:`iota2_spot_s2.evaluation.scores`, which gives 0
  — and a negative kappa stays negative (OTB then ignores that source, see
  :mod:`iota2_spot_s2.fusion.ds_otb`). Every value is 0 for an empty matrix.

Two rules use them:

- :func:`iota2_spot_s2.fusion.ds_otb.dempster_shafer_otb` reproduces OTB's decision on **class
  labels** (``FusionOfClassifications -method dempstershafer``), pixel for pixel.
- :func:`dempster_shafer_probabilities` (here) uses the whole probability vector of each source.
  Source ``s`` with probabilities ``p_s`` and per-class reliabilities ``r_s`` (the masses above,
  clipped to [0, 1]) is the *discounted Bayesian* body of evidence
  ``m_s({k}) = r_s[k] p_s[k]`` and ``m_s(Ω) = 1 - sum_k r_s[k] p_s[k]`` (ignorance), combined
  with Dempster's rule (conjunctive, renormalised by ``1 - conflict``); a source without data is
  the vacuous body ``m(Ω) = 1``, Dempster's neutral element. The output probabilities are the
  pignistic transform ``BetP(k) = m({k}) + m(Ω) / K``, and the decision its argmax (the class of
  maximal belief). Where the sources are in total conflict (``1 - conflict = 0``, e.g. two
  reliability-1 sources certain of different classes) the mean rule is used.

How the two differ: OTB only sees each source's label ``L`` and gives it the mass ``m({L})``,
the rest ``1 - m`` going to the complement ``{not L}`` (no ignorance); agreeing sources are
first combined per label and the decision maximises the belief ``Bel({L})``, which for OTB's
masses amounts to comparing ``prod_s m_s / prod_s (1 - m_s)`` per label. The probability-aware
rule keeps the sources' doubts between classes and sends the unreliability to Ω instead of to
``{not L}``. With one-hot inputs and two sources both pick the label of higher mass; with three
sources they can differ (two weak sources agreeing on A against one stronger on B: OTB multiplies
the two odds — ``0.4, 0.4`` vs ``0.5`` gives B — the probability-aware rule adds the evidence
— A).
"""

from __future__ import annotations

import numpy as np

from iota2_spot_s2.fusion._inputs import MOBS, check_choice
from iota2_spot_s2.fusion.rules import mean_rule

_KAPPA_EPSILON = 1e-10


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _otb_kappa(cm: np.ndarray, n: int) -> float:
    """Kappa computed in OTB's order of operations (double sums, chance rate ``/ N**2``)."""
    lucky = 0.0
    for i in range(cm.shape[0]):
        lucky += float(cm[i, :].sum()) * float(cm[:, i].sum())
    lucky /= float(n) ** 2.0
    accuracy = float(np.trace(cm)) / float(n)
    if abs(1.0 - lucky) > _KAPPA_EPSILON:
        return (accuracy - lucky) / (1.0 - lucky)
    return 1.0


def mass_of_belief(confusion: np.ndarray, mob: str = "precision") -> np.ndarray:
    """Per-class masses of belief of one source from its validation confusion matrix.

    Args:
        confusion: ``(K, K)`` counts, rows = reference, columns = produced, in code order.
        mob: ``"precision"``, ``"recall"``, ``"accuracy"`` or ``"kappa"`` (see module docs).

    Returns:
        float64 ``(K,)``.

    """
    check_choice(mob, MOBS, "mass of belief measure")
    cm = np.asarray(confusion, dtype=np.int64)
    k = cm.shape[0]
    n = int(cm.sum())
    if n == 0:
        return np.zeros(k)
    diag = np.diag(cm).astype(np.float64)
    if mob == "precision":
        return _ratio(diag, cm.sum(axis=0).astype(np.float64))
    if mob == "recall":
        return _ratio(diag, cm.sum(axis=1).astype(np.float64))
    if mob == "accuracy":
        return np.full(k, float(np.trace(cm)) / float(n))
    return np.full(k, _otb_kappa(cm, n))


def masses_of_belief(confusions: np.ndarray, mob: str = "precision") -> np.ndarray:
    """:func:`mass_of_belief` for each source: ``(S, K, K)`` matrices -> ``(S, K)``."""
    return np.stack([mass_of_belief(cm, mob) for cm in confusions])


def dempster_shafer_probabilities(
    stacks: np.ndarray, valid: np.ndarray, reliability: np.ndarray
) -> np.ndarray:
    """Probability-aware Dempster–Shafer fusion (see the module docstring).

    Args:
        stacks: ``(S, K, H, W)`` probabilities (zeros where a source has no data).
        valid: ``(S, H, W)`` where each source has data.
        reliability: ``(S, K)`` per-source, per-class masses of belief (e.g. precision).

    Returns:
        float64 ``(K, H, W)`` pignistic probabilities, NaN where no source has data.

    """
    r = np.clip(np.asarray(reliability, dtype=np.float64), 0.0, 1.0)
    if r.shape != stacks.shape[:2]:
        raise ValueError(f"reliability must have shape {stacks.shape[:2]}, got {r.shape}")
    singles = stacks * r[:, :, None, None] * valid[:, None]
    omegas = 1.0 - singles.sum(axis=1)
    acc, acc_omega = singles[0], omegas[0]
    broken = np.zeros(valid.shape[1:], dtype=bool)
    for single, omega in zip(singles[1:], omegas[1:], strict=True):
        combined = acc * single + acc * omega + acc_omega * single
        combined_omega = acc_omega * omega
        total = combined.sum(axis=0) + combined_omega
        broken |= total <= 0
        safe = np.where(total > 0, total, 1.0)
        acc, acc_omega = combined / safe, combined_omega / safe
    fused = acc + acc_omega / stacks.shape[1]
    if broken.any():
        fused = np.where(broken, mean_rule(stacks, valid), fused)
    fused[:, ~valid.any(axis=0)] = np.nan
    return fused
