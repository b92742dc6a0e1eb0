"""Is the learner or the information the limit? Other settings and learners on the event
trees' own inputs.

    .venv/bin/python scripts/tree_settings.py RUN TEST_FILE [--cache inputs.npz]

RUN: a gbt run on named tracks (tracks_v3 or tracks_v6, the README's recommended model);
TEST_FILE: an image file with the same features, never trained on. The event trees'
inputs are made once as `train` made them (`trees_adapt.source_inputs`: the track names
out of fold, the run's charge unit hidden for the same runs; validation and test events
named by the run's own track trees), then each variant fits new event trees on them and
is scored on the run's validation split (where a setting would be chosen) and on
TEST_FILE (reported, never chosen on):

* the run's own settings refitted (reproduces the run), then one change at a time: a
  larger minimum leaf, half the features per split, half the learning rate, ten times
  the L2 penalty, twice the leaves;
* five seeds with half the features per split, and their average (a bag);
* scikit-learn's random forest and extra trees (300 trees each; NaN read as -999).

~200 s to make the inputs (cached with ``--cache``), 25-55 s per boosted fit and 5 min for
the random forest on 2 cores at 86,400 training events. One JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.metrics import f1_score

from attpc_classify.checkpoint import load_run
from attpc_classify.data import labelled, task_arrays
from attpc_classify.models.gbt import GBTClassifier, event_inputs, fit_gbt
from attpc_classify.trees_adapt import gbt_params, source_config, source_inputs, source_sets
from data_prep.imagefile import read_images

# one change at a time from the run's own settings
CHANGES = (
    {},
    {"min_samples_leaf": 100},
    {"max_features": 0.5},
    {"learning_rate": 0.05, "max_iter": 600},
    {"l2_regularization": 10.0},
    {"max_leaf_nodes": 255, "min_samples_leaf": 50},
)
BAG_SEEDS = 5


def inputs(run: Path, test: Path, cache: Path | None) -> tuple[np.ndarray, ...]:
    """Training, validation and test inputs of the event trees, and their labels."""
    if cache is not None and cache.is_file():
        with np.load(cache) as d:
            return tuple(d[k] for k in ("x", "y", "xv", "yv", "xt", "yt"))
    model = load_run(run, device="cpu").model
    cfg, train, val = source_sets(run)
    if val is None:
        raise SystemExit(f"{run}: trained without a validation split, where variants are chosen")
    x, y = source_inputs(model, cfg, train, "multiclass")
    xv, yv = task_arrays(val, "multiclass", "features")
    xt, yt = task_arrays(labelled(read_images(test, features=True)), "multiclass", "features")
    out = (x, y, event_inputs(model, xv.numpy()), yv.numpy(), event_inputs(model, xt.numpy()),
           yt.numpy())  # fmt: skip
    if cache is not None:
        np.savez(cache, **dict(zip(("x", "y", "xv", "yv", "xt", "yt"), out, strict=True)))
    return out


def boosted(
    x, y, xv, yv, params: dict, seed: int, balanced: bool = True
) -> tuple[GBTClassifier, int]:
    """Event trees fitted as `train` fits them (stopped on validation)."""
    model = GBTClassifier(x.shape[1], 3)
    clf = fit_gbt(model, x, y, x_val=xv, y_val=yv, params=params, balanced=balanced, seed=seed)
    return model, int(clf.n_iter_)


def proba(model: GBTClassifier, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.raw_scores(torch.from_numpy(np.asarray(x, np.float64))).softmax(-1).numpy()


def line(name: str, pv: np.ndarray, yv: np.ndarray, pt: np.ndarray, yt: np.ndarray,
         t0: float, **extra) -> None:  # fmt: skip
    """Proton F1 (binary reading of the 3-class call) and macro-F1 on both sets."""
    cv, ct = pv.argmax(1), pt.argmax(1)
    print(json.dumps({"variant": name} | extra | {
        "val_proton_f1": round(f1_score(yv == 0, cv == 0), 4),
        "val_macro_f1": round(f1_score(yv, cv, average="macro"), 4),
        "test_proton_f1": round(f1_score(yt == 0, ct == 0), 4),
        "test_macro_f1": round(f1_score(yt, ct, average="macro"), 4),
        "s": round(time.perf_counter() - t0)}), flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("test", type=Path)
    ap.add_argument("--cache", type=Path, help="npz of the inputs, made once and reused")
    args = ap.parse_args()
    x, y, xv, yv, xt, yt = inputs(args.run, args.test, args.cache)
    cfg = source_config(args.run)
    own = gbt_params(cfg.model)
    balanced = cfg.optim.balance != "none"  # as `train` reads it
    for change in CHANGES:
        t0 = time.perf_counter()
        model, n_iter = boosted(x, y, xv, yv, own | change, cfg.seed, balanced)
        line("own settings" if not change else json.dumps(change), proba(model, xv), yv,
             proba(model, xt), yt, t0, iterations=n_iter)  # fmt: skip
    t0, bag_v, bag_t = time.perf_counter(), [], []
    for seed in range(BAG_SEEDS):
        model, _ = boosted(x, y, xv, yv, own | {"max_features": 0.5}, seed, balanced)
        bag_v.append(proba(model, xv))
        bag_t.append(proba(model, xt))
    bag = f"bag of {BAG_SEEDS} (max_features 0.5)"
    line(bag, np.mean(bag_v, 0), yv, np.mean(bag_t, 0), yt, t0)
    fill = [np.nan_to_num(a, nan=-999.0) for a in (x, xv, xt)]
    forests = (("random forest", RandomForestClassifier), ("extra trees", ExtraTreesClassifier))
    for name, forest in forests:
        t0 = time.perf_counter()
        est = forest(300, min_samples_leaf=2, max_features=0.3, n_jobs=2,
                     class_weight="balanced" if balanced else None,
                     random_state=cfg.seed).fit(fill[0], y)  # fmt: skip
        line(name, est.predict_proba(fill[1]), yv, est.predict_proba(fill[2]), yt, t0)


if __name__ == "__main__":
    main()
