"""Other ways to use a few hundred target labels with the recommended trees.

    .venv/bin/python scripts/tree_adapt_variants.py TRAIN.h5 TEST.h5 POOL.h5 [POOL.h5 ...]
        [--seeds 3] [--only VARIANT ...]

TRAIN: the trees' simulated training events, TEST: the target run's labelled test events,
POOL: labelled target events of other seeds (the "hand-labelled" events), all preprocessed
with configs/prep/features.yaml. scikit-learn's `HistGradientBoostingClassifier` with the
recommended settings (127 leaves, learning rate 0.1, L2 1.0, class-balanced), fitted here
directly on the features so that every variant sees the same trees; each seed is another
20 % validation split of the simulation and of the pool, and another tree seed. The
variants, scored on TEST (proton F1 of the argmax, 3-class macro-F1):

* simulation only (zero-shot);
* refit on the simulation plus the labels, the labels weighted to the simulation's total
  (``train ... model.init=run:TREES model.target_share=0.5``, `attpc_classify.trees_adapt`;
  the application's default until 2026-12-07, 0.25 now) and four times that;
* the labels alone;
* boosting continued on the labels from the simulation's trees (warm start; scikit-learn
  bins each fit's data anew, so the first fit's bins are kept, else the old trees'
  binned thresholds would be read on the new bins); the number of added iterations
  chosen on the pool's validation split;
* vector scaling: a multinomial logistic regression on the simulation trees' logits,
  fitted on the labels (Guo et al. 2017's calibration map, here as a domain correction);
* the mean of the simulation trees' and the label trees' probabilities;
* the proton cut chosen on the labels (`attpc_classify.decision.choose_proton_threshold`
  on the simulation trees' p(proton) of the pool's training part; proton where p(proton)
  reaches it, else the likelier other class);
* importance weights, no labels: a classifier of simulated against pool events (15
  leaves, out of fold) gives each simulated event p / (1 - p), capped at 100 times the
  median and scaled to mean 1, and the trees are refitted with those weights, so the
  simulated events that look like the target's count more (covariate-shift correction,
  Shimodaira 2000; the pool's labels are not read).

``--only`` runs the variants whose key (`VARIANTS`) is named; by default the first five
(the last two were added on 2026-12-06). No setting is chosen on TEST.
docs/sim-to-real.md ("After adaptation on the stand-in").
"""

from __future__ import annotations

import argparse
import copy

import h5py
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from attpc_classify.data import stratified_split
from attpc_classify.decision import choose_proton_threshold, decide

LEAVES = 127
#: boosting iterations the continuation may add (chosen on the pool's validation split)
ADDED = (5, 10, 20, 40, 80, 160)
#: the variants ``--only`` may name (the zero-shot row is always there); by default the
#: first five, the table scripts/sim_to_real.py writes
VARIANTS = ("refit", "alone", "continued", "scaling", "mean", "cut", "weights")
DEFAULT = VARIANTS[:5]
#: importance weights are capped at this many times their median (a few simulated events
#: that look like nothing else in the simulation must not carry the refit)
WEIGHT_CAP = 100.0
HEADER = ("| variant | labels | proton F1 (mean over seeds) | macro-F1 | proton F1 per seed |\n"
          "|---|---|---|---|---|")  # fmt: skip


class KeptBins(HistGradientBoostingClassifier):
    """A warm start that bins new data with the first fit's bins."""

    def _bin_data(self, X, sample_weight, is_training_data):
        kept = getattr(self, "kept_bins_", None)
        if is_training_data and kept is not None:
            self._bin_mapper = kept
            return kept.transform(X)
        return super()._bin_data(X, sample_weight, is_training_data)


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled events of an image file: features (float64) and 3-class labels."""
    with h5py.File(path, "r") as f:
        x, y = f["features"][:].astype(np.float64), f["label"][:].astype(np.int64)
    return x[y >= 0], y[y >= 0]


def trees(seed: int, leaves: int = LEAVES) -> KeptBins:
    return KeptBins(learning_rate=0.1, max_iter=300, max_leaf_nodes=leaves,
                    l2_regularization=1.0, class_weight="balanced", early_stopping=True,
                    random_state=seed)  # fmt: skip


def scores(proba: np.ndarray, y: np.ndarray, cut: float | None = None) -> tuple[float, float]:
    """Proton F1 and macro-F1 of the calls: argmax, or proton from p(proton) >= ``cut``."""
    pred = decide(proba, ("proton", "carbon", "other"), cut)
    return float(f1_score(y == 0, pred == 0)), float(f1_score(y, pred, average="macro"))


def target_weights(xs: np.ndarray, xp: np.ndarray, seed: int) -> np.ndarray:
    """Importance weights of the simulated events ``xs`` toward the target events ``xp``
    (labels unused): p / (1 - p) of an out-of-fold classifier of target against
    simulation, capped at `WEIGHT_CAP` times the median and scaled to mean 1."""
    x = np.concatenate([xs, xp])
    d = np.concatenate([np.zeros(len(xs)), np.ones(len(xp))])
    balance = np.where(d == 1, len(xs) / len(xp), 1.0)
    dom = HistGradientBoostingClassifier(max_leaf_nodes=15, max_iter=200, random_state=seed)
    p = cross_val_predict(dom, x, d, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                          method="predict_proba", params={"sample_weight": balance})  # fmt: skip
    p = np.clip(p[: len(xs), 1], 1e-6, 1 - 1e-6)
    w = p / (1.0 - p)
    w = np.minimum(w, WEIGHT_CAP * np.median(w))
    return w / w.mean()


def continued(src: KeptBins, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray):
    """``src`` boosted further on (x, y); the added iterations chosen by validation loss."""
    best = None
    for k in ADDED:
        m = copy.deepcopy(src)
        m.kept_bins_ = src._bin_mapper
        m.set_params(warm_start=True, early_stopping=False, max_iter=src.n_iter_ + k)
        m.fit(x, y)
        loss = log_loss(yv, m.predict_proba(xv), labels=[0, 1, 2])
        if best is None or loss < best[0]:
            best = (loss, m)
    return best[1]


def measure(
    train: str, test: str, pools: list[str], seeds: int = 3, only: tuple[str, ...] = DEFAULT
) -> list[str]:
    """Markdown rows of `HEADER`, one per variant and pool size."""
    xs, ys = load(train)
    xs[:, np.isnan(xs).all(0)] = 0.0  # as `models.gbt.fit_gbt`: no split on an all-NaN column
    xt, yt = load(test)
    found: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        tr, va = stratified_split(ys, 0.2, rng)
        src = trees(seed).fit(xs[tr], ys[tr], X_val=xs[va], y_val=ys[va])
        found.setdefault(("simulation only (zero-shot)", 0), []).append(
            scores(src.predict_proba(xt), yt)
        )
        for pool in pools:
            xp, yp = load(pool)
            ptr, pva = stratified_split(yp, 0.2, rng)
            n, xv, yv = len(yp), xp[pva], yp[pva]

            def put(name: str, proba: np.ndarray, n: int = n) -> None:
                found.setdefault((name, n), []).append(scores(proba, yt))

            x, y = np.concatenate([xs[tr], xp[ptr]]), np.concatenate([ys[tr], yp[ptr]])
            for mult in (1, 4) if "refit" in only else ():
                w = np.concatenate([np.ones(len(tr)), np.full(len(ptr), mult * len(tr) / len(ptr))])
                m = trees(seed).fit(x, y, sample_weight=w, X_val=xv, y_val=yv)
                put(
                    "refit on simulation + labels, labels weighted as the simulation"
                    + (f" x {mult}" if mult > 1 else " (the application's until 2026-12-07)"),
                    m.predict_proba(xt),
                )
            if "alone" in only or "mean" in only:
                own = trees(seed, 15).fit(xp[ptr], yp[ptr], X_val=xv, y_val=yv)
            if "alone" in only:
                put("the labels alone (15 leaves)", own.predict_proba(xt))
            if "continued" in only:
                put(
                    "boosting continued on the labels",
                    continued(src, xp[ptr], yp[ptr], xv, yv).predict_proba(xt),
                )
            if "scaling" in only:
                lr = LogisticRegression(max_iter=1000).fit(src.decision_function(xp[ptr]), yp[ptr])
                put(
                    "vector scaling of the simulation trees' logits",
                    lr.predict_proba(src.decision_function(xt)),
                )
            if "mean" in only:
                put(
                    "mean of simulation trees and label trees",
                    0.5 * (src.predict_proba(xt) + own.predict_proba(xt)),
                )
            if "cut" in only:
                cut = choose_proton_threshold(src.predict_proba(xp[ptr])[:, 0], yp[ptr] == 0)
                found.setdefault(("proton cut chosen on the labels", n), []).append(
                    scores(src.predict_proba(xt), yt, cut["proton_threshold"])
                )
            if "weights" in only:
                w = target_weights(xs[tr], xp, seed)  # every pool event, labels unread
                m = trees(seed).fit(xs[tr], ys[tr], sample_weight=w, X_val=xs[va], y_val=ys[va])
                put(f"importance weights toward the pool's {n} events (no labels)",
                    m.predict_proba(xt), 0)  # fmt: skip
    rows = []
    for (name, n), v in sorted(found.items(), key=lambda kv: kv[0][1]):
        a = np.array(v)
        rows.append(f"| {name} | {n or '-'} | {a[:, 0].mean():.3f} | {a[:, 1].mean():.3f} | "
                    + ", ".join(f"{p:.3f}" for p in a[:, 0]) + " |")  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("pools", nargs="+")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=VARIANTS, default=list(DEFAULT))
    a = ap.parse_args()
    print("\n".join([HEADER, *measure(a.train, a.test, a.pools, a.seeds, tuple(a.only))]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
