"""Are two light-product tracks one particle or two reactions? (measured, not kept)

    .venv/bin/python scripts/pair_columns.py RUN TRAIN_FILE [--seeds 0 1]

RUN: named-track trees (`features: tracks_v3`) trained on TRAIN_FILE, an image file made
by `preprocess` from simulated run files (each event's channel and per-point truth). A
proton helix the beam core cuts comes back as several clusters, and the track trees call
each a light product; so do the two protons of a pile-up. Pieces of one helix keep one
circle on the pad plane, two reactions' tracks have their own. Per pair of the five
described tracks this computes, on the very clusters the features describe
(`data_prep.tracktruth.truth_tracks`: the run's beam axis, the structured-noise rules,
the features' DBSCAN):

* the angle about the beam axis between their circles' centres (`circle_direction`;
  NaN for a straight or short track);
* the |difference| of their helix vertices' z (`_helix`, as ``vertex_dz_max_mm``);

the pair columns of `tracks_v6` (`data_prep.features.pair_values`).

For the two tracks the run's track trees find likeliest to be a light product, the pair's
two numbers are the "light pair" columns. Printed:

* per simulated channel, among the events with two or more light tracks (the run's
  ``light_columns``), the quartiles of the light pair's centre angle and vertex gap;
* one-stage scikit-learn trees (127 leaves, learning rate 0.1, class-balanced, stopped
  early) on the features plus the run's name columns, with and without the light pair
  columns and with all 20 pair columns, validated on a fifth of the run files held out
  (one split per seed). The names come from the run's own track trees, fitted on every
  training event, for every variant alike.

docs/sim-to-real.md ("Two light tracks: one particle or two reactions"). ~15 min on 2
cores for 72,000 events. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_sample_weight

from attpc_classify.checkpoint import load_run
from data_prep.features import (
    MAX_VERTEX_COT,
    N_NAMED,
    _helix,
    circle_direction,
    largest_tracks,
    pair_values,
    track_pairs,
)
from data_prep.imagefile import image_sources, read_info, source_path
from data_prep.tracktruth import truth_tracks

PAIRS = [(i - 1, j - 1) for i, j in track_pairs()]  # 0-based, in column order
CHANNELS = ("p_elastic", "pileup", "fusion_evap", "p_inelastic", "alpha_43cl")


def pair_columns(pts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(len(PAIRS), 2)``: centre angle [rad] and vertex gap [mm] of each pair of the
    event's `N_NAMED` largest clusters (NaN where a track is missing or has none), as
    the features compute them (`data_prep.features.pair_values`)."""
    centres, vertices = [], []
    for c in largest_tracks(labels, N_NAMED):
        xyz = pts[labels == c, :3]
        centres.append(circle_direction(xyz[:, :2]))
        hf, z = _helix(xyz)
        vertices.append(z if abs(hf[1]) < MAX_VERTEX_COT else np.nan)
    return pair_values(centres, vertices)


def all_pairs(train: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pair columns ``(B, len(PAIRS), 2)`` and channel of every event of the image file."""
    info = read_info(train)
    with h5py.File(train, "r") as f:  # the rows only: no image is read
        images = SimpleNamespace(run=f["run"][()], event_id=f["event_id"][()], attrs=info,
                                 path=str(train))  # fmt: skip
    sources, wanted = image_sources(images, "pair columns")
    axes = info.get("beam_axes") or {}
    config = info["image_config"]
    out = np.full((len(images.run), len(PAIRS), 2), np.nan)
    channel = np.full(len(images.run), "", dtype=object)
    for source in sources:
        path = source_path(str(source), images.path)
        with h5py.File(path, "r") as f:
            table = {int(r["event"]): r["channel"].decode() for r in f["events"][()]}
        for event, pts, labels, _, _ in truth_tracks(path, config, axes.get(str(source))):
            i = wanted.get((int(event.run), int(event.event_id)))
            if i is not None:
                out[i] = pair_columns(pts, labels)
                channel[i] = table[int(event.event_id)]
    return out, channel


def fit_score(x: np.ndarray, y: np.ndarray, va: np.ndarray) -> tuple[float, float]:
    clf = HistGradientBoostingClassifier(max_leaf_nodes=127, learning_rate=0.1, max_iter=500,
                                         early_stopping=True, validation_fraction=0.1,
                                         n_iter_no_change=20, random_state=0)  # fmt: skip
    clf.fit(x[~va], y[~va], sample_weight=compute_sample_weight("balanced", y[~va]))
    c = clf.predict(x[va])
    return float(f1_score(y[va] == 0, c == 0)), float(f1_score(y[va], c, average="macro"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("train", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    with h5py.File(args.train, "r") as f:
        x, y, runs = f["features"][()].astype(np.float64), f["label"][()], f["run"][()]
    pairs, channel = all_pairs(args.train)
    model = load_run(args.run, device="cpu").model
    with torch.no_grad():
        xt = torch.from_numpy(x)
        named = model.named(xt).numpy()[:, x.shape[1] :]
        rows, have = model.track_inputs(xt)
        p = model.track.raw_scores(rows).softmax(-1).reshape(*have.shape, -1)[..., 0].numpy()
    p = np.where(have.numpy(), p, np.nan)
    order = np.argsort(-np.nan_to_num(p, nan=-1.0), axis=1)
    two = np.isfinite(p[np.arange(len(p)), order[:, 1]])
    index = {pair: k for k, pair in enumerate(PAIRS)}
    light = np.full((len(x), 2), np.nan)
    for e in np.flatnonzero(two):
        a, b = sorted(order[e, :2])
        light[e] = pairs[e, index[(a, b)]]
    n_light = named[:, -2]  # `light_columns`: tracks with p(light product) > 0.5
    print("| channel | events with >= 2 light tracks | centre angle [rad]: 10/25/50/75/90 % |"
          " vertex gap [mm]: 10/25/50/75/90 % |\n|---|---|---|---|")  # fmt: skip
    for c in CHANNELS:
        s = (channel == c) & (n_light >= 2)
        if s.any():
            q = [np.nanpercentile(light[s, k], [10, 25, 50, 75, 90]) for k in (0, 1)]
            print(f"| {c} | {int(s.sum())} | {', '.join(f'{v:.2f}' for v in q[0])} | "
                  f"{', '.join(f'{v:.0f}' for v in q[1])} |")  # fmt: skip
    variants = {
        "features + names": np.hstack([x, named]),
        "+ the light pair's two columns": np.hstack([x, named, light]),
        "+ the light pair and all 20 pair columns": np.hstack([x, named, light,
                                                              pairs.reshape(len(x), -1)]),
    }  # fmt: skip
    found: dict[str, list[tuple[float, float]]] = {}
    units = np.unique(runs)
    for seed in args.seeds:
        held = np.random.default_rng(seed).choice(units, size=len(units) // 5, replace=False)
        va = np.isin(runs, held)
        for name, xv in variants.items():
            found.setdefault(name, []).append(fit_score(xv, y, va))
    print("\n| one-stage trees on | proton F1 per split | macro-F1 per split |\n|---|---|---|")
    for name, v in found.items():
        print(f"| {name} | {', '.join(f'{a:.4f}' for a, _ in v)} | "
              f"{', '.join(f'{b:.4f}' for _, b in v)} |")  # fmt: skip
    print(json.dumps({k: [[round(a, 4), round(b, 4)] for a, b in v] for k, v in found.items()}))


if __name__ == "__main__":
    main()
