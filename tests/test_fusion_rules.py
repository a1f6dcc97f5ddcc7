"""Fusion rules on small hand-computed examples (expected values worked out by hand here)."""

from __future__ import annotations

import numpy as np
import pytest

from iota2_spot_s2.fusion import (
    CodeMismatchError,
    choice_map,
    class_weights,
    dempster_shafer_probabilities,
    fuse_labels,
    fuse_probabilities,
    majority_vote,
    make_plan,
    mass_of_belief,
)

CODES = [10, 20, 30]


def px(*values: float) -> np.ndarray:
    """One pixel's probability vector as a (K, 1, 1) stack."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 1, 1)


def probs(result) -> np.ndarray:
    return result.probabilities[:, 0, 0].astype(np.float64)


def test_mean_rule_hand_example():
    r = fuse_probabilities([px(0.6, 0.3, 0.1), px(0.2, 0.7, 0.1)], CODES, "mean")
    np.testing.assert_allclose(probs(r), [0.4, 0.5, 0.1], atol=1e-6)
    assert r.classes[0, 0] == 20
    assert r.confidence[0, 0] == pytest.approx(0.5, abs=1e-6)
    assert r.choice[0, 0] == 3  # only the second source chose class 20


def test_product_rule_hand_example():
    # 0.5*0.2=0.10, 0.3*0.6=0.18, 0.2*0.2=0.04 -> / 0.32
    r = fuse_probabilities([px(0.5, 0.3, 0.2), px(0.2, 0.6, 0.2)], CODES, "product")
    np.testing.assert_allclose(probs(r), [0.3125, 0.5625, 0.125], atol=1e-6)


def test_product_epsilon_floor_prevents_a_veto():
    eps = 1e-3
    r = fuse_probabilities([px(1, 0, 0), px(0, 1, 0)], CODES, "product", epsilon=eps)
    total = eps + eps + eps * eps  # [1*eps, eps*1, eps*eps]
    np.testing.assert_allclose(probs(r), [eps / total, eps / total, eps * eps / total], rtol=1e-5)


def test_class_weights_from_f1():
    w = class_weights([[0.9, 0.3, 0.0], [0.3, 0.9, 0.0]])
    np.testing.assert_allclose(w, [[0.75, 0.25, 0.5], [0.25, 0.75, 0.5]])


def test_weighted_mean_hand_example():
    weights = np.array([[0.75, 0.25, 0.5], [0.25, 0.75, 0.5]])
    r = fuse_probabilities(
        [px(0.6, 0.3, 0.1), px(0.2, 0.7, 0.1)], CODES, "weighted_mean", weights=weights
    )
    # q = [0.75*0.6+0.25*0.2, 0.25*0.3+0.75*0.7, 0.5*0.1+0.5*0.1] = [0.5, 0.6, 0.1]; / 1.2
    np.testing.assert_allclose(probs(r), [0.5 / 1.2, 0.6 / 1.2, 0.1 / 1.2], atol=1e-6)


def test_weighted_mean_weights_come_from_validation_f1():
    # source 1: class 10 P=1 R=0.8 F1=8/9, class 20 P=10/12 R=1 F1=10/11, class 30 absent: 0
    cm1 = np.array([[8, 2, 0], [0, 10, 0], [0, 0, 0]])
    cm2 = np.array([[5, 5, 0], [5, 5, 0], [0, 0, 10]])  # F1 = 0.5, 0.5, 1
    plan = make_plan(CODES, "weighted_mean", 2, confusions=[cm1, cm2])
    f1 = np.array([[8 / 9, 10 / 11, 0.0], [0.5, 0.5, 1.0]])
    np.testing.assert_allclose(plan.weights, f1 / f1.sum(axis=0))


def test_source_without_data_is_left_out():
    nan = np.full((3, 1, 1), np.nan)
    r = fuse_probabilities([px(0.6, 0.3, 0.1), nan], CODES, "mean")
    np.testing.assert_allclose(probs(r), [0.6, 0.3, 0.1], atol=1e-6)
    assert r.choice[0, 0] == 2  # the first source decided alone
    zeros = np.zeros((3, 1, 1))  # an all-zero vector is no data too
    r = fuse_probabilities([nan, zeros], CODES, "product")
    assert not r.valid[0, 0] and r.classes[0, 0] == 0 and r.choice[0, 0] == 0
    assert np.isnan(r.probabilities).all() and np.isnan(r.confidence[0, 0])


def test_probamap_rounding_is_renormalised():
    r = fuse_probabilities([px(0.301, 0.301, 0.4)], CODES, "mean")  # sums to 1.002
    assert probs(r).sum() == pytest.approx(1.0, abs=1e-6)


def test_mismatched_code_lists_raise_a_clear_error():
    sources = [px(0.6, 0.3, 0.1), px(0.2, 0.7, 0.1)]
    with pytest.raises(CodeMismatchError, match=r"source 2 lists class codes \[10, 20, 40\]"):
        fuse_probabilities(sources, [[10, 20, 30], [10, 20, 40]], "mean")
    with pytest.raises(CodeMismatchError, match="4 codes"):
        fuse_probabilities(sources, [10, 20, 30, 40], "mean")
    with pytest.raises(ValueError, match="strictly increasing"):
        fuse_probabilities(sources, [20, 10, 30], "mean")
    with pytest.raises(CodeMismatchError, match="shape"):
        fuse_probabilities(sources, CODES, "dempster_shafer", confusions=[np.eye(2)] * 2)


def test_same_code_lists_per_source_are_accepted():
    r = fuse_probabilities([px(0.6, 0.3, 0.1)] * 2, [CODES, CODES], "mean")
    assert r.codes == tuple(CODES)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse_probabilities([px(600, 300, 100)], CODES, "mean")
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fuse_probabilities([px(0.6, 0.3, 0.1)], CODES, "median")
    with pytest.raises(ValueError, match="confusion matrix per source"):
        fuse_probabilities([px(0.6, 0.3, 0.1)], CODES, "dempster_shafer")
    with pytest.raises(ValueError, match="also a class code"):
        fuse_probabilities([px(0.6, 0.3, 0.1)], CODES, "vote", undecided_label=20)


def test_choice_map_semantics_two_sources():
    labels = np.array([[[1, 1, 1, 0, 1]], [[1, 2, 2, 2, 0]]])
    has_data = np.array([[[1, 1, 1, 0, 1]], [[1, 1, 1, 1, 0]]], dtype=bool)
    fused = np.array([[1, 1, 2, 2, 3]])
    # agree -> 1; first alone -> 2; second alone -> 3; first has no data, second decided -> 3;
    # fused class chosen by nobody -> 0
    assert choice_map(labels, has_data, fused).tolist() == [[1, 2, 3, 3, 0]]


def test_choice_map_three_sources():
    labels = np.array([[[1, 1, 1, 1]], [[1, 1, 2, 1]], [[1, 2, 3, 2]]])
    has_data = np.ones_like(labels, dtype=bool)
    has_data[2, 0, 3] = False
    fused = np.array([[1, 1, 3, 1]])
    # all agree -> 1; two of three -> S + 2 = 5; third alone -> 1 + 3 = 4;
    # two agree and the third has no data -> all sources with data agree -> 1
    assert choice_map(labels, has_data, fused).tolist() == [[1, 5, 4, 1]]


def test_choice_zero_when_the_fused_class_is_nobody_s():
    r = fuse_probabilities([px(0.5, 0.1, 0.4), px(0.1, 0.5, 0.4)], CODES, "mean")
    assert r.classes[0, 0] == 30 and r.choice[0, 0] == 0


def test_vote_tie_modes():
    # sources vote 10, 20, 0 (no data): a tie between 10 and 20
    labels = np.array([[[10]], [[20]], [[0]]])
    assert majority_vote(labels, CODES, ties="undecided", undecided_label=99)[0, 0] == 99
    assert majority_vote(labels, CODES, ties="otb", undecided_label=99)[0, 0] == 99
    support = px(0.7, 1.3, 0.0)  # summed probabilities favour 20
    assert majority_vote(labels, CODES, ties="probability", support=support)[0, 0] == 20
    assert majority_vote(labels, CODES, ties="probability")[0, 0] == 10  # source order
    # OTB counts the no-data label as a vote: (0, 0, 30) -> 0; the other modes -> 30
    labels = np.array([[[0]], [[0]], [[30]]])
    assert majority_vote(labels, CODES, ties="otb", undecided_label=99)[0, 0] == 0
    assert majority_vote(labels, CODES, ties="undecided", undecided_label=99)[0, 0] == 30
    nodata = np.zeros((2, 1, 1), dtype=int)
    assert majority_vote(nodata, CODES, ties="undecided", nodata_label=0)[0, 0] == 0


def test_vote_on_probabilities_gives_vote_shares():
    r = fuse_probabilities([px(0.6, 0.3, 0.1), px(0.2, 0.7, 0.1), px(0.5, 0.4, 0.1)], CODES, "vote")
    assert r.classes[0, 0] == 10
    np.testing.assert_allclose(probs(r), [2 / 3, 1 / 3, 0.0], atol=1e-6)
    assert r.choice[0, 0] == 5  # two of three sources


def test_mass_of_belief_hand_example():
    cm = np.array([[8, 2], [0, 10]])  # rows = reference
    np.testing.assert_allclose(mass_of_belief(cm, "precision"), [1.0, 10 / 12])
    np.testing.assert_allclose(mass_of_belief(cm, "recall"), [0.8, 1.0])
    np.testing.assert_allclose(mass_of_belief(cm, "accuracy"), [0.9, 0.9])
    # pe = (10*8 + 10*12) / 400 = 0.5 -> kappa = (0.9 - 0.5) / 0.5
    np.testing.assert_allclose(mass_of_belief(cm, "kappa"), [0.8, 0.8])
    # OTB's convention: chance agreement 1 -> kappa 1 (not 0)
    np.testing.assert_allclose(mass_of_belief(np.array([[5, 0], [0, 0]]), "kappa"), [1.0, 1.0])
    np.testing.assert_allclose(mass_of_belief(np.zeros((2, 2)), "precision"), [0.0, 0.0])


def test_probability_dempster_shafer_hand_example():
    stacks = np.stack([px(0.7, 0.3), px(0.4, 0.6)])
    valid = np.ones((2, 1, 1), dtype=bool)
    fused = dempster_shafer_probabilities(stacks, valid, np.array([[0.8, 0.8], [0.5, 0.5]]))
    # m1: a .56 b .24 O .2 ; m2: a .2 b .3 O .5 ; a = .112+.28+.04, b = .072+.12+.06, O = .1
    # 1 - conflict = .784 ; BetP = (m + O/2) / .784
    np.testing.assert_allclose(fused[:, 0, 0], [0.482 / 0.784, 0.302 / 0.784], atol=1e-9)


def test_probability_ds_total_conflict_falls_back_to_mean():
    stacks = np.stack([px(1.0, 0.0), px(0.0, 1.0)])
    fused = dempster_shafer_probabilities(stacks, np.ones((2, 1, 1), bool), np.ones((2, 2)))
    np.testing.assert_allclose(fused[:, 0, 0], [0.5, 0.5])


def test_probability_ds_and_otb_ds_differ_as_documented():
    """Two weak sources agreeing (OA 0.4) against a stronger one (OA 0.5).

    OTB: odds(A) = (.4*.4)/(.6*.6) = 0.44 < odds(B) = 1 -> B.
    Probability-aware: m(A) = 1 - .6*.6 = .64 then with .5 on B: A .32 vs B .18 -> A.
    """
    weak = np.array([[2, 3], [3, 2]])  # OA 0.4
    strong = np.array([[1, 1], [1, 1]])  # OA 0.5
    codes = [1, 2]
    sources = [px(1.0, 0.0), px(1.0, 0.0), px(0.0, 1.0)]
    options = {"confusions": [weak, weak, strong], "mob": "accuracy"}
    otb_like = fuse_probabilities(sources, codes, "dempster_shafer_otb", **options)
    aware = fuse_probabilities(sources, codes, "dempster_shafer", **options)
    assert otb_like.classes[0, 0] == 2 and otb_like.choice[0, 0] == 4  # third source alone
    assert aware.classes[0, 0] == 1 and aware.choice[0, 0] == 5  # two of three
    # two sources: both pick the label of higher mass
    two = [px(1.0, 0.0), px(0.0, 1.0)]
    for rule in ("dempster_shafer_otb", "dempster_shafer"):
        r = fuse_probabilities(two, codes, rule, confusions=[weak, strong], mob="accuracy")
        assert r.classes[0, 0] == 2


def test_fuse_labels_probability_rules_use_one_hot():
    a = np.array([[10, 20, 0]])
    b = np.array([[10, 30, 30]])
    r = fuse_labels([a, b], CODES, "mean")
    assert r.classes.tolist() == [[10, 20, 30]]  # tie 20/30 -> first code; no data left out
    np.testing.assert_allclose(r.probabilities[:, 0, 2], [0, 0, 1])
    assert r.choice.tolist() == [[1, 2, 3]]
