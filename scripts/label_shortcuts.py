"""The trees on three versions of the simulation: what the label fixes and helix features do.

    .venv/bin/python scripts/label_shortcuts.py --out label_shortcuts [--events 9000]
        [--test-events 2000] [--workers 2]

Versions (docs/simulation.md, "Two label shortcuts removed"), each a set of ``--set``
overrides of today's simulation:

* ``previous``: noise events without a beam ion of their own and reactions counted as
  seen with 10 points anywhere off the beam pads (byte-identical clouds to the
  simulation before the change, checked on 200 randomised events);
* ``beam``: + every noise event carries its triggering ion;
* ``current``: + a reaction must show 10 light-product points >= 30 mm from its ion.

Per version: ``--events`` randomised training events (seed 1, runs 0+), a stand-in
(``--test-events``, seed 99, runs 5000+) and 500 (at most ``--test-events``) randomised
(seed 98), nominal (seed 97) and nominal events with a 6.2 deg tilt (seed 96). Each
training set is preprocessed with configs/prep/robust.yaml + the structured-noise rules +
the features (``tracks_v1`` and ``tracks_v2``), its test sets with ``--reference`` it.
Trees: scikit-learn's HistGradientBoostingClassifier with the recommended settings (15
leaves, learning rate 0.1, class-balanced, early stopping on 10 % of the training events,
seed 0): the 3-fold validation on the training set, then fitted on all of it and scored
on every version's test sets. Printed: a Markdown table, proton F1 (binary reading of the
3-class call) / 3-class macro-F1, and proton F1 bootstrap intervals (1,000 resamples,
seed 0) for the stand-ins; the last line is JSON. Steps whose output exists are skipped.
Runtime here: ~35 min on 2 cores (the current version's simulation is the slowest:
carbon events take ~5 draws each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]
VERSIONS = {
    "previous": ["beam_axis.trigger_ion=false", "min_signal_radius_mm=0", "max_draws=200"],
    "beam": ["min_signal_radius_mm=0"],
    "current": [],
}
#: name -> (preset, seed, first run, extra --set); events: --test-events for the stand-in
TESTS = {
    "standin": ("e15503b_standin", 99, 5000, []),
    "randomised": ("e15503b_randomized", 98, 5100, []),
    "nominal": ("e15503b_nominal", 97, 5200, []),
    "nominal_tilt": ("e15503b_nominal", 96, 5300, ["detector.tilt_deg=6.2"]),
}
FEATURES = ("tracks_v1", "tracks_v2")
PREP = ["--config", "configs/prep/robust.yaml", "--views", "xy,zy", "--size", "64",
        "--set", "voxel_grid=0", "--set", "structured_noise=rules"]  # fmt: skip


def run(*args: object) -> None:
    subprocess.run([*CLI, *map(str, args)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def simulate(out: Path, preset: str, events: int, seed: int, first: int, sets: list[str],
             workers: int) -> None:  # fmt: skip
    if not out.exists():
        overrides = [x for s in sets for x in ("--set", s)]
        run("simulate", "--config", preset, "--events", events, "--seed", seed,
            "--first-run", first, "--out", out, "--workers", workers, "--quiet",
            *overrides)  # fmt: skip


def preprocess(sim: Path, out: Path, features: str, reference: Path | None) -> None:
    if not out.exists():
        ref = ["--reference", reference] if reference else []
        run("preprocess", sim, "--out", out, *PREP, "--set", f"features={features}", *ref,
            "--workers", "1", "--quiet")  # fmt: skip


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path) as f:
        return f["features"][()], f["label"][()]


def trees() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_leaf_nodes=15, learning_rate=0.1, max_iter=300, class_weight="balanced",
        random_state=0, early_stopping=True,
    )  # fmt: skip


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Proton F1 (class 0 against the rest) and 3-class macro-F1."""
    return float(f1_score(y == 0, pred == 0)), float(f1_score(y, pred, average="macro"))


def interval(y: np.ndarray, pred: np.ndarray, n: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    draws = [f1_score(y[i] == 0, pred[i] == 0) for i in rng.integers(0, len(y), (n, len(y)))]
    return tuple(float(v) for v in np.percentile(draws, [2.5, 97.5]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--events", type=int, default=9000)
    ap.add_argument("--test-events", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sim, data = args.out / "sim", args.out / "data"
    for version, sets in VERSIONS.items():
        simulate(sim / version / "train", "e15503b_randomized", args.events, 1, 0, sets,
                 args.workers)  # fmt: skip
        for name, (preset, seed, first, extra) in TESTS.items():
            events = args.test_events if name == "standin" else min(500, args.test_events)
            simulate(sim / version / name, preset, events, seed, first, sets + extra,
                     args.workers)  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    for version in VERSIONS:
        for features in FEATURES:
            key = f"{version}/{features}"
            d = data / version / features
            d.mkdir(parents=True, exist_ok=True)
            preprocess(sim / version / "train", d / "train.h5", features, None)
            x, y = load(d / "train.h5")
            folds = StratifiedKFold(3, shuffle=True, random_state=0).split(x, y)
            cv = [scores(y[va], trees().fit(x[tr], y[tr]).predict(x[va])) for tr, va in folds]
            row = {"validation": [float(np.mean(c)) for c in zip(*cv, strict=True)]}
            model = trees().fit(x, y)
            for other in VERSIONS:
                for name in TESTS:
                    h5 = d / f"{other}_{name}.h5"
                    preprocess(sim / other / name, h5, features, d / "train.h5")
                    xt, yt = load(h5)
                    pred = model.predict(xt)
                    row[f"{other}/{name}"] = [*scores(yt, pred)]
                    if name == "standin":
                        row[f"{other}/{name}"] += interval(yt, pred)
            results[key] = row
            print(key, json.dumps(row), flush=True)
    cols = ["validation", *(f"{v}/standin" for v in VERSIONS),
            *(f"current/{n}" for n in TESTS if n != "standin")]  # fmt: skip
    print("| training simulation / features | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for key, row in results.items():
        cells = []
        for c in cols:
            v = row[c]
            ci = f" [{v[2]:.2f}, {v[3]:.2f}]" if len(v) == 4 else ""
            cells.append(f"{v[0]:.2f}{ci} / {v[1]:.2f}")
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
