"""Classification scores from confusion counts: the one F1 of the package.

Used by training (validation macro-F1, `engine.validate`), the transfer benchmark's cells,
the decision rule's proton F1 and the evaluation's bootstrap resamples, so that a number
called "macro-F1" means the same thing wherever it is printed or compared.

One definition of macro-F1: the mean of the per-class F1 over **all K classes of the
task**, a class's F1 being ``2 tp / (n_true + n_predicted)`` and 0 when that denominator
is 0 (the class is absent from both the truth and the predictions). This is
scikit-learn's ``f1_score(y, p, labels=range(K), average="macro", zero_division=0)``,
computed with the same formula, so the values agree to the last bit. Why all K and not
only the classes present: the bootstrap draws resamples in which a rare class may be
missing; averaging over a set of classes that changes from resample to resample would mix
different quantities into one interval. With a fixed K every resample, every epoch and
every cell of the benchmark are scored on the same scale. (Training used to average over
the classes present in truth or prediction; the two agree whenever every class occurs in
the validation labels, which a stratified split ensures.)
"""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class.

    Examples
    --------
    >>> confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, macro-F1 and accuracy from confusion counts.

    Parameters
    ----------
    cm
        ``(..., K, K)`` counts (rows = true class, columns = predicted), any leading shape
        (the evaluation passes one matrix per bootstrap resample, possibly weighted).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` of shape ``(..., K)``; ``macro_f1`` and
        ``accuracy`` of shape ``(...)``. A ratio with a zero denominator is 0, as in
        scikit-learn with ``zero_division=0``; macro-F1 averages all K classes (module
        docstring).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    predicted = cm.sum(axis=-2)
    actual = cm.sum(axis=-1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = actual + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = cm.sum(axis=(-2, -1))
    accuracy = np.divide(tp.sum(axis=-1), total, out=np.zeros_like(total), where=total > 0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": f1.mean(axis=-1),
        "accuracy": accuracy,
    }


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    """Proton F1 (class 0 in both tasks), macro-F1 over the ``k`` classes, accuracy.

    Examples
    --------
    >>> s = f1_scores(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    >>> round(s["proton_f1"], 4), round(s["macro_f1"], 4), s["accuracy"]
    (0.6667, 0.3889, 0.5)
    """
    s = scores_from_confusion(confusion(y_true, y_pred, k))
    return {
        "proton_f1": float(s["f1"][0]),
        "macro_f1": float(s["macro_f1"]),
        "accuracy": float(s["accuracy"]),
    }


def binary_f1(positive: np.ndarray, called: np.ndarray) -> float:
    """F1 of one class against the rest (boolean truth and calls); 0 when neither has
    a positive.

    Examples
    --------
    >>> binary_f1(np.array([True, False]), np.array([True, True]))  # 2 * 1 / (1 + 2)
    0.6666666666666666
    """
    positive = np.asarray(positive, dtype=bool)
    called = np.asarray(called, dtype=bool)
    tp = float(np.sum(positive & called))
    denom = float(np.sum(positive) + np.sum(called))
    return 2.0 * tp / denom if denom else 0.0
