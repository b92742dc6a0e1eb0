"""The one F1 (`attpc_classify.metrics`) against scikit-learn and hand-computed values,
including a class missing from the truth, from the predictions, or from both."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from attpc_classify.metrics import binary_f1, confusion, f1_scores, scores_from_confusion

# A constructed 3-class confusion (rows true, columns predicted) and its hand-computed scores:
#   proton: tp 8, predicted 8+1+1 = 10, actual 8+2 = 10 -> P 0.8, R 0.8, F1 0.8
#   carbon: tp 5, predicted 2+5+0 = 7, actual 1+5+0 = 6 -> P 5/7, R 5/6, F1 10/13
#   other : tp 3, predicted 0+0+3 = 3, actual 1+0+3 = 4 -> P 1, R 0.75, F1 6/7
CONFUSION = np.array([[8, 2, 0], [1, 5, 0], [1, 0, 3]])


def test_scores_from_confusion_match_hand_computed_values():
    s = scores_from_confusion(CONFUSION)
    np.testing.assert_allclose(s["precision"], [0.8, 5 / 7, 1.0])
    np.testing.assert_allclose(s["recall"], [0.8, 5 / 6, 0.75])
    np.testing.assert_allclose(s["f1"], [0.8, 10 / 13, 6 / 7])
    np.testing.assert_allclose(s["macro_f1"], (0.8 + 10 / 13 + 6 / 7) / 3)
    np.testing.assert_allclose(s["accuracy"], 16 / 20)
    # a stack of matrices is scored per matrix; an empty class scores 0, not NaN
    stack = scores_from_confusion(np.stack([CONFUSION, np.diag([3, 0, 1])]))
    np.testing.assert_allclose(stack["f1"][1], [1.0, 0.0, 1.0])


CASES = {
    "all present": ([0, 0, 1, 1, 2, 2, 0, 1], [0, 1, 1, 2, 2, 0, 0, 1]),
    "absent from truth": ([0, 0, 1, 1, 0], [0, 2, 1, 0, 2]),  # class 2 only predicted
    "absent from predictions": ([0, 1, 2, 2, 1], [0, 1, 1, 0, 1]),  # class 2 never called
    "absent from both": ([0, 1, 1, 0, 0], [0, 1, 0, 0, 1]),  # class 2 nowhere
    "nothing right": ([0, 1, 2], [1, 2, 0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_f1_scores_equal_sklearn_with_all_labels(name):
    y, p = (np.array(v) for v in CASES[name])
    got = f1_scores(y, p, 3)
    want_macro = skm.f1_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0)
    want_f1 = skm.f1_score(y, p, labels=[0, 1, 2], average=None, zero_division=0)
    assert got["macro_f1"] == want_macro  # same formula: equal, not just close
    assert got["proton_f1"] == want_f1[0]
    assert got["accuracy"] == skm.accuracy_score(y, p)
    s = scores_from_confusion(confusion(y, p, 3))
    prec, rec, f1, _ = skm.precision_recall_fscore_support(y, p, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_array_equal(s["f1"], f1)
    np.testing.assert_allclose(s["precision"], prec)
    np.testing.assert_allclose(s["recall"], rec)


def test_a_class_absent_from_both_counts_as_zero():
    # The one definition averages over all K classes: class 2, absent everywhere, scores 0
    # (scikit-learn's default label set would leave it out and give the mean of two).
    y, p = (np.array(v) for v in CASES["absent from both"])
    got = f1_scores(y, p, 3)["macro_f1"]
    present_only = skm.f1_score(y, p, average="macro")
    assert got == pytest.approx(present_only * 2 / 3)


def test_confusion_matches_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    np.testing.assert_array_equal(confusion(y, p, 3), skm.confusion_matrix(y, p, labels=[0, 1, 2]))


def test_binary_f1_by_hand_and_sklearn():
    assert binary_f1(np.array([True, False]), np.array([True, True])) == pytest.approx(2 / 3)
    assert binary_f1(np.zeros(3, bool), np.zeros(3, bool)) == 0.0
    rng = np.random.default_rng(1)
    t, c = rng.random(100) < 0.3, rng.random(100) < 0.4
    assert binary_f1(t, c) == pytest.approx(skm.f1_score(t, c))
