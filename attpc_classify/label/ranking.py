"""The order in which events are shown: most useful first, with a random share.

``uncertain`` ranks by the *margin*, p(first) - p(second) of the model's probabilities,
lowest first. The margin is the distance to the decision boundary between the two
classes the model hesitates between, which is what a label can move; entropy also rises
with a flat third class the model already rules out, and for a binary model both orders
agree. Every ``1 / random_share``-th place goes to an event drawn at random from the
rest, so the labelled set also holds an unbiased sample of the run (for checking the
model on real data) and the ranking cannot keep one kind of event out of view.

``random`` is a seeded permutation, ``file`` the order of the files and events given.
Filters (predicted class, probability range of the predicted class) are applied first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_prep.errors import InputError

ORDERS: tuple[str, ...] = ("uncertain", "random", "file")


def margin(proba: np.ndarray) -> np.ndarray:
    """p(most probable) - p(second most probable) per event, ``(N,)``."""
    top2 = np.sort(np.asarray(proba, dtype=np.float64), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def select(
    predicted: np.ndarray | None,
    p_predicted: np.ndarray | None,
    n: int,
    *,
    only: Sequence[int] | None = None,
    p_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Positions of the events that pass the filters (predicted class in ``only``,
    probability of the predicted class in ``[low, high]``); all when no model."""
    keep = np.ones(n, dtype=bool)
    if not 0.0 <= p_range[0] <= p_range[1] <= 1.0:
        raise InputError(f"--p-min/--p-max must satisfy 0 <= min <= max <= 1, got {p_range}")
    if predicted is None:
        if only or p_range != (0.0, 1.0):
            raise InputError("--predicted and --p-min/--p-max need a model (--model RUN)")
        return np.arange(n)
    if only:
        keep &= np.isin(predicted, np.asarray(only))
    lo, hi = p_range
    keep &= (p_predicted >= lo) & (p_predicted <= hi)
    return np.flatnonzero(keep)


def order(
    candidates: np.ndarray,
    order: str,
    *,
    proba: np.ndarray | None = None,
    random_share: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """The candidates (positions) in showing order.

    Parameters
    ----------
    candidates
        Positions to order (file order).
    order
        ``uncertain`` (needs ``proba``), ``random`` or ``file``.
    proba
        ``(N, K)`` probabilities of all events (indexed by position).
    random_share
        ``uncertain`` only: fraction of places given to random events (0 = none).
    seed
        For the random parts; the same seed gives the same order (resume).
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if order == "file":
        return candidates
    if order == "random":
        return rng.permutation(candidates)
    if order != "uncertain":
        raise InputError(f"unknown order {order!r}; choose one of {list(ORDERS)}")
    if proba is None:
        raise InputError("--order uncertain needs a model (--model RUN)")
    if not 0.0 <= random_share < 1.0:
        raise InputError(f"random share must be in [0, 1), got {random_share}")
    # stable sort: ties keep file order, so the order does not depend on the sort method
    ranked = candidates[np.argsort(margin(proba[candidates]), kind="stable")]
    if random_share == 0.0 or len(ranked) < 2:
        return ranked
    every = max(2, round(1.0 / random_share))
    out = np.empty_like(ranked)
    used = np.zeros(len(ranked), dtype=bool)  # by rank
    draw = rng.permutation(len(ranked))  # random ranks, consumed in order
    next_ranked, next_draw = 0, 0
    for slot in range(len(ranked)):
        if slot % every == every - 1:  # a random place: first undrawn, unused rank
            while used[draw[next_draw]]:
                next_draw += 1
            r = int(draw[next_draw])
        else:
            while used[next_ranked]:
                next_ranked += 1
            r = next_ranked
        used[r] = True
        out[slot] = ranked[r]
    return out
