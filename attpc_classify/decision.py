"""The decision rule: from class probabilities to one predicted class per event.

By default the predicted class is the most probable one (argmax). A run may instead carry a
*proton threshold* chosen on its validation events (``proton_threshold: val_f1`` in the
training config): an event is called proton when p(proton) >= threshold, and otherwise the
most probable of the other classes.

Why: argmax is the best rule only when the loss matched what is asked of the model. The
class-weighted loss (``optim.balance=weights``) lifts the rarer classes, so a 3-class
model trained with it calls proton some pile-up events that hold a proton track; physicists
who want a clean proton sample ask for the best proton F1 instead. Choosing the threshold on
the validation split keeps the test set out of it, and the threshold is recorded in
``model.json`` so that ``evaluate``, ``classify`` and ``compare`` all use the same rule.

The threshold answers for the class mix of the data it was chosen on (the simulated mix):
on data with another proton fraction, cut on the ``p_proton`` column of the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attpc_classify.metrics import binary_f1

#: Thresholds tried by `choose_proton_threshold` (a grid, not every validation score, so
#: that the choice does not hinge on one event).
THRESHOLD_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)


def decide(
    proba: np.ndarray, output_names: Sequence[str], proton_threshold: float | None = None
) -> np.ndarray:
    """Predicted class index per event, ``(N,)`` int64.

    Parameters
    ----------
    proba
        ``(N, K)`` probabilities in ``output_names`` order.
    output_names
        The model's outputs; must contain ``"proton"`` when a threshold is given.
    proton_threshold
        None: argmax. Else proton when p(proton) >= threshold, otherwise the most
        probable non-proton class.
    """
    proba = np.asarray(proba)
    if proton_threshold is None or len(proba) == 0:
        return proba.argmax(axis=1).astype(np.int64)
    k = list(output_names).index("proton")
    others = proba.copy()
    others[:, k] = -np.inf
    return np.where(proba[:, k] >= proton_threshold, k, others.argmax(axis=1)).astype(np.int64)


def choose_proton_threshold(p_proton: np.ndarray, is_proton: np.ndarray) -> dict[str, float]:
    """The threshold on p(proton) with the best proton F1 on (validation) events.

    Several grid points often tie; the median of the tied ones is taken, away from the
    edges of the plateau.

    Returns
    -------
    dict
        ``proton_threshold``, ``proton_f1`` at it, ``proton_f1_at_0.5`` for comparison
        (for a binary model 0.5 is argmax) and ``n_events``.
    """
    p_proton = np.asarray(p_proton, dtype=np.float64)
    is_proton = np.asarray(is_proton, dtype=bool)
    f1 = np.array([binary_f1(is_proton, p_proton >= t) for t in THRESHOLD_GRID])
    best = THRESHOLD_GRID[f1 == f1.max()]
    threshold = float(np.round(np.median(best), 3))
    return {
        "proton_threshold": threshold,
        "proton_f1": binary_f1(is_proton, p_proton >= threshold),
        "proton_f1_at_0.5": binary_f1(is_proton, p_proton >= 0.5),
        "n_events": len(p_proton),
    }
