"""Which physics features the demo's trees read, chosen at the demo's size on validation.

    .venv/bin/python scripts/demo_features.py --pool training_size/sim/c --out demo_features

The demo trains its trees on 2,000 simulated events. This takes five disjoint
2,000-event training sets (20 run files each; ``--files``) from a pool of randomised run files
(``--pool``: `scripts/training_size.py`'s ``sim/c``, made by `simulate --config
e15503b_randomized`) and one common evaluation set of 4,000 other events (the pool's
first 40 run files), preprocesses them with the demo's settings
(``configs/prep/robust.yaml``, ``structured_noise=rules``, the evaluation set with
``--reference`` each training file) for each feature variant, trains the demo's trees
(``gbt``, 15 leaves, class-balanced, learning rate 0.1, seed 0; one variant also stops
the named-track model's track trees early, ``model.track_early_stopping``;
``--variants`` runs only the named ones) and scores the evaluation set: proton F1 and
3-class macro-F1, mean and per training set. The choice reads only these in-simulation
(randomised) events. ``--check NAME=DIR`` (simulated run files, e.g. a stand-in) also
scores every model on other sets, preprocessed the same way: a check, shown beside the
choice, never used for it. Steps whose output exists are skipped. ~16 min on 2 cores, ~3
min more per 2,000-event check set. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from label_shortcuts import scores  # proton F1 and 3-class macro-F1 of calls
from validation_scores import called  # classify's call for each event of an image file

ROOT = Path(__file__).resolve().parents[1]
#: the demo's preprocessing since 2026-12-06 and its trees' overrides on it
V6 = ["features=tracks_v6", "cluster_z_scale=0.5", "charge_calibration=proton_band"]
V8 = ["features=tracks_v8", "cluster_z_scale=0.5", "charge_calibration=proton_band"]
V6_TREES = ["data.unit_dropout=0.1", "model.track_early_stopping=true"]
WIDEST = [*V6_TREES, "model.light_pair=widest"]
#: the variants compared: --set overrides on top of the demo's prep settings, and
#: overrides of the demo's trees (a variant with the same prep settings shares its files)
VARIANTS = {
    "tracks_v2": (["features=tracks_v2", "cluster_z_scale=1.0"], []),
    "tracks_v2, z x0.5": (["features=tracks_v2", "cluster_z_scale=0.5"], []),
    "tracks_v3 (named)": (["features=tracks_v3", "cluster_z_scale=1.0"], []),
    "tracks_v3 (named), z x0.5": (["features=tracks_v3", "cluster_z_scale=0.5"], []),
    "tracks_v3 (named), z x0.5, track trees stopped early": (
        ["features=tracks_v3", "cluster_z_scale=0.5"],
        ["model.track_early_stopping=true"],
    ),
    "tracks_v3 (named), z x0.5, the run's charge unit": (
        ["features=tracks_v3", "cluster_z_scale=0.5", "charge_calibration=proton_band"],
        [],
    ),
    "tracks_v3 (named), z x0.5, the run's charge unit, hidden for 10 % of the runs": (
        ["features=tracks_v3", "cluster_z_scale=0.5", "charge_calibration=proton_band"],
        ["data.unit_dropout=0.1"],
    ),
    "the demo's trees (tracks_v3, z x0.5, unit hidden for 10 %, track trees stopped early)": (
        ["features=tracks_v3", "cluster_z_scale=0.5", "charge_calibration=proton_band"],
        ["data.unit_dropout=0.1", "model.track_early_stopping=true"],
    ),
    "the same on tracks_v6 (the light pair's centre angle and vertex gap)": (V6, V6_TREES),
    "the same, the widest light pair instead": (V6, [*V6_TREES, "model.light_pair=widest"]),
    "the same, the likeliest and the widest light pair": (
        V6,
        [*V6_TREES, "model.light_pair=both"],
    ),
    "the same, a tenth of the training events for validation (not a fifth)": (
        V6,
        [*WIDEST, "data.val_fraction=0.1"],
    ),
    "the same, a twentieth of the training events for validation": (
        V6,
        [*WIDEST, "data.val_fraction=0.05"],
    ),
    "the same, learning rate 0.05": (
        V6,
        [*WIDEST, "data.val_fraction=0.1", "model.learning_rate=0.05"],
    ),
    "the same, 31 leaves": (V6, [*WIDEST, "data.val_fraction=0.1", "model.max_leaf_nodes=31"]),
    "the demo's trees on tracks_v8 (+ each track's helix about its own vertex)": (V8, WIDEST),
}
PREP = ["--config", "configs/prep/robust.yaml", "--set", "structured_noise=rules"]
#: attpc_classify.demo.DEMO_MODELS["gbt"]
TREES = ["--config", "gbt", "optim.balance=weights", "model.max_leaf_nodes=15",
         "model.learning_rate=0.1", "seed=0"]  # fmt: skip


def cli(args: list, done: Path) -> None:
    """One `attpc-classify` step, unless its output ``done`` exists."""
    if not done.exists():
        print("$ attpc-classify " + " ".join(map(str, args)), flush=True)
        subprocess.run([sys.executable, "-m", "attpc_classify.cli", *map(str, args)],
                       check=True, cwd=ROOT)  # fmt: skip


def scored(run: Path, data: Path) -> tuple[float, float]:
    """Proton F1 and 3-class macro-F1 of ``run``'s calls on the image file ``data``."""
    with h5py.File(data, "r") as f:
        y = f["label"][()]
    return scores(y, called(run, data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, required=True, help="randomised run files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", type=int, default=5, help="training sets of --files run files")
    ap.add_argument("--files", type=int, default=20,
                    help="run files per training set (20: 2,000 events; the demo: 30)")  # fmt: skip
    ap.add_argument("--check", nargs="*", default=[], help="NAME=DIR: sets only shown")
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS),
                    help="only these (the others are compared with the first)")  # fmt: skip
    args = ap.parse_args()
    variants = {name: VARIANTS[name] for name in args.variants}
    checks = dict(c.split("=", 1) for c in args.check)
    pool = sorted(args.pool.glob("run_*.h5"))
    n = args.files
    if len(pool) < 40 + n * args.sets:
        sys.exit(f"error: {args.pool}: {len(pool)} run files, need {40 + n * args.sets}")
    evaluation = pool[:40]
    groups = [pool[40 + n * k : 40 + n * (k + 1)] for k in range(args.sets)]
    scores: dict[str, list[tuple[float, float]]] = {}
    checked: dict[tuple[str, str], list[tuple[float, float]]] = {}
    prep_dirs: dict[tuple[str, ...], Path] = {}
    for name, (sets, trees) in variants.items():
        tag = re.sub(r"[^A-Za-z0-9._]", "", name.replace(",", "_"))  # a directory name
        d = prep_dirs.setdefault(tuple(sets), args.out / tag)
        runs = d if d.name == tag else args.out / tag  # a variant of the trees: own runs
        settings = [x for s in sets for x in ("--set", s)]
        d.mkdir(parents=True, exist_ok=True)
        scores[name] = []
        for k, files in enumerate(groups):
            train, test, run = d / f"train{k}.h5", d / f"eval{k}.h5", runs / f"run{k}"
            cli(["preprocess", *files, "--out", train, *PREP, *settings, "--quiet"], train)
            cli(["preprocess", *evaluation, "--out", test, *PREP, *settings, "--reference",
                 train, "--quiet"], test)  # fmt: skip
            cli(["train", "--data", train, "--task", "multiclass", "--out", run, "--quiet",
                 *TREES, *trees], run / "model.safetensors")  # fmt: skip
            scores[name].append(scored(run, test))
            for check, sim in checks.items():
                data = d / f"{check}{k}.h5"
                cli(["preprocess", sim, "--out", data, *PREP, *settings, "--reference", train,
                     "--quiet"], data)  # fmt: skip
                checked.setdefault((name, check), []).append(scored(run, data))
    first = np.array(scores[next(iter(variants))])
    print("| variant | proton F1 (mean, per set) | macro-F1 (mean, per set) | "
          "mean change over the first |\n|---|---|---|---|")  # fmt: skip
    for name, rows in scores.items():
        a = np.array(rows)
        per = [" ".join(f"{v:.3f}" for v in a[:, j]) for j in (0, 1)]
        dp, dm = (a - first).mean(0)
        print(
            f"| {name} | {a[:, 0].mean():.3f} ({per[0]}) | {a[:, 1].mean():.3f} ({per[1]}) "
            f"| {dp:+.3f} / {dm:+.3f} |"
        )
    for check in checks:
        print(f"\ncheck {check} (not used for the choice): proton F1 / macro-F1, mean (per set)")
        for name in variants:
            a = np.array(checked[name, check])
            per = ", ".join(f"{p:.3f}/{m:.3f}" for p, m in a)
            print(f"- {name}: {a[:, 0].mean():.3f} / {a[:, 1].mean():.3f} ({per})")
    means = {name: np.array(r).mean(0).round(4).tolist() for name, r in scores.items()}
    means |= {f"{n} on {c}": np.array(r).mean(0).round(4).tolist() for (n, c), r in checked.items()}
    print(json.dumps(means))


if __name__ == "__main__":
    main()
