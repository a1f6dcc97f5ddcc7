"""Confusion matrix and scores, checked against scikit-learn (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from iota2_spot_s2.evaluation import (
    ConfusionAccumulator,
    Scores,
    align_matrix,
    confusion_matrix,
    scores,
)

CODES = [11, 3, 42, 7, 255]  # deliberately unsorted: the matrix follows this order


def _random_labels(seed: int, n: int = 5000, p_correct: float = 0.6):
    rng = np.random.default_rng(seed)
    ref = rng.choice(CODES, size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    prod = np.where(rng.random(n) < p_correct, ref, rng.choice(CODES, size=n))
    return ref, prod


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matrix_and_scores_match_sklearn(seed):
    ref, prod = _random_labels(seed)
    cm = confusion_matrix(ref, prod, CODES)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, skm.confusion_matrix(ref, prod, labels=CODES))

    s = scores(cm, CODES)
    assert s.codes == tuple(CODES)
    assert s.n_pixels == ref.size
    assert s.overall_accuracy == pytest.approx(skm.accuracy_score(ref, prod))
    assert s.kappa == pytest.approx(skm.cohen_kappa_score(ref, prod, labels=CODES))
    p, r, f, sup = skm.precision_recall_fscore_support(ref, prod, labels=CODES, zero_division=0)
    np.testing.assert_allclose(s.precision, p)
    np.testing.assert_allclose(s.recall, r)
    np.testing.assert_allclose(s.f1, f)
    np.testing.assert_array_equal(s.support, sup)
    assert s.mean_f1 == pytest.approx(skm.f1_score(ref, prod, labels=CODES, average="macro"))


def test_mean_f1_only_over_classes_present_in_reference():
    rng = np.random.default_rng(5)
    ref = rng.choice([3, 7, 11], size=2000)  # 42 and 255 absent from the reference
    prod = np.where(rng.random(2000) < 0.7, ref, rng.choice(CODES, size=2000))
    s = scores(confusion_matrix(ref, prod, CODES), CODES)
    present = [3, 7, 11]
    expected = skm.f1_score(ref, prod, labels=present, average="macro", zero_division=0)
    assert s.mean_f1 == pytest.approx(expected)
    absent = [CODES.index(42), CODES.index(255)]
    assert all(s.recall[i] == 0.0 and s.f1[i] == 0.0 and s.support[i] == 0 for i in absent)
    # 42 was predicted but never right: precision defined and zero
    assert s.precision[CODES.index(42)] == 0.0


def test_undefined_scores_are_zero_not_nan():
    empty = scores(np.zeros((2, 2), dtype=np.int64), [1, 2])
    assert (empty.overall_accuracy, empty.kappa, empty.mean_f1) == (0.0, 0.0, 0.0)
    single = scores(np.array([[10, 0], [0, 0]]), [1, 2])
    assert single.overall_accuracy == 1.0
    assert single.kappa == 0.0  # pe == 1: kappa undefined
    assert single.f1 == (1.0, 0.0)
    assert single.mean_f1 == 1.0
    assert not any(np.isnan(v) for v in single.precision + single.recall + single.f1)


def test_reference_zero_ignored_and_unmapped_counted():
    ref = np.array([[0, 1, 1, 2], [2, 2, 9, 0]], dtype=np.uint16)
    prod = np.array([[1, 1, 0, 2], [1, 5, 2, 2]], dtype=np.uint8)
    acc = ConfusionAccumulator([1, 2])
    acc.update(ref, prod)
    # kept pairs (ref, prod): (1,1) (2,2) (2,1); (1,0) and (2,5) unmapped; ref 9 unknown
    assert acc.matrix.tolist() == [[1, 0], [1, 1]]
    assert acc.unmapped_produced.tolist() == [1, 1]
    assert acc.unknown_reference == 1


def test_mask_restricts_pixels():
    ref, prod = _random_labels(3, n=1000)
    mask = np.random.default_rng(4).random(1000) < 0.3
    got = confusion_matrix(ref, prod, CODES, mask=mask)
    np.testing.assert_array_equal(got, skm.confusion_matrix(ref[mask], prod[mask], labels=CODES))


def test_accumulator_over_windows_equals_one_shot():
    rng = np.random.default_rng(7)
    ref = rng.choice([0, *CODES], size=(130, 97)).astype(np.uint16)
    prod = rng.choice([0, *CODES], size=(130, 97)).astype(np.uint8)
    one_shot = ConfusionAccumulator(CODES)
    one_shot.update(ref, prod)
    windowed = ConfusionAccumulator(CODES)
    for r in range(0, 130, 32):
        for c in range(0, 97, 40):
            windowed.update(ref[r : r + 32, c : c + 40], prod[r : r + 32, c : c + 40])
    np.testing.assert_array_equal(windowed.matrix, one_shot.matrix)
    np.testing.assert_array_equal(windowed.unmapped_produced, one_shot.unmapped_produced)
    valid = ref.ravel() != 0
    expected = skm.confusion_matrix(ref.ravel()[valid], prod.ravel()[valid], labels=CODES)
    np.testing.assert_array_equal(windowed.matrix, expected)
    halves = ConfusionAccumulator(CODES), ConfusionAccumulator(CODES)
    halves[0].update(ref[:65], prod[:65])
    halves[1].update(ref[65:], prod[65:])
    halves[0].merge(halves[1])
    np.testing.assert_array_equal(halves[0].matrix, one_shot.matrix)


def test_float_labels_with_nan():
    ref = np.array([1.0, 2.0, np.nan, 2.0])
    prod = np.array([1.0, np.nan, 2.0, 2.5])
    acc = ConfusionAccumulator([1, 2])
    acc.update(ref, prod)
    assert acc.matrix.tolist() == [[1, 0], [0, 0]]
    assert acc.unmapped_produced.tolist() == [0, 2]
    assert acc.unknown_reference == 1


@pytest.mark.parametrize("codes", [[], [1, 1], [0, 1], [-3, 1]])
def test_bad_codes_rejected(codes):
    with pytest.raises(ValueError):
        ConfusionAccumulator(codes)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.ones((2, 2)), np.ones((2, 3)), [1])


def test_scores_dict_round_trip():
    ref, prod = _random_labels(9)
    s = scores(confusion_matrix(ref, prod, CODES), CODES)
    d = s.to_dict()
    assert isinstance(d["f1"], list) and len(d["f1"]) == len(CODES)
    assert Scores.from_dict(d) == s
    assert s.per_class()[42]["support"] == int((ref == 42).sum())


def test_align_matrix_places_counts_by_code():
    m = np.array([[5, 1, 0], [2, 7, 3]])
    out = align_matrix(m, [7, 3], [3, 7, 42], CODES)
    assert out.shape == (5, 5)
    i = {c: k for k, c in enumerate(CODES)}
    assert out[i[7], i[3]] == 5 and out[i[7], i[7]] == 1
    assert out[i[3], i[3]] == 2 and out[i[3], i[7]] == 7 and out[i[3], i[42]] == 3
    assert out.sum() == m.sum()
    with pytest.raises(ValueError, match="not in codes"):
        align_matrix(m, [7, 99], [3, 7, 42], CODES)


def test_small_unsigned_dtypes_match_wide_ints():
    rng = np.random.default_rng(11)
    codes = [300, 1, 200, 17]  # 300 cannot occur in uint8 labels
    ref = rng.choice([0, 1, 17, 200, 300, 999], size=(50, 60)).astype(np.uint16)
    prod = rng.choice([0, 1, 17, 200, 255], size=(50, 60)).astype(np.uint8)
    narrow = ConfusionAccumulator(codes)
    narrow.update(ref, prod)
    wide = ConfusionAccumulator(codes)
    wide.update(ref.astype(np.int64), prod.astype(np.int64))
    np.testing.assert_array_equal(narrow.matrix, wide.matrix)
    np.testing.assert_array_equal(narrow.unmapped_produced, wide.unmapped_produced)
    assert narrow.unknown_reference == wide.unknown_reference == int((ref == 999).sum())
    valid = ~np.isin(ref, [0, 999]) & np.isin(prod, codes)
    expected = skm.confusion_matrix(ref[valid], prod[valid], labels=codes)
    np.testing.assert_array_equal(narrow.matrix, expected)
