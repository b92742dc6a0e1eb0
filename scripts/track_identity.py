"""Naming the tracks by what they are: a per-track model of the particle, fed to the trees.

    .venv/bin/python scripts/track_identity.py --train SIM_DIR [SIM_DIR ...] \
        --train-features FEATURES.h5 --test NAME SIM_DIR FEATURES.h5 [--test ...]

The recommended trees describe the three largest off-axis tracks of an event one by one
(t1, t2, t3; `data_prep.features`) as if t1 were the reaction's light product; on a
tilted detector with a wide beam it is often the scattered 46Ar or a beam ion
(scripts/track_truth.py). Here a first model learns what each described track is from
the simulator's per-point truth: its points go through the features' steps (per-file
beam axis, structured-noise rules, the features' DBSCAN) and the track is named by the
majority of its points: light product, heavy product, beam ions, noise, or other
(`KINDS`), for the `K` = 5 largest tracks (the light product may be the fourth). Its
inputs are the track's rank and points and the numbers the features give t1-t3 (shares,
shape and charge, helix; `track_row`). The event trees then get, beside the features
(the feature file of the same events): each track's probability of being the light
product, the largest of them and its rank, t1's probabilities of being the heavy product
or beam, and the row of the track most likely to be the light product.

Compared on the training events (3 seeds x 3-fold cross-validation, out-of-fold track
probabilities so no event sees a track model fitted on itself) and on each ``--test``
set (trees of each seed fitted on every training event), scikit-learn's
HistGradientBoostingClassifier with the recommended settings (127 leaves, learning rate
0.1, balanced, early stopping on 20 %). The labels only score. Prints markdown tables.
docs/sim-to-real.md, "Naming the tracks by what they are".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from attpc_classify.config import load_config
from attpc_classify.data import task_labels
from data_prep.build import expand_inputs
from data_prep.features import _helix, _track, largest_tracks
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig
from data_prep.quantiles import beam_axes
from data_prep.tracktruth import KINDS, cluster_kinds, truth_tracks

REPO = Path(__file__).resolve().parents[1]
K = 5  # tracks named per event, largest first: the light product may be the fourth
SEEDS = 3
FOLDS = 3


def described_tracks(sim_dir: str) -> dict[tuple[int, int], list[tuple[np.ndarray, int]]]:
    """(run, event) -> its `K` largest off-axis tracks, largest first: each track's row
    (`track_row`) and its `KINDS` index by the simulator's per-point truth."""
    config = load_config(ImageConfig, REPO / "configs/prep/features.yaml", [])
    files = [str(p) for p in sorted(expand_inputs([sim_dir]))]
    axes = beam_axes(config, files)
    out = {}
    for path in files:
        axis = axes[path].axis if axes else None
        for event, pts, labels, noise, beam in truth_tracks(Path(path), config, axis):
            kinds = cluster_kinds(pts[:, 4], labels, noise, beam, K)
            out[(int(event.run), int(event.event_id))] = [
                (track_row(pts[:, :4], labels, c, rank), int(kinds[rank]))
                for rank, c in enumerate(largest_tracks(labels, K))
            ]
    return out


def track_row(pts: np.ndarray, labels: np.ndarray, c: int, rank: int) -> np.ndarray:
    """One track's row: its rank, points, share of the clustered points and charge, then
    the features' `TRACK_FEATURES` (from the third on) and `HELIX_FEATURES`, computed as
    `data_prep.features` computes them for t1-t3 (its private helpers: this is a
    measurement, not the library's API)."""
    q = np.clip(pts[:, 3], 0.0, None)
    positive = q[q > 0]
    q_ref = float(np.median(positive)) if len(positive) else 1.0
    sel, clustered = labels == c, labels >= 0
    r = np.hypot(pts[:, 0], pts[:, 1])
    f, _, _ = _track(pts[sel], r[sel], q[sel], q_ref)
    h, _ = _helix(pts[sel, :3])
    q_all = q[clustered].sum()
    shares = [sel.sum() / clustered.sum(), q[sel].sum() / q_all if q_all > 0 else np.nan]
    return np.concatenate([[rank, sel.sum()], shares, f[2:], h])


def identity_columns(n: int, rows: np.ndarray, proba: np.ndarray, event: np.ndarray,
                     rank: np.ndarray) -> np.ndarray:  # fmt: skip
    """The event-level columns of ``n`` events made from their tracks' ``rows`` and the
    probabilities ``proba`` of each track's kind: p(light product) of each of the `K`
    tracks, the largest and its rank, t1's p(heavy product) and p(beam ions), and the row
    of the track most likely to be the light product."""
    p_light = np.full((n, K), np.nan)
    p_light[event, rank] = proba[:, 0]
    out = np.full((n, K + 4 + rows.shape[1]), np.nan)
    out[:, :K] = p_light
    best_row = np.full(n, -1)
    best_p = np.full(n, -1.0)
    for i, (e, p) in enumerate(zip(event, proba[:, 0], strict=True)):
        if p > best_p[e]:
            best_p[e], best_row[e] = p, i
    have = best_row >= 0
    out[have, K] = best_p[have]
    out[have, K + 1] = rank[best_row[have]]
    first = rank == 0
    out[event[first], K + 2] = proba[first, 1]  # t1: heavy product
    out[event[first], K + 3] = proba[first, 2]  # t1: beam ions
    out[have, K + 4 :] = rows[best_row[have]]
    return out


def _trees(seed: int, leaves: int = 127):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.1, max_leaf_nodes=leaves, l2_regularization=1.0, max_iter=300,
        class_weight="balanced", early_stopping=True, validation_fraction=0.2,
        n_iter_no_change=10, random_state=seed)  # fmt: skip


def _tracks_of(data, found: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every track of the events of ``data`` (in its order): rows, event index, rank,
    kind."""
    rows, event, rank, kind = [], [], [], []
    keys = zip(data.run.tolist(), data.event_id.tolist(), strict=True)
    for i, key in enumerate(keys):
        for k, (row, kd) in enumerate(found[key]):
            rows.append(row)
            event.append(i)
            rank.append(k)
            kind.append(kd)
    return np.array(rows), np.array(event), np.array(rank), np.array(kind)


def measure(train_sims: list[str], train_features: str, tests: list[tuple[str, str, str]]):
    """Markdown lines: the track model's accuracy, then the trees with and without."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    found = {}
    for d in train_sims:
        found |= described_tracks(d)
    train = read_images(train_features, features=True)
    y = task_labels(train.label, "multiclass")
    rows, event, rank, kind = _tracks_of(train, found)
    # out-of-fold: each event's tracks are named by a model fitted on other events
    oof = np.zeros((len(rows), len(KINDS)))
    for a, b in GroupKFold(FOLDS).split(rows, kind, event):
        oof[b] = _trees(0, 31).fit(rows[a], kind[a]).predict_proba(rows[b])
    track_model = _trees(0, 31).fit(rows, kind)
    right = np.mean(oof.argmax(1) == kind)
    lines = ["| test set | tracks | named right |", "|---|---|---|",
             f"| training (out-of-fold) | {len(kind):,} | {right:.3f} |"]  # fmt: skip
    x_plain = train.features
    x_named = np.hstack([x_plain, identity_columns(len(x_plain), rows, oof, event, rank)])
    sets = {}
    for name, sim, feats in tests:
        data = read_images(feats, features=True)
        t_rows, t_event, t_rank, t_kind = _tracks_of(data, described_tracks(sim))
        proba = track_model.predict_proba(t_rows)
        lines.append(f"| {name} | {len(t_kind):,} | {np.mean(proba.argmax(1) == t_kind):.3f} |")
        extra = identity_columns(len(data.features), t_rows, proba, t_event, t_rank)
        named = np.hstack([data.features, extra])
        sets[name] = (data.features, named, task_labels(data.label, "multiclass"))
    scores = {}
    for variant, x in (("features", x_plain), ("features + track names", x_named)):
        cv, per = [], {n: [] for n in sets}
        for seed in range(SEEDS):
            for a, b in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
                pred = _trees(seed).fit(x[a], y[a]).predict(x[b])
                cv.append(f1_score(y[b], pred, average="macro"))
            model = _trees(seed).fit(x, y)
            for n, (plain, named, yt) in sets.items():
                pred = model.predict(plain if variant == "features" else named)
                per[n].append((f1_score(yt == 0, pred == 0), f1_score(yt, pred, average="macro")))
        scores[variant] = (np.mean(cv), np.std(cv), {n: np.mean(v, axis=0) for n, v in per.items()})
    lines += ["", "| trees on | cross-validated macro-F1 | " + " | ".join(sets) + " |",
              "|---|---|" + "---|" * len(sets)]  # fmt: skip
    for variant, (m, s, per) in scores.items():
        cells = " | ".join(f"{p:.3f} / {f:.3f}" for p, f in per.values())
        lines.append(f"| {variant} | {m:.3f} ± {s:.3f} | {cells} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", required=True, help="simulated training run dirs")
    ap.add_argument("--train-features", required=True, help="their feature file")
    ap.add_argument("--test", nargs=3, action="append", default=[],
                    metavar=("NAME", "SIM_DIR", "FEATURES"))  # fmt: skip
    args = ap.parse_args()
    print("\n".join(measure(args.train, args.train_features, [tuple(t) for t in args.test])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
