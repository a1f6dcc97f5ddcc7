"""OTB's Dempster–Shafer fusion of class labels, reproduced pixel for pixel.

Source read: OTB's ``otbDSFusionOfClassifiersImageFilter.hxx`` (``OptimizedDSMassCombination``),
``otbConfusionMatrixToMassOfBelief.hxx``, ``otbConfusionMatrixMeasurements.hxx`` and the
``FusionOfClassifications`` application (OTB 8.1, the Debian ``otb-bin`` we test against).

Each source ``s`` gives the label ``L_s``; its mass of belief ``m_s = mob_s[L_s]`` (0 for a
label that is not a class code), the universe mass ``m_s(Ω)`` is 0, so ``m_s({not L}) = 1 - m``.
Per pixel, in this order:

1. Sources with the no-data label are skipped. Sources with ``0 < m < 1`` are combined **per
   label** by Dempster's rule, in source order: the first gives ``J = m``, ``J' = 1 - m``; each
   next one ``J <- J m / (1 - J (1-m) - J' m)``, ``J' <- J' (1-m) / (same)``. Sources with
   ``m = 1`` are set aside as "certain", sources with ``m = 0`` as "null".
2. If exactly one label was combined, it is the result (even if a "certain" source disagrees).
3. Else if some source is certain: its label if only one label is certain, else *undecided*.
4. Else if the number of distinct null labels equals the number of sources: *undecided*.
5. Else if no label was combined (all no-data, or no-data and null): *no-data*.
6. Else the belief of each combined label is ``Bel(L) = K B J_L / (1 - J_L)`` with
   ``A = sum J/(1-J)``, ``B = prod (1 - J)``, ``C = prod J'`` over the combined labels and
   ``K = 1 / ((1 + A) B - C)`` when every class code was combined, ``1 / ((1 + A) B)``
   otherwise (labels not combined have belief 0). The label of maximal belief wins; several
   labels sharing the maximum give *undecided*.

The floating-point operations follow OTB's order, so ties (exactly equal beliefs, e.g. two
sources of equal accuracy disagreeing) fall on the same pixels. Sources whose mass lies outside
[0, 1] (a negative kappa) are ignored, as in OTB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iota2_spot_s2.fusion._inputs import label_index
from iota2_spot_s2.fusion.vote import vote_shares


def _source_masses(labels: np.ndarray, masses: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    idx = label_index(labels, codes)
    per_source = [
        np.where(i >= 0, m[np.maximum(i, 0)], 0.0) for i, m in zip(idx, masses, strict=True)
    ]
    return np.stack(per_source)


def _combine(
    idx: np.ndarray, mass: np.ndarray, active: np.ndarray, n_codes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1: per-label recursive combination. Returns ``(J, J', present)``, each ``(K, H, W)``."""
    shape = (n_codes, *idx.shape[1:])
    joint, joint_c = np.zeros(shape), np.zeros(shape)
    present = np.zeros(shape, dtype=bool)
    for i_s, m, on in zip(idx, mass, active, strict=True):
        inner = on & (m > 0) & (m < 1)
        m_c = 1.0 - m - 0.0
        for k in range(n_codes):
            sel = inner & (i_s == k)
            if not sel.any():
                continue
            jp, jcp = joint[k], joint_c[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                kc = 1.0 / (1.0 - jp * m_c - jcp * m)
                new_j, new_jc = kc * (jp * m), kc * (jcp * m_c)
            again = sel & present[k]
            first = sel & ~present[k]
            joint[k] = np.where(first, m, np.where(again, new_j, jp))
            joint_c[k] = np.where(first, m_c, np.where(again, new_jc, jcp))
            present[k] |= sel
    return joint, joint_c, present


def _beliefs(joint: np.ndarray, joint_c: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Step 6: ``Bel({L})`` of every class code (0 where not combined), OTB's arithmetic."""
    n_codes = joint.shape[0]
    a, b, c = np.zeros(joint.shape[1:]), np.ones(joint.shape[1:]), np.ones(joint.shape[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(n_codes):
            p = present[k]
            a = np.where(p, a + joint[k] / (1.0 - joint[k]), a)
            b = np.where(p, b * (1.0 - joint[k]), b)
            c = np.where(p, c * joint_c[k], c)
        n = present.sum(axis=0)
        kk = np.where(n == n_codes, 1.0 / ((1.0 + a) * b - c), 1.0 / ((1.0 + a) * b))
        full = (n == n_codes) | ((n == n_codes - 1) & (kk == n_codes))
        bel = np.zeros(joint.shape)
        for k in range(n_codes):
            odds = joint[k] / (1.0 - joint[k])
            with_c = kk * (odds * b + (0.0 * c) / joint_c[k])
            bel[k] = np.where(present[k], np.where(full, with_c, (kk * odds) * b), 0.0)
    return bel


def _distinct_null_labels(labels: np.ndarray, null: np.ndarray) -> np.ndarray:
    count = np.zeros(labels.shape[1:], dtype=np.int64)
    for s in range(labels.shape[0]):
        seen = np.zeros(labels.shape[1:], dtype=bool)
        for t in range(s):
            seen |= null[t] & (labels[t] == labels[s])
        count += null[s] & ~seen
    return count


def dempster_shafer_otb(
    labels: np.ndarray,
    masses: np.ndarray,
    codes: Sequence[int],
    *,
    nodata_label: int = 0,
    undecided_label: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse label maps like ``otbcli_FusionOfClassifications -method dempstershafer``.

    Args:
        labels: int ``(S, H, W)`` label maps.
        masses: ``(S, K)`` masses of belief per source and class code
            (:func:`iota2_spot_s2.fusion.masses_of_belief`).
        codes: Class codes, increasing (OTB's universe: the labels of the confusion matrices).
        nodata_label: OTB's ``-nodatalabel``.
        undecided_label: OTB's ``-undecidedlabel``.

    Returns:
        ``(fused, probabilities)``: int64 ``(H, W)`` labels, and float64 ``(K, H, W)`` decision
        support summing to 1 — the combined labels' beliefs normalised (``J/(1-J)`` shares),
        one-hot on a step-2 label, shared among certain labels (step 3), vote shares where only
        null sources remain, NaN where every source is no-data.

    """
    labels = np.asarray(labels, dtype=np.int64)
    masses = np.asarray(masses, dtype=np.float64)
    codes_arr = np.asarray(codes, dtype=np.int64)
    if masses.shape != (labels.shape[0], codes_arr.size):
        raise ValueError(f"masses must have shape {(labels.shape[0], codes_arr.size)}")
    active = labels != nodata_label
    mass = _source_masses(labels, masses, codes)
    idx = label_index(labels, codes)
    joint, joint_c, present = _combine(idx, mass, active, codes_arr.size)
    certain = np.zeros_like(present)
    for i_s, m, on in zip(idx, mass, active, strict=True):
        for k in range(codes_arr.size):
            certain[k] |= on & (m == 1.0) & (i_s == k)
    bel = _beliefs(joint, joint_c, present)
    best = bel.max(axis=0)
    unique = (bel == best).sum(axis=0) == 1
    n_joint, n_certain = present.sum(axis=0), certain.sum(axis=0)
    out = np.where(unique, codes_arr[bel.argmax(axis=0)], undecided_label)
    out = np.where(n_joint == 0, nodata_label, out)
    null = active & (mass == 0.0)
    out = np.where(_distinct_null_labels(labels, null) == labels.shape[0], undecided_label, out)
    by_certain = np.where(n_certain == 1, codes_arr[certain.argmax(axis=0)], undecided_label)
    out = np.where(n_certain >= 1, by_certain, out)
    out = np.where(n_joint == 1, codes_arr[present.argmax(axis=0)], out)
    support = _support(joint, present, certain, labels, codes)
    return out, support


def _support(
    joint: np.ndarray,
    present: np.ndarray,
    certain: np.ndarray,
    labels: np.ndarray,
    codes: Sequence[int],
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(present, joint / (1.0 - joint), 0.0)
        by_odds = odds / odds.sum(axis=0)
        by_certain = certain / certain.sum(axis=0)
    n_joint, n_certain = present.sum(axis=0), certain.sum(axis=0)
    out = vote_shares(labels, codes)
    out = np.where((n_joint == 0) & (n_certain >= 1), by_certain, out)
    out = np.where(n_joint >= 2, np.where(n_certain >= 1, by_certain, by_odds), out)
    return np.where(n_joint == 1, present.astype(np.float64), out)
