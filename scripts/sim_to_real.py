"""Regenerate docs/sim-to-real.md: train on simulation, test on detectors it never saw.

    .venv/bin/python scripts/sim_to_real.py --out sim2real_out            # CPU config
    .venv/bin/python scripts/sim_to_real.py --out s2r_small --scale reduced

Every step is an ``attpc-classify`` command (printed, and listed in the document); a
step whose output exists is skipped, so a killed run goes on where it stopped. Models:
the demo's recipe before issue 12 (nominal simulation, plain images) against the robust
recipe (configs/prep/robust.yaml) trained on the nominal and on the domain-randomised
simulation, and the README's recommended trees (configs/prep/features.yaml, gbt) on the
same randomised events. Tests: the stand-in (e15503b_standin: other electronics, heavy
structured noise, one point per pad, ...) and the nominal simulation with one knob at a
time set to an extreme. Then adaptation to the stand-in: AdaBN and self-training for the
CNN, self-training refits for the trees (``adapt``, no labels), and 250 / 1,000 stand-in
labels (``train model.init=run:``), scored on the same stand-in test events.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from attpc_classify.device import describe_cpu
from data_prep.atomic import atomic_path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]

#: scale -> events: nominal training set, randomised training set (2,000 of seed 0, then
#: 1,000-event sets of seeds 1, 2, ...), stand-in test, each knob, nominal and randomised
#: in-simulation tests, stand-in label pools; epochs of the nominal and randomised models.
#: "medium": the reduced run's simulations and plain-image model, plus 2,000 more
#: randomised training events, larger label pools and more epochs for the randomised model
SCALES = {
    "cpu": {"nominal": 2000, "train": 6000, "standin": 2000, "knob": 500, "test": 500,
            "rtest": 500, "labels": (250, 1000), "nominal_epochs": 10, "epochs": 15},
    "medium": {"nominal": 2000, "train": 4000, "standin": 600, "knob": 200, "test": 200,
               "rtest": 500, "labels": (250, 1000), "nominal_epochs": 10, "epochs": 15},
    "reduced": {"nominal": 2000, "train": 2000, "standin": 600, "knob": 200, "test": 200,
                "rtest": 200, "labels": (250,), "nominal_epochs": 10, "epochs": 10},
}  # fmt: skip
#: knob -> simulate --set overrides on e15503b_nominal (each beyond or at the edge of the
#: randomised range)
KNOBS = {
    "gain_x0.3": ["detector.mpgd_gain=3600"],
    "gain_x3": ["detector.mpgd_gain=36000"],
    "threshold_60": ["electronics.adc_threshold=60"],
    "noise_400": ["noise.hits_per_event=400,400"],
    "one_point_per_pad": ["electronics.point_formation=pad"],
    "tilt_6.5deg": ["detector.tilt_deg=6.5"],
}
PLAIN_PREP = ["--views", "xy,zy", "--size", "64", "--set", "voxel_grid=0"]
ROBUST_PREP = ["--config", "configs/prep/robust.yaml"]
#: the recommended recipe's preprocessing (README, docs/recommended-model.md): named tracks,
#: each also read about its own vertex, track clustering with z at half weight, each run
#: file's charges in its own unit
RECIPE_SETS = ("features=tracks_v7", "cluster_z_scale=0.5", "charge_calibration=proton_band")
FEATURE_PREP = ["--config", "configs/prep/features.yaml",
                *(a for kv in RECIPE_SETS for a in ("--set", kv))]  # fmt: skip
MODEL = ["--config", "configs/train/cnn_small.yaml", "--quiet"]
OVERRIDES = ["model.width=16", "optim.batch_size=32", "optim.patience=0"]
#: the README's recommended model (gradient-boosted trees on physics features), trained
#: here on the same randomised events as the CNN (the README's on 108,000)
TREES = ["--config", "configs/train/gbt.yaml", "--quiet"]
TREE_OVERRIDES = ["optim.balance=weights", "model.max_leaf_nodes=127", "model.learning_rate=0.1",
                  "data.unit_dropout=0.1"]  # fmt: skip
CNN_LABEL = "randomised, robust inputs"
TREES_LABEL = "randomised, trees on features (recommended)"
#: the zero-shot rows the adaptation table starts from
STANDIN_ROWS = (f"| {CNN_LABEL} | stand-in |", f"| {TREES_LABEL} | stand-in |")
PREPS = {"plain": PLAIN_PREP, "robust": ROBUST_PREP, "features": FEATURE_PREP}
COMMANDS: list[str] = []
STEPS: list[str] = []  # every CLI step of this invocation, run or reused
RAN: list[str] = []  # the steps this invocation ran (not reused)
#: OUT/steps_s.json: wall seconds of every step's last run (where the hour goes)
STEP_SECONDS: dict[str, float] = {}
STEP_FILE: list[Path] = []
FRAMES_RAN: list[str] = []  # the frames' CLI steps this invocation ran (scripts/frames.py)
#: OUT/steps_host.json: the processor each step last ran on (`describe_cpu`): the same
#: 2-core machine has been hosts ~2-3x apart in speed, so a time needs its host
STEP_HOSTS: dict[str, str] = {}
OWN = "(the script's own measurements: the scripts it calls in-process)"


def sh(args: list[str], done: Path) -> None:
    """Run one CLI step unless ``done`` exists; record the command for the document."""
    shown = "attpc-classify " + " ".join(str(a) for a in args)
    COMMANDS.append(shown)
    STEPS.append(shown)
    if done.exists():
        return
    RAN.append(shown)
    print(f"$ {shown}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([*CLI, *map(str, args)], check=True, cwd=REPO)
    STEP_SECONDS[shown] = round(time.perf_counter() - t0, 1)
    STEP_HOSTS[shown] = describe_cpu()
    save_step_seconds()  # after every step: a killed invocation keeps what it measured


def save_step_seconds() -> None:
    """Write `STEP_SECONDS` to OUT/steps_s.json and `STEP_HOSTS` to OUT/steps_host.json
    (temp + rename)."""
    for path in STEP_FILE:
        for target, values in ((path, STEP_SECONDS), (host_file(path), STEP_HOSTS)):
            with atomic_path(target) as tmp:
                tmp.write_text(json.dumps(values, indent=1) + "\n")


def host_file(steps_file: Path) -> Path:
    return steps_file.with_name("steps_host.json")


def simulate(out: Path, name: str, preset: str, n: int, seed: int, first: int,
             sets: list[str] = ()) -> Path:  # fmt: skip
    d = out / "sim" / name
    extra = [x for s in sets for x in ("--set", s)]
    sh(["simulate", "--config", preset, "--events", n, "--out", d, "--seed", seed,
        "--first-run", first, "--workers", "2", "--quiet", "--resume", *extra],
       d / ".done")  # fmt: skip
    (d / ".done").touch()
    return d


#: charge normalisation, measured to choose the recipe (see the document's section):
#: validation macro-F1, then proton F1 / macro-F1 per test set
NORM_COLUMNS = ("nominal", "randomised", "gain x0.3", "gain x3", "threshold 60", "noise 400",
                "one point per pad", "tilt 6.5 deg", "stand-in")  # fmt: skip
NORM_VALUES = {
    "event": ("0.654", "0.67 / 0.62", "0.66 / 0.63", "0.67 / 0.62", "0.61 / 0.60", "0.67 / 0.66",
              "0.66 / 0.66", "0.74 / 0.63", "0.62 / 0.60", "0.38 / 0.46"),
    "quantile": ("0.680", "0.70 / 0.65", "0.72 / 0.70", "0.67 / 0.67", "0.72 / 0.69",
                 "0.73 / 0.72", "0.72 / 0.70", "0.73 / 0.69", "0.76 / 0.68", "0.53 / 0.48"),
}  # fmt: skip


def static_table(first: str, columns: tuple[str, ...], values: dict[str, tuple[str, ...]]) -> str:
    """A Markdown table of numbers measured outside this script (rows: ``values``)."""
    return "\n".join([
        f"| {first} | validation macro-F1 | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
        *(f"| {k} | " + " | ".join(v) + " |" for k, v in values.items()),
    ])  # fmt: skip


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table of values measured outside this script."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


#: the beam-axis fit on simulated runs with a visible beam (scripts/beamaxis_accuracy.py)
AXIS_FIT_TABLE = md_table(
    ("simulated run (beam visible)", "true line (x0, ax, y0, ay)", "fitted", "distance",
     "beam points >= 30 mm from the axis: detector axis -> fitted line"),
    [("e15503b_standin (tilt 6.2 deg, z scale 1.025, offset -12 mm)",
      "(0, 0, 107.36, -0.1060)", "(-0.80, 0.0001, 110.57, -0.1044)", "4.8 mm",
      "median 148 -> 0 per event; events with >= 40: 90 % -> 8 %"),
     ("e15503b_nominal, `--sim-set detector.tilt_deg=6.2`", "(0, 0, 108.63, -0.1086)",
      "(0.77, -0.0048, 108.64, -0.1114)", "4.0 mm",
      "median 0 -> 0; events with >= 40: 31 % -> 1 %")],
)  # fmt: skip
#: event trees with and without the per-track names (scripts/track_identity.py)
TRACK_NAMES_TABLE = md_table(
    ("trees on", "cross-validated macro-F1", "randomised", "nominal", "gain x0.3", "gain x3",
     "noise 400", "one point per pad", "threshold 60", "tilt 6.5 deg", "stand-in"),
    [("features", "0.837 ± 0.008", "0.882 / 0.874", "0.832 / 0.883", "0.850 / 0.890",
      "0.829 / 0.887", "0.826 / 0.896", "0.803 / 0.866", "0.880 / 0.907", "0.903 / 0.914",
      "0.834 / 0.837"),
     ("features + track names", "0.844 ± 0.011", "0.879 / 0.883", "0.844 / 0.895",
      "0.875 / 0.904", "0.851 / 0.902", "0.851 / 0.913", "0.815 / 0.870", "0.883 / 0.913",
      "0.908 / 0.924", "0.841 / 0.859")],
)  # fmt: skip
#: the same through the application: gbt on tracks_v3 against tracks_v2, seeds 0-2
TRACK_NAMES_CLI_TABLE = md_table(
    ("trees", "validation macro-F1", "randomised", "nominal", "gain x0.3", "gain x3",
     "noise 400", "one point per pad", "threshold 60", "tilt 6.5 deg", "stand-in"),
    [("tracks_v2 (recommended)", "0.855 ± 0.014", "0.878 / 0.867", "0.835 / 0.886",
      "0.841 / 0.881", "0.829 / 0.885", "0.823 / 0.894", "0.799 / 0.864", "0.883 / 0.908",
      "0.904 / 0.917", "0.830 / 0.832"),
     ("tracks_v3, named tracks", "0.866 ± 0.017", "0.882 / 0.890", "0.845 / 0.892",
      "0.850 / 0.897", "0.840 / 0.893", "0.826 / 0.901", "0.818 / 0.876", "0.874 / 0.911",
      "0.912 / 0.927", "0.848 / 0.865")],
)  # fmt: skip
#: both refits on the stand-in, tracks_v2 against tracks_v3 (seed 0; commands in the text)
TRACK_NAMES_REFIT_TABLE = md_table(
    ("trees", "zero-shot", "self-training refits (3 rounds, no labels)",
     "refitted with 250 labels", "refitted with 1,000 labels"),
    [("tracks_v2 (recommended)", "0.827 [0.800, 0.850] / 0.830", "0.828 [0.803, 0.851] / 0.831",
      "0.828 [0.802, 0.852] / 0.831", "0.870 [0.847, 0.891] / 0.863"),
     ("tracks_v3, named tracks", "0.851 [0.831, 0.874] / 0.867", "0.857 [0.834, 0.875] / 0.867",
      "0.848 [0.827, 0.871] / 0.875", "0.878 [0.857, 0.898] / 0.894")],
)  # fmt: skip
#: the recommended trees (72,000 events) refitted on the stand-in (commands in the text)
RECOMMENDED_REFIT_TABLE = md_table(
    ("trees", "zero-shot", "self-training refits (3 rounds, no labels)",
     "refitted with 250 labels", "refitted with 1,000 labels"),
    [("72,000 events, 127 leaves, `tracks_v2`", "0.877 [0.856, 0.896] / 0.878",
      "0.887 [0.865, 0.906] / 0.885", "0.884 [0.861, 0.903] / 0.881",
      "0.893 [0.871, 0.911] / 0.893"),
     ("72,000 events, 127 leaves, `tracks_v3` (named tracks, recommended)",
      "0.906 [0.887, 0.925] / 0.908", "0.906 [0.887, 0.924] / 0.911",
      "0.911 [0.893, 0.928] / 0.912", "0.915 [0.896, 0.932] / 0.920"),
     ("the same with `cluster_z_scale` 0.5 (README's recommended command)",
      "0.920 [0.902, 0.936] / 0.928", "0.921 [0.902, 0.937] / 0.922",
      "0.913 [0.893, 0.930] / 0.922", "0.918 [0.900, 0.935] / 0.925"),
     ("the same with both reactions of a pile-up named alike",
      "0.919 [0.902, 0.936] / 0.924", "0.913 [0.894, 0.930] / 0.922",
      "0.911 [0.892, 0.929] / 0.916", "0.925 [0.907, 0.942] / 0.927"),
     ("the same with the light-product counts",
      "0.920 [0.902, 0.937] / 0.924", "0.922 [0.905, 0.939] / 0.925",
      "0.913 [0.896, 0.929] / 0.924", "0.920 [0.901, 0.938] / 0.926"),
     ("the same with the run's charge unit, hidden for 10 % of the training runs "
      "(the recommended command now)", "0.929 [0.911, 0.945] / 0.936",
      "0.927 [0.909, 0.944] / 0.936", "0.923 [0.906, 0.940] / 0.935",
      "0.932 [0.916, 0.947] / 0.939")],
)  # fmt: skip
#: tracks_v2 against tracks_v3 by training size (seed 0; commands in the text):
#: proton F1 / macro-F1, mean over the 8 sets other than the stand-in, and on the stand-in
TRACK_NAMES_SIZE_TABLE = md_table(
    ("training events", "tracks_v2: 8 sets", "tracks_v3: 8 sets", "tracks_v2: stand-in",
     "tracks_v3: stand-in", "validation macro-F1 v2 / v3"),
    [("2,000", "0.799 / 0.852", "0.800 / 0.862", "0.776 / 0.779", "0.777 / 0.811",
      "0.810 / 0.833"),
     ("4,000", "0.836 / 0.881", "0.821 / 0.878", "0.837 / 0.827", "0.828 / 0.845",
      "0.829 / 0.848"),
     ("6,000", "0.854 / 0.892", "0.845 / 0.894", "0.827 / 0.830", "0.851 / 0.867",
      "0.839 / 0.847")],
)  # fmt: skip
#: the demo's models with and without the run's beam line (measured to choose the recipe)
AXIS_MODEL_TABLE = md_table(
    ("model", "beam axis", "nominal", "nominal, tilt 6.2°", "stand-in"),
    [("trees, 3-class", "detector axis", "0.73 [0.66, 0.79] / 0.77", "0.71 [0.62, 0.77] / 0.71",
      "0.58 [0.50, 0.66] / 0.58"),
     ("trees, 3-class", "run's line", "0.76 [0.70, 0.82] / 0.77",
      "**0.80** [0.73, 0.85] / 0.71", "**0.67** [0.59, 0.74] / 0.65"),
     ("trees, binary", "detector axis", "0.72 [0.65, 0.79]", "0.69 [0.61, 0.76]",
      "0.64 [0.56, 0.72]"),
     ("trees, binary", "run's line", "0.76 [0.69, 0.81]", "0.77 [0.70, 0.82]",
      "**0.70** [0.62, 0.76]"),
     ("small CNN (width 16), binary", "detector axis", "0.54 [0.46, 0.62]",
      "0.65 [0.57, 0.70]", "0.55 [0.47, 0.62]"),
     ("small CNN (width 16), binary", "run's line", "**0.70** [0.64, 0.75]",
      "0.67 [0.59, 0.72]", "0.61 [0.53, 0.67]")],
)  # fmt: skip

#: the stand-in with one group of its settings put back to nominal (400 events, seed 99,
#: runs 500+), scored by demo-recipe models: before the see-through fix (the previous
#: stop's demo models) and after it with beam_axis: run (3,000 randomised events, seed 0)
ABLATION_TABLE = md_table(
    ("put back to nominal", "before the fix: trees 3-class", "CNN binary",
     "after the fix, run's beam line: trees 3-class", "trees binary", "CNN binary"),
    [("nothing (the stand-in)", "0.53", "0.59", "0.67", "0.70", "0.61"),
     ("beam optics (divergence 2 -> 0.5 deg, spot 5 -> 2 mm)", "**0.72**", "0.71", "**0.76**",
      "0.77", "0.64"),
     ("E-B tilt (6.2 -> 0 deg)", "**0.69**", "0.64", "0.69", "0.67", "0.64"),
     ("beam optics and tilt", "-", "-", "0.76", "0.79", "0.64"),
     ("all beam settings (optics, energy 4.5 -> 4.6 MeV/u, spread 2 -> 0.3 %)", "0.74",
      "0.74", "0.75", "0.76", "0.62"),
     ("class mix", "0.58", "0.62", "0.72", "0.74", "0.63"),
     ("noise (hits, amplitude, chips, hot pads, bursts)", "0.60", "0.56", "0.70", "0.73",
      "0.57"),
     ("electronics (gain range, shaping, threshold, points)", "0.55", "0.60", "0.71", "0.72",
      "0.64"),
     ("gain only (micromegas and GET range)", "0.57", "0.60", "0.63", "0.68", "0.61"),
     ("detector faults (dead pads and chips, pad gains, blind core)", "0.57", "0.59", "-",
      "-", "-"),
     ("z calibration", "0.51", "0.58", "-", "-", "-"),
     ("gas and fields (pressure, field, diffusion, tilt)", "0.73", "0.66", "-", "-", "-")],
)  # fmt: skip

#: trees (9,000 randomised events, 15 leaves, balanced; features of configs/prep/features.yaml
#: with the set named) trained on three versions of the simulation, scored on the stand-in
#: and test sets of each: `scripts/label_shortcuts.py --out label_shortcuts` (its table)
LABELS_TABLE = md_table(
    (
        "training simulation",
        "features",
        "validation (3-fold)",
        "stand-in, previous",
        "stand-in, + beam in noise",
        "stand-in, current",
        "randomised, current",
        "nominal, current",
        "nominal tilt 6.2°, current",
    ),
    [
        (
            "previous simulation",
            "`tracks_v1`",
            "0.74 / 0.69",
            "0.76 [0.73, 0.79] / 0.71",
            "0.75 [0.72, 0.78] / 0.63",
            "0.82 [0.79, 0.84] / 0.66",
            "0.80 / 0.77",
            "0.79 / 0.84",
            "0.91 / 0.71",
        ),
        (
            "previous simulation",
            "`tracks_v2`",
            "0.75 / 0.70",
            "0.75 [0.73, 0.78] / 0.70",
            "0.75 [0.72, 0.78] / 0.62",
            "0.82 [0.79, 0.84] / 0.66",
            "0.77 / 0.74",
            "0.82 / 0.86",
            "0.92 / 0.71",
        ),
        (
            "+ beam ion in noise events",
            "`tracks_v1`",
            "0.74 / 0.68",
            "0.75 [0.72, 0.77] / 0.70",
            "0.74 [0.72, 0.77] / 0.66",
            "0.82 [0.79, 0.84] / 0.71",
            "0.77 / 0.75",
            "0.78 / 0.80",
            "0.89 / 0.86",
        ),
        (
            "+ beam ion in noise events",
            "`tracks_v2`",
            "0.75 / 0.68",
            "0.76 [0.73, 0.79] / 0.71",
            "0.76 [0.73, 0.78] / 0.66",
            "0.82 [0.80, 0.84] / 0.71",
            "0.77 / 0.77",
            "0.79 / 0.80",
            "0.89 / 0.86",
        ),
        (
            "+ reaction shows >= 30 mm from its ion (current)",
            "`tracks_v1`",
            "0.81 / 0.83",
            "0.76 [0.73, 0.78] / 0.69",
            "0.75 [0.72, 0.78] / 0.69",
            "0.83 [0.80, 0.85] / 0.83",
            "0.80 / 0.84",
            "0.79 / 0.86",
            "0.92 / 0.94",
        ),
        (
            "+ reaction shows >= 30 mm from its ion (current)",
            "`tracks_v2`",
            "0.81 / 0.84",
            "0.77 [0.73, 0.79] / 0.71",
            "0.76 [0.73, 0.79] / 0.71",
            "0.85 [0.83, 0.87] / 0.85",
            "0.84 / 0.86",
            "0.84 / 0.89",
            "0.94 / 0.95",
        ),
    ],
)

#: the recommended trees against training events and leaves, through the application:
#: `scripts/training_size.py --out training_size` (its tables); proton F1 [95 %] / macro-F1
SIZE_TABLE = md_table(
    ("training events", "leaves", "validation macro-F1", "stand-in (2,000)",
     "randomised (1,000)", "nominal (500)"),
    [("9,000", "15", "0.851", "0.87 [0.85, 0.89] / 0.85", "0.83 [0.79, 0.86] / 0.85",
      "0.89 [0.85, 0.93] / 0.91"),
     ("9,000", "63", "0.858", "0.86 [0.84, 0.89] / 0.85", "0.84 [0.80, 0.87] / 0.85",
      "0.86 [0.81, 0.90] / 0.90"),
     ("9,000", "127", "0.857", "0.86 [0.83, 0.88] / 0.85", "0.84 [0.81, 0.88] / 0.86",
      "0.87 [0.82, 0.91] / 0.91"),
     ("36,000", "15", "0.888", "0.88 [0.86, 0.90] / 0.87", "0.87 [0.83, 0.90] / 0.87",
      "0.89 [0.84, 0.92] / 0.92"),
     ("36,000", "63", "0.895", "0.90 [0.87, 0.91] / 0.88", "0.87 [0.84, 0.90] / 0.89",
      "0.89 [0.84, 0.93] / 0.94"),
     ("36,000", "127", "0.893", "0.90 [0.87, 0.91] / 0.88", "0.88 [0.84, 0.90] / 0.88",
      "0.90 [0.86, 0.94] / 0.94"),
     ("72,000", "15", "0.893", "0.90 [0.88, 0.91] / 0.89", "0.89 [0.85, 0.91] / 0.88",
      "0.89 [0.84, 0.93] / 0.92"),
     ("72,000", "63", "0.907", "0.92 [0.90, 0.93] / 0.90", "0.91 [0.88, 0.93] / 0.91",
      "0.88 [0.83, 0.92] / 0.92"),
     ("**72,000**", "**127** (chosen)", "**0.908**", "0.91 [0.89, 0.93] / 0.90",
      "0.88 [0.85, 0.91] / 0.89", "0.88 [0.83, 0.92] / 0.92")],
)  # fmt: skip

#: the chosen trees' 3-class errors per channel on the randomised test set, and its
#: pile-up errors by how much the weaker reaction shows (the same script)
SIZE_CHANNEL_TABLE = md_table(
    ("channel", "wrong / events", "called"),
    [("p_elastic", "18 / 217", "other 18"), ("p_inelastic", "5 / 30", "other 5"),
     ("c12_elastic", "15 / 126", "proton 1, other 14"), ("noise", "4 / 220", "carbon 4"),
     ("alpha_43cl", "8 / 113", "proton 7, carbon 1"),
     ("fusion_evap", "9 / 137", "proton 7, carbon 2"),
     ("pileup", "32 / 157", "proton 21, carbon 11")],
)  # fmt: skip
SIZE_OTHER_TABLE = md_table(
    ("made another way", "9,000 events, 15 leaves (the recipe before)",
     "72,000 events, 127 leaves (chosen)"),
    [("nominal, gain x0.3", "0.88 [0.83, 0.92] / 0.91", "0.94 [0.90, 0.97] / 0.95"),
     ("nominal, gain x3", "0.90 [0.85, 0.93] / 0.91", "0.90 [0.86, 0.94] / 0.94"),
     ("nominal, threshold 60", "0.93 [0.89, 0.96] / 0.94", "0.94 [0.91, 0.97] / 0.96"),
     ("nominal, 400 noise hits", "0.89 [0.84, 0.93] / 0.92", "0.91 [0.87, 0.95] / 0.95"),
     ("nominal, one point per pad", "0.88 [0.84, 0.92] / 0.92", "0.91 [0.87, 0.94] / 0.95"),
     ("nominal, tilt 6.5 deg", "0.93 [0.90, 0.96] / 0.93", "0.94 [0.91, 0.97] / 0.95"),
     ("stand-in of the simulation before the label fixes", "0.78 [0.75, 0.80] / 0.69",
      "0.82 [0.79, 0.84] / 0.73")],
)  # fmt: skip
SIZE_CNN_TABLE = md_table(
    ("CNN (cnn_small, width 16, 15 epochs), training events", "validation macro-F1",
     "stand-in (2,000)", "randomised (1,000)", "nominal (500)"),
    [("9,000", "0.700", "0.74 [0.71, 0.77] / 0.74", "0.73 [0.68, 0.77] / 0.72",
      "0.72 [0.66, 0.78] / 0.73"),
     ("36,000", "0.750", "0.74 [0.71, 0.76] / 0.75", "0.76 [0.72, 0.79] / 0.74",
      "0.78 [0.73, 0.84] / 0.78")],
)  # fmt: skip
SIZE_CNN128_TABLE = md_table(
    ("CNN (cnn128.yaml, 128 x 128, three views, 12 epochs), training events",
     "validation macro-F1", "stand-in (2,000)", "randomised (1,000)", "nominal (500)"),
    [("9,000", "0.766", "0.75 [0.72, 0.77] / 0.79", "0.78 [0.74, 0.82] / 0.79",
      "0.82 [0.77, 0.87] / 0.83")],
)  # fmt: skip
#: scripts/proton_misses.py on the recommended trees' calls (randomised + stand-in sets)
MISS_TURNS_TABLE = md_table(
    ("turns on the pad plane", "protons", "missed"),
    [("< 0.5", "417", "29 (7 %)"), ("0.5-1", "218", "2 (1 %)"), ("1-2", "88", "13 (15 %)"),
     (">= 2", "17", "3 (18 %)")],
)  # fmt: skip
MISS_SHOWN_TABLE = md_table(
    ("points shown >= 30 mm", "protons", "missed"),
    [("0-19", "32", "11 (34 %)"), ("20-39", "79", "8 (10 %)"), ("40-79", "232", "11 (5 %)"),
     (">= 80", "397", "17 (4 %)")],
)  # fmt: skip
MISS_PIECES_TABLE = md_table(
    ("clusters of the proton (protons shown >= 80)", "protons", "missed"),
    [("0-1", "144", "1 (1 %)"), ("2", "112", "1 (1 %)"), ("3", "80", "2 (2 %)"),
     (">= 4", "61", "13 (21 %)")],
)  # fmt: skip
MISS_BEAM_TABLE = md_table(
    ("beam-ion points >= 30 mm (protons shown >= 80)", "< 3 clusters: protons, missed",
     ">= 3 clusters: protons, missed"),
    [("0", "180, 0", "94, 5 (5 %)"), ("1-19", "50, 1 (2 %)", "23, 4 (17 %)"),
     (">= 20", "26, 1 (4 %)", "24, 6 (25 %)")],
)  # fmt: skip
#: tracks_v2 against tracks_v4 (commit f387b23), 72,000 events, seeds 0 and 1: proton F1 /
#: macro-F1, mean over the two seeds (the knob column: also over the six knob sets)
JOIN_TABLE = md_table(
    ("trees on", "validation macro-F1, seed 0 / 1", "validation proton F1, seed 0 / 1",
     "stand-in", "randomised", "nominal", "6 knob extremes", "stand-in, previous simulation"),
    [("tracks_v2 (recommended features)", "0.9083 / 0.9031", "0.8988 / 0.8950", "0.910 / 0.900",
      "0.883 / 0.894", "0.886 / 0.928", "0.924 / 0.947", "0.818 / 0.735"),
     ("tracks_v4 = v2 + helix joins", "0.9082 / 0.9028", "0.8994 / 0.8953", "0.912 / 0.902",
      "0.902 / 0.904", "0.894 / 0.934", "0.924 / 0.947", "0.818 / 0.731")],
)  # fmt: skip
#: the tracks_v2 trees (72,000 events, 127 leaves, seed 0) with cluster_z_scale 1 and 0.5
ZSCALE_TABLE = md_table(
    ("test set", "cluster_z_scale 1 (as measured above)", "cluster_z_scale 0.5",
     "change, proton F1 / macro-F1"),
    [("validation split (14,401 events): proton F1 / macro-F1", "0.899 / 0.908",
      "0.912 / 0.917", "+0.014 / +0.009"),
     ("stand-in (2,000)", "0.91 [0.89, 0.93] / 0.90",
      "0.92 [0.90, 0.93] / 0.91", "+0.004 / +0.012"),
     ("randomised (1,000)", "0.88 [0.85, 0.91] / 0.89",
      "0.90 [0.87, 0.92] / 0.90", "+0.015 / +0.002"),
     ("nominal (500)", "0.88 [0.83, 0.92] / 0.92", "0.91 [0.87, 0.94] / 0.94", "+0.028 / +0.015"),
     ("nominal, gain x0.3", "0.94 [0.90, 0.97] / 0.95",
      "0.96 [0.94, 0.98] / 0.96", "+0.027 / +0.016"),
     ("nominal, gain x3", "0.90 [0.86, 0.94] / 0.94",
      "0.91 [0.88, 0.95] / 0.95", "+0.013 / +0.009"),
     ("nominal, threshold 60", "0.94 [0.91, 0.97] / 0.96",
      "0.95 [0.91, 0.97] / 0.97", "+0.004 / +0.008"),
     ("nominal, 400 noise hits", "0.91 [0.87, 0.95] / 0.95",
      "0.93 [0.90, 0.97] / 0.95", "+0.023 / +0.002"),
     ("nominal, one point per pad", "0.91 [0.87, 0.94] / 0.95",
      "0.92 [0.87, 0.95] / 0.95", "+0.008 / +0.001"),
     ("nominal, tilt 6.5 deg", "0.94 [0.91, 0.97] / 0.95",
      "0.96 [0.93, 0.98] / 0.97", "+0.012 / +0.020"),
     ("stand-in, previous simulation", "0.82 [0.79, 0.84] / 0.73",
      "0.82 [0.80, 0.85] / 0.75", "+0.005 / +0.011")],
)  # fmt: skip
#: the same for the named-track trees (tracks_v3, the recommended model)
ZSCALE_V3_TABLE = md_table(
    ("test set", "tracks_v3, cluster_z_scale 1", "tracks_v3, cluster_z_scale 0.5",
     "change, proton F1 / macro-F1"),
    [("validation split: macro-F1", "0.923", "0.933", "+0.010"),
     ("stand-in (2,000)", "0.91 [0.89, 0.93] / 0.92",
      "0.92 [0.90, 0.93] / 0.92", "+0.003 / +0.001"),
     ("randomised (1,000)", "0.90 [0.87, 0.92] / 0.92",
      "0.92 [0.89, 0.94] / 0.91", "+0.025 / -0.002"),
     ("nominal (500)", "0.90 [0.86, 0.94] / 0.94",
      "0.90 [0.86, 0.94] / 0.93", "+0.000 / -0.005"),
     ("nominal, gain x0.3", "0.96 [0.94, 0.99] / 0.97",
      "0.96 [0.94, 0.99] / 0.96", "+0.001 / -0.006"),
     ("nominal, gain x3", "0.90 [0.86, 0.93] / 0.94",
      "0.91 [0.87, 0.94] / 0.94", "+0.007 / +0.003"),
     ("nominal, threshold 60", "0.96 [0.93, 0.98] / 0.97",
      "0.96 [0.93, 0.98] / 0.97", "+0.000 / +0.003"),
     ("nominal, 400 noise hits", "0.92 [0.88, 0.95] / 0.95",
      "0.94 [0.91, 0.97] / 0.95", "+0.025 / +0.002"),
     ("nominal, one point per pad", "0.91 [0.87, 0.94] / 0.95",
      "0.91 [0.87, 0.95] / 0.95", "+0.001 / +0.003"),
     ("nominal, tilt 6.5 deg", "0.94 [0.91, 0.97] / 0.95",
      "0.96 [0.94, 0.98] / 0.97", "+0.020 / +0.019"),
     ("stand-in, previous simulation", "0.82 [0.79, 0.85] / 0.75",
      "0.83 [0.81, 0.86] / 0.76", "+0.015 / +0.014")],
)  # fmt: skip
#: the named-track trees before and after both reactions of a pile-up are named alike
#: (data_prep.tracktruth.cluster_kinds; 72,000 events, commands in the text)
PILEUP_NAMES_TABLE = md_table(
    ("test set", "pile-up's second reaction named \"other\" / \"noise\" (before)",
     "both reactions named alike (now)", "change, proton F1 / macro-F1"),
    [("validation split (14,401 events): proton F1 / macro-F1", "0.927 / 0.9325",
      "0.926 / 0.9330", "-0.001 / +0.001"),
     ("stand-in (2,000)", "0.92 [0.90, 0.93] / 0.92", "0.93 [0.91, 0.94] / 0.93",
      "+0.011 / +0.012"),
     ("randomised (1,000)", "0.92 [0.89, 0.94] / 0.91", "0.91 [0.88, 0.93] / 0.91",
      "-0.012 / -0.005"),
     ("nominal (500)", "0.90 [0.86, 0.94] / 0.93", "0.93 [0.90, 0.96] / 0.95",
      "+0.032 / +0.019"),
     ("nominal, gain x0.3", "0.96 [0.94, 0.99] / 0.96", "0.96 [0.93, 0.98] / 0.96",
      "-0.004 / -0.001"),
     ("nominal, gain x3", "0.91 [0.87, 0.94] / 0.94", "0.92 [0.88, 0.95] / 0.95",
      "+0.010 / +0.004"),
     ("nominal, threshold 60", "0.96 [0.93, 0.98] / 0.97", "0.95 [0.92, 0.98] / 0.97",
      "-0.008 / -0.007"),
     ("nominal, 400 noise hits", "0.94 [0.91, 0.97] / 0.95", "0.94 [0.91, 0.97] / 0.96",
      "+0.000 / +0.006"),
     ("nominal, one point per pad", "0.91 [0.87, 0.95] / 0.95", "0.92 [0.88, 0.96] / 0.95",
      "+0.012 / +0.003"),
     ("nominal, tilt 6.5 deg", "0.96 [0.94, 0.98] / 0.97", "0.96 [0.94, 0.98] / 0.97",
      "-0.000 / -0.003"),
     ("stand-in, previous simulation", "0.83 [0.81, 0.86] / 0.76",
      "0.83 [0.81, 0.86] / 0.76", "-0.004 / +0.001")],
)  # fmt: skip
#: the same at the demo's size (scripts/demo_features.py, five training sets of 2,000)
PILEUP_NAMES_DEMO_TABLE = md_table(
    ("named-track trees (the demo's settings)", "validation proton F1, before -> after",
     "validation macro-F1, before -> after", "sets up (of 5): proton F1 / macro-F1",
     "stand-in check, before -> after"),
    [("`tracks_v3`", "0.787 -> 0.798", "0.826 -> 0.834", "5 / 5",
      "0.804 / 0.818 -> 0.812 / 0.827"),
     ("`tracks_v3`, `cluster_z_scale` 0.5 (the demo)", "0.806 -> 0.820", "0.836 -> 0.844",
      "5 / 5", "0.812 / 0.831 -> 0.819 / 0.835"),
     ("the same, track trees stopped early", "0.805 -> 0.812", "0.834 -> 0.840",
      "4 / 4 (1 level)",
      "0.813 / 0.827 -> 0.818 / 0.835")],
)  # fmt: skip
#: the named-track trees with and without light_columns (72,000 events, commands in the text)
#: the light pair of the recommended trees' 72,000 training events (scripts/pair_columns.py)
PAIR_SEPARATION_TABLE = md_table(
    ("channel", "events with >= 2 light tracks", "centre angle [rad]: 10/25/50/75/90 %",
     "vertex gap [mm]: 10/25/50/75/90 %"),
    [("p_elastic", "4876", "0.02, 0.04, 0.10, 0.20, 0.36", "4, 12, 136, 520, 746"),
     ("pileup", "10226", "0.10, 0.42, 1.33, 2.24, 2.77", "34, 125, 302, 517, 698"),
     ("fusion_evap", "898", "0.02, 0.06, 0.15, 0.44, 1.62", "1, 4, 10, 38, 492"),
     ("p_inelastic", "726", "0.02, 0.05, 0.13, 0.26, 0.54", "9, 32, 572, 903, 1205"),
     ("alpha_43cl", "1243", "0.02, 0.05, 0.11, 0.23, 0.55", "4, 13, 40, 142, 1263")],
)  # fmt: skip
#: one-stage trees with and without the pair columns at 72,000 events (scripts/pair_columns.py)
PAIR_PROXY_TABLE = md_table(
    ("one-stage trees on", "proton F1 per split", "macro-F1 per split"),
    [("features + names", "0.9344, 0.9371", "0.9423, 0.9441"),
     ("+ the light pair's two columns", "0.9374, 0.9359", "0.9421, 0.9444"),
     ("+ the light pair and all 20 pair columns", "0.9373, 0.9378", "0.9429, 0.9442")],
)  # fmt: skip
#: the demo's trees on tracks_v3 and tracks_v6 (scripts/demo_features.py, 2026-12-06)
PAIR_DEMO_TABLE = md_table(
    ("the demo's trees (15 leaves, unit hidden for 10 %, track trees stopped early) on",
     "validation: proton F1", "validation: macro-F1", "stand-in check: proton F1 / macro-F1"),
    [("`tracks_v3` (the demo before)", "0.827 (0.826 0.822 0.838 0.826 0.826)",
      "0.857 (0.854 0.856 0.863 0.857 0.856)", "0.858 / 0.891"),
     ("**`tracks_v6`, the light pair's centre angle and vertex gap (the demo now)**",
      "**0.846** (0.848 0.842 0.862 0.837 0.842)", "**0.867** (0.867 0.865 0.878 0.863 0.862)",
      "0.882 / 0.901")],
)  # fmt: skip
#: which light pair the demo's trees read (scripts/demo_features.py, 2026-12-06, 9th session)
PAIR_CHOICE_DEMO_TABLE = md_table(
    ("the demo's trees on `tracks_v6`, reading", "validation: proton F1",
     "validation: macro-F1", "stand-in check: proton F1 / macro-F1"),
    [("the two likeliest light tracks' pair (`demo_r`)",
      "0.846 (0.848 0.842 0.862 0.837 0.842)", "0.867 (0.867 0.865 0.878 0.863 0.862)",
      "0.882 / 0.901"),
     ("**the likely light tracks' widest pair (`model.light_pair=widest`, the demo now)**",
      "**0.857** (0.858 0.852 0.871 0.851 0.852)", "**0.871** (0.871 0.868 0.878 0.869 0.869)",
      "0.888 / 0.904"),
     ("both pairs (`model.light_pair=both`)", "0.855 (0.859 0.846 0.870 0.854 0.845)",
      "0.870 (0.871 0.864 0.881 0.871 0.863)", "0.886 / 0.903")],
)  # fmt: skip
#: the pairs at 72,000 events (the recommended command on tracks_v6, 9th session)
PAIR_CHOICE_72K_TABLE = md_table(
    ("trees of the recommended command on", "validation: proton F1", "validation: macro-F1",
     "validation pile-ups called proton (of 2,267)", "stand-in check: proton F1",
     "stand-in check: macro-F1"),
    [("`tracks_v3` (the recommended run)", "0.9284", "0.9333", "201", "0.945 [0.929, 0.959]",
      "0.951"),
     ("`tracks_v6`, the two likeliest light tracks' pair", "0.9303", "0.9351", "204",
      "0.948 [0.932, 0.961]", "0.948"),
     ("`tracks_v6`, the likely light tracks' widest pair", "0.9315", "0.9357", "194",
      "0.941 [0.926, 0.955]", "0.946")],
)  # fmt: skip
#: the demo's trees' validation share and training size (scripts/demo_features.py, 9th session)
DEMO_SIZE_TABLE = md_table(
    ("the demo's trees (`tracks_v6`, the widest light pair)", "training events",
     "validation: proton F1", "validation: macro-F1", "stand-in check: proton F1 / macro-F1"),
    [("a fifth of them for validation (`demo_s`)", "2,000",
      "0.857 (0.858 0.852 0.871 0.851 0.852)", "0.871 (0.871 0.868 0.878 0.869 0.869)",
      "0.888 / 0.904"),
     ("a tenth for validation (`data.val_fraction=0.1`, `demo_t`)", "2,000",
      "0.864 (0.865 0.861 0.877 0.855 0.862)", "0.878 (0.879 0.876 0.885 0.870 0.877)",
      "0.890 / 0.906"),
     ("a twentieth for validation", "2,000", "0.860 (0.853 0.853 0.875 0.855 0.865)",
      "0.877 (0.872 0.873 0.883 0.872 0.885)", "0.892 / 0.908"),
     ("a fifth for validation", "3,000", "0.872 (0.873 0.871 0.867 0.882 0.868)",
      "0.882 (0.886 0.882 0.876 0.887 0.877)", "0.900 / 0.910"),
     ("**a tenth for validation (the demo now, `demo_v`)**", "3,000",
      "**0.876** (0.875 0.873 0.877 0.884 0.871)", "**0.887** (0.890 0.883 0.888 0.892 0.883)",
      "0.896 / 0.910"),
     ("a fifth for validation", "4,000", "0.876 (0.869 0.878 0.884 0.868 0.879)",
      "0.887 (0.890 0.891 0.892 0.884 0.880)", "0.907 / 0.914")],
)  # fmt: skip
#: two more ways to adapt the trees, at 72,000 events (scripts/tree_adapt_variants.py
#: --only refit cut weights, 2026-12-06)
ADAPT_MORE_TABLE = md_table(
    ("variant", "labels", "proton F1 (mean over seeds)", "macro-F1", "proton F1 per seed"),
    [("simulation only (zero-shot)", "-", "0.935", "0.927", "0.933, 0.936"),
     ("importance weights toward the pool's 1000 events (no labels)", "-", "0.933", "0.918",
      "0.934, 0.933"),
     ("refit on simulation + labels, labels weighted as the simulation "
      "(the application's until 2026-12-07)", "1000", "0.926", "0.922", "0.927, 0.926"),
     ("refit on simulation + labels, labels weighted as the simulation x 4", "1000", "0.916",
      "0.911", "0.921, 0.911"),
     ("proton cut chosen on the labels", "1000", "0.933", "0.927", "0.933, 0.933")],
)  # fmt: skip
LIGHT_COLUMNS_TABLE = md_table(
    ("test set", "without `light_columns`", "with them (now)", "change, proton F1 / macro-F1"),
    [("validation split (14,401 events): proton F1 / macro-F1", "0.926 / 0.9330",
      "0.926 / 0.9327", "-0.000 / -0.000"),
     ("stand-in (2,000)", "0.93 [0.91, 0.94] / 0.93", "0.92 [0.91, 0.94] / 0.93",
      "-0.004 / -0.004"),
     ("randomised (1,000)", "0.91 [0.88, 0.93] / 0.91", "0.93 [0.90, 0.95] / 0.93",
      "+0.018 / +0.017"),
     ("nominal (500)", "0.93 [0.90, 0.96] / 0.95", "0.93 [0.89, 0.96] / 0.95",
      "-0.009 / -0.001"),
     ("nominal, gain x0.3", "0.96 [0.93, 0.98] / 0.96", "0.97 [0.94, 0.99] / 0.97",
      "+0.008 / +0.004"),
     ("nominal, gain x3", "0.92 [0.88, 0.95] / 0.95", "0.92 [0.88, 0.95] / 0.94",
      "+0.004 / -0.004"),
     ("nominal, threshold 60", "0.95 [0.92, 0.98] / 0.97", "0.96 [0.93, 0.98] / 0.97",
      "+0.004 / +0.001"),
     ("nominal, 400 noise hits", "0.94 [0.91, 0.97] / 0.96", "0.95 [0.92, 0.98] / 0.96",
      "+0.008 / +0.003"),
     ("nominal, one point per pad", "0.92 [0.88, 0.96] / 0.95", "0.92 [0.87, 0.95] / 0.95",
      "-0.008 / -0.004"),
     ("nominal, tilt 6.5 deg", "0.96 [0.94, 0.98] / 0.97", "0.97 [0.95, 0.99] / 0.97",
      "+0.008 / +0.001"),
     ("stand-in, previous simulation", "0.83 [0.81, 0.86] / 0.76", "0.83 [0.81, 0.86] / 0.76",
      "+0.003 / +0.002")],
)  # fmt: skip
#: the run's charge unit at 72,000 events (scripts/charge_unit.py, 2026-12-05)
CHARGE_UNIT_TABLE = md_table(
    ("test set", "recommended (`tracks_v3`, z x0.5)", "+ the run's charge unit",
     "+ the unit hidden for 10 % of the training runs"),
    [("validation split (a fifth, seed 0): proton F1 / macro-F1", "0.918 / 0.927",
      "0.938 / 0.944", "0.938 / 0.943"),
     ("stand-in (2,000)", "0.92 [0.91, 0.94] / 0.93", "0.95 [0.94, 0.96] / 0.95",
      "0.95 [0.93, 0.96] / 0.95"),
     ("randomised (1,000)", "0.91 [0.88, 0.94] / 0.92", "0.94 [0.92, 0.96] / 0.94",
      "0.93 [0.90, 0.95] / 0.93"),
     ("nominal (500)", "0.93 [0.90, 0.96] / 0.95", "0.95 [0.92, 0.98] / 0.97",
      "0.94 [0.91, 0.97] / 0.97"),
     ("nominal, gain x0.3", "0.98 [0.95, 1.00] / 0.97", "0.97 [0.95, 0.99] / 0.97",
      "0.96 [0.94, 0.98] / 0.97"),
     ("nominal, gain x3", "0.90 [0.86, 0.94] / 0.94", "0.96 [0.94, 0.98] / 0.97",
      "0.96 [0.93, 0.98] / 0.97"),
     ("nominal, threshold 60", "0.97 [0.94, 0.99] / 0.98", "0.98 [0.95, 0.99] / 0.98",
      "0.97 [0.95, 0.99] / 0.98"),
     ("nominal, 400 noise hits", "0.95 [0.91, 0.97] / 0.96", "0.96 [0.93, 0.98] / 0.97",
      "0.97 [0.95, 0.99] / 0.97"),
     ("nominal, one point per pad", "0.91 [0.87, 0.95] / 0.95", "0.95 [0.92, 0.98] / 0.97",
      "0.96 [0.93, 0.98] / 0.97"),
     ("nominal, tilt 6.5 deg", "0.96 [0.93, 0.98] / 0.96", "0.96 [0.93, 0.98] / 0.96",
      "0.95 [0.93, 0.98] / 0.96"),
     ("stand-in, previous simulation", "0.84 [0.81, 0.86] / 0.77", "0.86 [0.84, 0.88] / 0.78",
      "0.85 [0.83, 0.88] / 0.77")],
)  # fmt: skip
#: models on runs with sparks (scripts/spark_check.py, 2026-12-05; "Events with a spark")
SPARK_TABLE = md_table(
    ("model", "spark rule",
     "spark events called proton / carbon / other / empty (without the spark)",
     "spark events with the same call as without it", "events without a spark: same call",
     "classify, events/s: as simulated / with the sparks"),
    [("recommended trees", "no", "0 / 0 / 197 / 0 (52 / 26 / 119 / 0)", "119 of 197",
      "1,789 of 1,803", "226 / 126"),
     ("recommended trees", "yes", "52 / 24 / 121 / 0", "**189** of 197", "1,790 of 1,803",
      "221 / 213"),
     ("demo trees", "no", "0 / 11 / 186 / 0 (48 / 24 / 125 / 0)", "114 of 197",
      "1,781 of 1,803", "393 / 170"),
     ("demo trees", "yes", "45 / 23 / 129 / 0", "**189** of 197", "1,787 of 1,803",
      "364 / 350"),
     ("demo CNN (`demo_l`)", "no", "**131** / 2 / 64 / 0 (84 / 40 / 54 / 19)", "103 of 197",
      "1,255 of 1,803", "359 / 157"),
     ("demo CNN (`demo_l`)", "yes", "**126** / 13 / 38 / 20", "138 of 197", "1,255 of 1,803",
      "347 / 323"),
     ("demo CNN retrained, quantiles after the rules (`demo_m`)", "yes",
      "82 / 45 / 50 / 20 (80 / 44 / 54 / 19)", "**187** of 197", "**1,742** of 1,803",
      "349 / 330")],
)  # fmt: skip
#: models on the same runs in every layout (scripts/formats_check.py, 2026-12-05; "A run
#: in another file format"): before the fix (3ee6a29) and after
FORMATS_TABLE = md_table(
    ("model, test set", "layout (pad ids)",
     "before: events called as in the Spyral file / proton F1 [95 %]",
     "after: events called as in the Spyral file / proton F1 [95 %]"),
    [("demo trees, demo test runs (300)", "Spyral (column 5)", "300 / 0.847 [0.778, 0.906]",
      "300 / 0.847 [0.778, 0.906]"),
     ("demo trees, demo test runs (300)", "pytpc (column 4)", "190 / **0.000**",
      "300 / 0.847 [0.778, 0.906]"),
     ("demo trees, demo test runs (300)", "ATTPCROOT HDF5, ROOT tree (none)",
      "281 / 0.777 [0.692, 0.847]", "300 / 0.847 [0.778, 0.906]"),
     ("demo trees, stand-in (1,000)", "Spyral (column 5)", "1,000 / 0.848 [0.813, 0.880]",
      "1,000 / 0.848 [0.813, 0.880]"),
     ("demo trees, stand-in (1,000)", "pytpc (column 4)", "639 / **0.000**",
      "1,000 / 0.848 [0.813, 0.880]"),
     ("demo trees, stand-in (1,000)", "ATTPCROOT HDF5, ROOT tree (none)",
      "902 / 0.738 [0.689, 0.784]", "1,000 / 0.848 [0.813, 0.880]"),
     ("demo CNN, stand-in (1,000)", "Spyral (column 5)", "1,000 / 0.591 [0.546, 0.632]",
      "1,000 / 0.591 [0.546, 0.632]"),
     ("demo CNN, stand-in (1,000)", "pytpc (column 4)",
      "**classify stops**: no point of positive charge", "1,000 / 0.591 [0.546, 0.632]"),
     ("demo CNN, stand-in (1,000)", "ATTPCROOT HDF5, ROOT tree (none)",
      "780 / 0.574 [0.526, 0.616]", "1,000 / 0.591 [0.546, 0.632]")],
)  # fmt: skip
#: models on runs with chip fires on the real electronics (scripts/chip_check.py,
#: 2026-12-05 and -06; "Chip fires on the real electronics")
CHIP_TABLE = md_table(
    ("model", "chip fires", "map given", "events called as without the fires",
     "proton F1 [95 %]", "macro-F1 [95 %]"),
    [("demo trees, chips as blocks only (`demo_n`)", "none", "no or yes", "1,000 of 1,000",
      "0.845 [0.808, 0.877]", "0.880 [0.857, 0.902]"),
     ("demo trees, chips as blocks only (`demo_n`)", "the simulation's (blocks)", "no",
      "988 of 1,000", "0.839 [0.803, 0.873]", "0.874 [0.849, 0.897]"),
     ("demo trees, chips as blocks only (`demo_n`)", "the map's", "no", "851 of 1,000",
      "**0.586** [0.526, 0.643]", "0.738 [0.704, 0.771]"),
     ("demo trees, chips as blocks only (`demo_n`)", "the map's", "yes", "990 of 1,000",
      "0.844 [0.809, 0.876]", "0.877 [0.853, 0.900]"),
     ("demo trees, blocks or patches per run file (`demo_o`)", "none", "no or yes",
      "1,000 of 1,000", "0.865 [0.830, 0.896]", "0.878 [0.854, 0.901]"),
     ("demo trees, blocks or patches per run file (`demo_o`)", "the simulation's (blocks)",
      "no", "989 of 1,000", "0.858 [0.823, 0.890]", "0.877 [0.854, 0.900]"),
     ("demo trees, blocks or patches per run file (`demo_o`)", "the map's", "no",
      "914 of 1,000", "**0.770** [0.725, 0.810]", "0.829 [0.801, 0.854]"),
     ("demo trees, blocks or patches per run file (`demo_o`)", "the map's", "yes",
      "990 of 1,000", "0.858 [0.823, 0.890]", "0.876 [0.854, 0.900]"),
     ("demo trees, blocks or patches per run file (`demo_o`)", "the map's",
      "learned from these files", "983 of 1,000", "0.851 [0.815, 0.886]",
      "0.869 [0.845, 0.894]"),
     ("demo trees, blocks, patches or stripes per run file (`demo_p`)", "none", "no or yes",
      "1,000 of 1,000", "0.845 [0.808, 0.874]", "0.876 [0.852, 0.899]"),
     ("demo trees, blocks, patches or stripes per run file (`demo_p`)",
      "the simulation's (blocks)", "no", "986 of 1,000", "0.842 [0.806, 0.874]",
      "0.873 [0.850, 0.895]"),
     ("demo trees, blocks, patches or stripes per run file (`demo_p`)", "the map's", "no",
      "935 of 1,000", "**0.792** [0.752, 0.828]", "0.845 [0.818, 0.868]"),
     ("demo trees, blocks, patches or stripes per run file (`demo_p`)", "the map's", "yes",
      "988 of 1,000", "0.847 [0.812, 0.877]", "0.879 [0.856, 0.901]"),
     ("demo trees, blocks, patches or stripes per run file (`demo_p`)", "the map's",
      "learned from these files", "985 of 1,000", "**0.844** [0.808, 0.875]",
      "0.876 [0.852, 0.898]"),
     ("demo CNN (`demo_n`)", "none", "no or yes", "1,000 of 1,000", "0.600 [0.552, 0.640]",
      "0.616 [0.581, 0.647]"),
     ("demo CNN (`demo_n`)", "the map's", "no", "795 of 1,000", "0.570 [0.522, 0.612]",
      "0.569 [0.534, 0.601]"),
     ("demo CNN (`demo_n`)", "the map's", "yes", "986 of 1,000", "0.599 [0.550, 0.639]",
      "0.612 [0.577, 0.643]"),
     ("demo CNN (`demo_o`)", "none", "no or yes", "1,000 of 1,000", "0.606 [0.560, 0.648]",
      "0.615 [0.580, 0.646]"),
     ("demo CNN (`demo_o`)", "the map's", "no", "782 of 1,000", "0.582 [0.532, 0.628]",
      "0.580 [0.546, 0.613]"),
     ("demo CNN (`demo_o`)", "the map's", "yes", "991 of 1,000", "0.604 [0.558, 0.645]",
      "0.613 [0.578, 0.644]")],
)  # fmt: skip
#: what attpc-classify chips learns (data_prep.chipmap, 2026-12-06; "Chips learned from
#: the run")
LEARN_CHIPS_TABLE = md_table(
    ("learned from", "dense instants", "chips learned", "the map's chips found",
     "pads of a learned chip from one map chip"),
    [("the 1,000 fired events classified below", "1,450", "135", "135 of 160", "98-100 %"),
     ("1,000 other fired events (seed 1)", "1,422", "133", "133", "98-100 %"),
     ("2,000 other fired events (seeds 1-2)", "2,896", "160", "160", "100 %"),
     ("4,000 other fired events (seeds 1-4)", "5,794", "160", "160", "100 %"),
     ("the same 1,000 events without chip fires", "670", "0", "-", "-"),
     ("the stand-in test set (2,000; its chips fire as blocks, 0.8 per event)", "2,756",
      "145, each inside one block of 64 ids; 0.71 fires per event", "-", "-"),
     ("the randomised test sets of two and three shapes (1,000 each)", "1,299 and 1,292",
      "92 and 73", "-", "-")],
)  # fmt: skip
#: trees with the learned map (scripts/chip_check.py, and the map learned from other
#: events of the run, 2026-12-06)
LEARNED_MAP_TABLE = md_table(
    ("trees", "the map's fires: no map", "the real map", "learned from the same events",
     "learned from 1,000 other events", "no fires, learned map"),
    [("`demo_p`", "0.792 [0.752, 0.828]", "0.847 [0.812, 0.877]", "**0.844** [0.808, 0.875]",
      "**0.846** [0.811, 0.878]", "0.845 (1,000 of 1,000 calls kept)"),
     ("`demo_o`", "0.770 [0.725, 0.810]", "0.858 [0.823, 0.890]", "**0.851** [0.815, 0.886]",
      "-", "-"),
     ("recommended recipe at 9,000 events, three shapes", "0.762 [0.715, 0.803]",
      "0.885 [0.849, 0.914]", "**0.878** [0.843, 0.909]", "**0.871** [0.836, 0.901]",
      "0.884 (1,000 of 1,000 calls kept)"),
     ("recommended trees (72,000 events, three shapes)", "0.866 [0.831, 0.897]",
      "0.952 [0.930, 0.969]", "**0.943** [0.920, 0.963]", "**0.939** [0.915, 0.958]",
      "0.952 (1,000 of 1,000 calls kept)")],
)  # fmt: skip
#: the health report against the training simulation, and the recommended trees'
#: scores (scripts/health_check.py, 2026-12-06; "Detector health")
HEALTH_TABLE = md_table(
    ("test set", "files",
     "numbers outside the training simulation's range (files of the set, side)",
     "proton F1", "macro-F1"),
    [
     ("nominal",
      "5",
      "`points_per_event` (5 of 5, below), `outside_z_fraction` (5 of 5, below), "
       "`burst_fraction` (5 of 5, below), `z_p01` (3 of 5, above)",
      "0.957 [0.930, 0.981]",
      "0.975 [0.960, 0.990]"),
     ("gain x0.3",
      "5",
      "`points_per_event` (5 of 5, below), `outside_z_fraction` (5 of 5, below), "
       "`burst_fraction` (5 of 5, below), `z_p01` (4 of 5, above), "
       "`unexplained_dense_per_event` (4 of 5, below)",
      "0.964 [0.939, 0.985]",
      "0.971 [0.954, 0.985]"),
     ("gain x3",
      "5",
      "`points_per_event` (5 of 5, below), `outside_z_fraction` (5 of 5, below), "
       "`burst_fraction` (5 of 5, below), `z_p01` (4 of 5, above), "
       "`charge_median` (1 of 5, above), `band_tracks_per_event` (1 of 5, above)",
      "0.957 [0.927, 0.980]",
      "0.969 [0.949, 0.985]"),
     ("threshold 60",
      "5",
      "`points_per_event` (5 of 5, below), `z_p01` (5 of 5, above), "
       "`outside_z_fraction` (5 of 5, below), `unexplained_dense_per_event` (5 of 5, below), "
       "`burst_fraction` (5 of 5, below)",
      "0.968 [0.946, 0.988]",
      "0.977 [0.961, 0.990]"),
     ("400 noise hits",
      "5",
      "`outside_z_fraction` (5 of 5, below)",
      "0.980 [0.962, 0.996]",
      "0.979 [0.964, 0.992]"),
     ("one point per pad",
      "5",
      "`points_per_event` (5 of 5, below), `burst_fraction` (5 of 5, below), "
       "`z_p01` (4 of 5, above), `outside_z_fraction` (3 of 5, below), "
       "`unexplained_dense_per_event` (1 of 5, below)",
      "0.947 [0.921, 0.973]",
      "0.965 [0.945, 0.982]"),
     ("tilt 6.5 deg",
      "5",
      "`charge_median` (5 of 5, above), `saturated_fraction` (5 of 5, above), "
       "`outside_z_fraction` (5 of 5, below), `burst_fraction` (5 of 5, below), "
       "`rules_fraction` (4 of 5, below), `z_p99` (1 of 5, below), "
       "`unexplained_dense_per_event` (1 of 5, below)",
      "0.961 [0.935, 0.983]",
      "0.967 [0.948, 0.983]"),
     ("nominal, a pytpc copy",
      "5",
      "`points_per_event` (5 of 5, below), `outside_z_fraction` (5 of 5, below), "
       "`burst_fraction` (5 of 5, below), `z_p01` (3 of 5, above)",
      "0.957 [0.930, 0.981]",
      "0.975 [0.960, 0.990]"),
     ("nominal, a pytpc copy read in the simulation's frame",
      "5",
      "`points_per_event` (5 of 5, below), `outside_z_fraction` (5 of 5, below), "
       "`beam_backward` (5 of 5, above), `burst_fraction` (5 of 5, below), "
       "`z_p99` (4 of 5, below)",
      "0.957 [0.930, 0.981]",
      "0.975 [0.960, 0.990]"),
     ("randomised (three chip shapes)",
      "10",
      "none",
      "0.906 [0.878, 0.931]",
      "0.918 [0.898, 0.935]"),
     ("stand-in",
      "20",
      "none",
      "0.945 [0.931, 0.959]",
      "0.951 [0.939, 0.961]"),
     ("stand-in, chips fire as the real map wires them",
      "10",
      "`spark_fraction` (5 of 10, above)",
      "0.866 [0.831, 0.897]",
      "0.901 [0.880, 0.920]"),
     ("stand-in, previous simulation",
      "20",
      "none",
      "0.843 [0.819, 0.865]",
      "0.774 [0.751, 0.796]"),
     ("stand-in without chip fires, one file of 1,000 events",
      "1",
      "none",
      "0.945 [0.923, 0.965]",
      "0.950 [0.933, 0.965]"),
     ("the same with chips fired as the real map wires them",
      "1",
      "`spark_fraction` (1 of 1, above)",
      "0.890 [0.857, 0.917]",
      "0.906 [0.885, 0.927]")],
)  # fmt: skip
#: the calibrated trees on files whose units are missing or off (scripts/charge_unit.py)
UNIT_ERROR_TABLE = md_table(
    ("test set, unit", "+ the run's charge unit",
     "+ the unit hidden for 10 % of the training runs"),
    [("stand-in, unit missing", "0.62 [0.58, 0.66] / 0.73", "0.91 [0.89, 0.93] / 0.92"),
     ("stand-in, unit x0.5", "0.93 [0.91, 0.94] / 0.94", "0.93 [0.91, 0.94] / 0.94"),
     ("stand-in, unit x2", "0.94 [0.92, 0.95] / 0.94", "0.93 [0.92, 0.95] / 0.94"),
     ("randomised, unit missing", "0.59 [0.52, 0.64] / 0.75", "0.88 [0.85, 0.91] / 0.91"),
     ("randomised, unit x0.5", "0.92 [0.89, 0.95] / 0.92", "0.92 [0.89, 0.94] / 0.92"),
     ("randomised, unit x2", "0.92 [0.90, 0.94] / 0.92", "0.91 [0.88, 0.93] / 0.91"),
     ("nominal, unit missing", "0.76 [0.69, 0.82] / 0.88", "0.87 [0.82, 0.91] / 0.93"),
     ("nominal, unit x0.5", "0.92 [0.88, 0.95] / 0.95", "0.92 [0.88, 0.95] / 0.95"),
     ("nominal, unit x2", "0.93 [0.90, 0.96] / 0.95", "0.93 [0.89, 0.96] / 0.94"),
     ("stand-in, the set's median unit", "0.95 [0.93, 0.96] / 0.95",
      "0.95 [0.93, 0.96] / 0.95"),
     ("randomised, the set's median unit", "0.91 [0.88, 0.93] / 0.92",
      "0.90 [0.87, 0.93] / 0.92"),
     ("nominal, the set's median unit", "0.95 [0.92, 0.98] / 0.97",
      "0.95 [0.92, 0.97] / 0.97"),
     ("stand-in in files of 10 events, pooled unit (the default)",
      "0.93 [0.91, 0.95] / 0.94", "0.93 [0.91, 0.95] / 0.94"),
     ("stand-in in files of 10 events, `calibration_fallback=none`",
      "0.69 [0.65, 0.72] / 0.77", "0.89 [0.87, 0.91] / 0.90"),
     ("randomised in files of 10 events, pooled unit (the default)",
      "0.91 [0.89, 0.94] / 0.92", "0.91 [0.88, 0.93] / 0.92"),
     ("randomised in files of 10 events, `calibration_fallback=none`",
      "0.71 [0.66, 0.76] / 0.81", "0.88 [0.85, 0.91] / 0.90"),
     ("stand-in in files of 10 events, every file in the pooled unit",
      "0.93 [0.92, 0.95] / 0.95", "0.93 [0.92, 0.95] / 0.94"),
     ("randomised in files of 10 events, every file in the pooled unit",
      "0.91 [0.88, 0.93] / 0.92", "0.91 [0.88, 0.93] / 0.92")],
)  # fmt: skip
#: the run's charge unit at the demo's size (scripts/demo_features.py, 2026-12-05)
DEMO_UNIT_TABLE = md_table(
    ("features", "validation: proton F1", "validation: macro-F1",
     "stand-in check: proton F1 / macro-F1"),
    [("`tracks_v3`, `cluster_z_scale` 0.5 (the demo before)", "0.815 (0.797-0.825)",
      "0.856 (0.844-0.865)", "0.823 / 0.863"),
     ("+ the run's charge unit", "0.858 (0.855-0.861)", "0.880 (0.877-0.883)",
      "0.859 / 0.894"),
     ("**+ the unit hidden for 10 % of the training runs (the demo now)**",
      "**0.854** (0.848-0.860)", "**0.877** (0.872-0.879)", "0.855 / 0.890")],
)  # fmt: skip
#: the elastic invariant about the run's line, the track's own vertex and the truth
#: (scripts/vertex_helix.py, 13th session)
VERTEX_HELIX_TABLE = md_table(
    ("helix read", "elastic protons in the band", "residual: median",
     "interquartile range", "10-90 % range", "fusion-evaporation first tracks inside it"),
    [("through the run's beam line (`tracks_v2`-`v6`)", "335", "-0.008", "0.061", "0.166",
      "2.9 % of 173"),
     ("**about the track's own vertex (`tracks_v7`, `v8`)**", "321", "-0.011", "**0.026**",
      "**0.078**", "**0.6 %** of 168"),
     ("about the simulation's true vertex (no run knows it)", "333", "-0.008", "0.020",
      "0.056", "0.6 % of 174")],
)  # fmt: skip
#: tracks_v7 against the recommended tracks_v3 trees, 108,000 events (scripts/paired_f1.py)
VERTEX_HELIX_108K_TABLE = md_table(
    ("events", "`tracks_v3`", "`tracks_v7`", "paired difference, proton F1",
     "paired difference, macro-F1"),
    [("validation split (21,600)", "0.932", "**0.939**", "**+0.007** [+0.004, +0.011]",
      "+0.003 [+0.000, +0.005]"),
     ("randomised, fresh (4,000)", "0.939", "0.935", "-0.003 [-0.010, +0.005]",
      "-0.004 [-0.010, +0.001]"),
     ("randomised (1,000, seed 98)", "0.924", "0.912", "-0.012 [-0.033, +0.008]",
      "-0.007 [-0.022, +0.006]"),
     ("stand-in (2,000, seed 99)", "0.940", "0.946", "+0.006 [-0.005, +0.017]",
      "+0.003 [-0.004, +0.009]"),
     ("stand-in (2,000, seed 100)", "0.931", "0.938", "+0.007 [-0.005, +0.019]",
      "+0.006 [-0.001, +0.013]"),
     ("stand-in (seed 99), drift x0.9", "0.944", "0.948", "+0.004 [-0.006, +0.014]",
      "-0.002 [-0.010, +0.005]"),
     ("stand-in (seed 99), drift x1.2", "0.937", "0.940", "+0.003 [-0.011, +0.016]",
      "+0.002 [-0.006, +0.009]"),
     ("stand-in (seed 99), z + 60 mm", "0.940", "0.950", "+0.010 [-0.001, +0.021]",
      "+0.007 [-0.000, +0.014]"),
     ("stand-in (seed 99), z - 60 mm", "0.942", "0.948", "+0.006 [-0.006, +0.018]",
      "+0.006 [-0.001, +0.013]")],
)  # fmt: skip
#: pairs of product clusters, one reaction against two (scripts/pileup_pairs.py, 14th session)
PILEUP_PAIRS_TABLE = md_table(
    ("difference of the two clusters", "one reaction (964 pairs): quartiles",
     "two reactions (710 pairs): quartiles", "ROC AUC for two reactions"),
    [("own-vertex z gap [mm] (where both have a z)", "9 / 342 / 530", "119 / 272 / 473",
      "0.551"),
     ("inner-end z gap [mm]", "132 / 306 / 477", "121 / 271 / 456", "0.486"),
     ("centre distance / larger radius", "0.06 / 0.13 / 1.46", "0.90 / 1.25 / 1.57", "0.736"),
     ("abs. log of the radius ratio", "0.08 / 0.17 / 0.72", "0.31 / 0.72 / 1.27", "0.709"),
     ("circle overlap / smaller circle (Spyral's join)", "0 / 0.99 / 1", "0 / 0.13 / 0.64",
      "0.323"),
     ("turns apart: vertex gap from a whole number of turns (2 pi R cot)", "0.006 / 0.019 / 0.050",
      "0.13 / 0.25 / 0.37", "**0.900**")],
)  # fmt: skip
#: ... and the share of each kind of pair a join on the circle overlap would merge
PILEUP_JOIN_TABLE = md_table(
    ("pairs", "joined at overlap > 0.25 (Spyral now)", "> 0.5 (Spyral before)", "> 0.75",
     "> 0.25 and whole turns apart (within 0.15 turn)"),
    [("one reaction: pieces of one particle (659)", "96 %", "96 %", "96 %", "92 %"),
     ("one reaction: ejectile and residual (305)", "3 %", "3 %", "2 %", "0 %"),
     ("two reactions (710)", "42 %", "29 %", "22 %", "**9 %**")],
)  # fmt: skip
#: the recipe without and with cluster_join: helix_turns at 108,000 events (15th session)
CLUSTER_JOIN_TABLE = md_table(
    ("events", "proton F1: recipe -> with the join", "paired difference [95 %]",
     "macro-F1 difference [95 %]"),
    [("validation split (21,600)", "0.935 -> 0.931", "**-0.005** [-0.009, -0.001]",
      "-0.004 [-0.006, -0.001]"),
     ("randomised, fresh (4,000)", "0.936 -> 0.930", "-0.005 [-0.014, +0.003]",
      "-0.004 [-0.010, +0.002]"),
     ("randomised (1,000, seed 98)", "0.936 -> 0.926", "-0.010 [-0.031, +0.011]",
      "-0.007 [-0.022, +0.007]"),
     ("stand-in (2,000, seed 99)", "0.952 -> 0.939", "-0.013 [-0.025, -0.001]",
      "-0.010 [-0.018, -0.001]"),
     ("stand-in (2,000, seed 100)", "0.938 -> 0.941", "+0.003 [-0.010, +0.015]",
      "+0.011 [+0.002, +0.020]")],
)  # fmt: skip
#: the recipe on tracks_v7 against tracks_v9 (+ the join's numbers as pair columns), 108,000
#: events (16th session, scripts/paired_f1.py)
OWN_PAIR_TABLE = md_table(
    ("events", "proton F1: `tracks_v7` -> `tracks_v9`", "paired difference [95 %]",
     "macro-F1 difference [95 %]"),
    [("validation split (21,600)", "0.935 -> 0.937", "+0.001 [-0.001, +0.004]",
      "+0.001 [-0.001, +0.003]"),
     ("randomised, fresh (4,000)", "0.936 -> 0.940", "+0.004 [-0.002, +0.011]",
      "+0.004 [-0.001, +0.008]"),
     ("randomised, fresh (8,000, seed 96)", "0.931 -> 0.935", "+0.004 [-0.001, +0.009]",
      "+0.004 [+0.001, +0.008]"),
     ("randomised (1,000, seed 98)", "0.936 -> 0.938", "+0.002 [-0.010, +0.013]",
      "-0.001 [-0.010, +0.008]"),
     ("stand-in (2,000, seed 99)", "0.952 -> 0.948", "-0.004 [-0.011, +0.003]",
      "-0.004 [-0.009, +0.002]"),
     ("stand-in (2,000, seed 100)", "0.938 -> 0.939", "+0.001 [-0.008, +0.010]",
      "+0.000 [-0.006, +0.006]")],
)  # fmt: skip
#: tracks_v8 against tracks_v6 for the demo's trees (scripts/demo_features.py, 13th session)
VERTEX_HELIX_DEMO_TABLE = md_table(
    ("the demo's trees on", "validation: proton F1", "validation: macro-F1",
     "stand-in check: proton F1 / macro-F1"),
    [("**`tracks_v6`, the widest light pair (the demo)**",
      "0.872 (0.873 0.871 0.867 0.882 0.868)", "0.882 (0.886 0.882 0.876 0.887 0.877)",
      "0.900 / 0.910"),
     ("`tracks_v8`: + each track's helix about its own vertex",
      "0.873 (0.869 0.875 0.868 0.879 0.871)", "0.884 (0.886 0.883 0.881 0.887 0.883)",
      "0.906 / 0.913")],
)  # fmt: skip
#: tracks_v5 (commit 79a20b8) against the recommended tracks_v3 trees, 72,000 events
WINDOW_INVARIANT_TABLE = md_table(
    ("test set", "`tracks_v3` (recommended)", "`tracks_v5` (+ invariant at the window)",
     "change, proton F1 / macro-F1"),
    [("validation split (14,401 events): proton F1 / macro-F1", "0.926 / 0.9327",
      "0.928 / 0.9349", "+0.002 / +0.002"),
     ("stand-in (2,000)", "0.92 [0.91, 0.94] / 0.93", "0.93 [0.91, 0.95] / 0.93",
      "+0.006 / +0.004"),
     ("randomised (1,000)", "0.93 [0.90, 0.95] / 0.93", "0.91 [0.88, 0.93] / 0.91",
      "-0.017 / -0.017"),
     ("nominal (500)", "0.93 [0.89, 0.96] / 0.95", "0.92 [0.88, 0.96] / 0.95",
      "-0.004 / -0.004"),
     ("nominal, gain x0.3", "0.97 [0.94, 0.99] / 0.97", "0.96 [0.93, 0.98] / 0.96",
      "-0.012 / -0.006"),
     ("nominal, gain x3", "0.92 [0.88, 0.95] / 0.94", "0.91 [0.87, 0.94] / 0.94",
      "-0.012 / +0.000"),
     ("nominal, threshold 60", "0.96 [0.93, 0.98] / 0.97", "0.96 [0.93, 0.98] / 0.97",
      "+0.004 / +0.006"),
     ("nominal, 400 noise hits", "0.95 [0.92, 0.98] / 0.96", "0.95 [0.92, 0.97] / 0.96",
      "-0.004 / -0.002"),
     ("nominal, one point per pad", "0.92 [0.87, 0.95] / 0.95", "0.92 [0.88, 0.95] / 0.95",
      "+0.008 / +0.007"),
     ("nominal, tilt 6.5 deg", "0.97 [0.95, 0.99] / 0.97", "0.96 [0.94, 0.99] / 0.97",
      "-0.008 / -0.006"),
     ("stand-in, previous simulation", "0.83 [0.81, 0.86] / 0.76", "0.83 [0.81, 0.86] / 0.76",
      "-0.001 / +0.000")],
)  # fmt: skip
#: scripts/error_budget.py on the recommended trees' validation split (72,000 events)
BUDGET_CHANNEL_TABLE = md_table(
    ("channel", "validation events", "called wrong"),
    [("alpha_43cl", "1658", "proton 55, carbon 8"), ("c12_elastic", "1821", "proton 15, other 90"),
     ("fusion_evap", "2002", "proton 75, carbon 18"), ("noise", "3102", "proton 2, carbon 32"),
     ("p_elastic", "3177", "carbon 61, other 140"), ("p_inelastic", "374", "other 30"),
     ("pileup", "2267", "proton 155, carbon 106")],
)  # fmt: skip
BUDGET_FLOOR_TABLE = md_table(
    ("points shown >= 30 mm from the beam line", "elastic protons: events, missed",
     "pile-ups (its weaker reaction): events, called proton"),
    [("0-19", "201, 58 (29 %)", "491, 58 (12 %)"), ("20-39", "431, 56 (13 %)", "684, 45 (7 %)"),
     ("40-79", "820, 38 (5 %)", "661, 29 (4 %)"), (">= 80", "1725, 49 (3 %)", "431, 23 (5 %)")],
)  # fmt: skip
BUDGET_FORWARD_TABLE = md_table(
    ("first track's polar angle (`t1_helix_cot_polar`)", "elastic protons: events, missed",
     "(p,alpha) events: events, called proton"),
    [("backward (cot < 0)", "269, 19 (7 %)", "23, 2"),
     ("63-90 deg (0-0.5)", "492, 52 (11 %)", "5, 2"),
     ("27-63 deg (0.5-2)", "1837, 43 (2 %)", "10, 4"),
     ("14-27 deg (2-4)", "407, 41 (10 %)", "914, 31 (3 %)"),
     ("< 14 deg (>= 4)", "133, 23 (17 %)", "634, 13 (2 %)")],
)  # fmt: skip
BUDGET_ORACLE_TABLE = md_table(
    ("one-stage trees (scikit-learn, 127 leaves) on", "proton F1 (held-out run files)",
     "macro-F1"),
    [("the `tracks_v3` features", "0.9104", "0.9170"),
     ("+ the event's median point charge and t1-t3's charge per mm, raw ADC (the gain "
      "drawn per event, as simulated)", "0.9120", "0.9194"),
     ("+ the same with one gain per run file (x0.3-3), uncalibrated", "0.9171", "0.9203"),
     ("+ one gain per run file, calibrated on the file's own elastic-proton band",
      "0.9192", "0.9235"),
     ("+ the simulated gain divided out (a calibration no run has)", "0.9207", "0.9229")],
)  # fmt: skip
MISS_PIECES_HALF_TABLE = md_table(
    ("clusters of the proton (protons shown >= 80), cluster_z_scale 0.5", "protons"),
    [("0-1", "207"), ("2", "108"), ("3", "51"), (">= 4", "31")],
)  # fmt: skip
SIZE_PILEUP_TABLE = md_table(
    ("points the weaker reaction shows >= 30 mm from the beam line", "pile-up events",
     "called proton or carbon"),
    [("0-19", "39", "13 (33 %)"), ("20-39", "50", "10 (20 %)"), ("40-79", "40", "5 (12 %)"),
     (">= 80", "28", "4 (14 %)")],
)  # fmt: skip

NORM_TABLE = static_table("charge_norm", NORM_COLUMNS, NORM_VALUES)

#: the demo's models at demo scale, measured to choose them (docs/demo.md): 2,000
#: randomised events, validation macro-F1, then proton F1 / macro-F1 per test set
DEMO_COLUMNS = ("nominal", "gain x0.3", "gain x3", "threshold 60", "noise 400",
                "one point per pad", "tilt 6.5 deg", "stand-in (check)")  # fmt: skip
DEMO_VALUES = {
    "CNN, 10 epochs": ("0.588", "0.68 / 0.58", "0.66 / 0.60", "0.71 / 0.63", "0.69 / 0.64",
                       "0.73 / 0.68", "0.69 / 0.63", "0.65 / 0.63", "0.55 / 0.54"),
    "CNN, 20 epochs": ("0.612", "0.72 / 0.63", "0.64 / 0.63", "0.72 / 0.67", "0.72 / 0.71",
                       "0.72 / 0.70", "0.69 / 0.68", "0.72 / 0.67", "0.59 / 0.57"),
    "CNN, 10 epochs, no structured-noise cleaning": (
        "0.603", "0.74 / 0.63", "0.62 / 0.60", "0.71 / 0.66", "0.68 / 0.65", "0.76 / 0.71",
        "0.73 / 0.65", "0.67 / 0.67", "0.58 / 0.52"),
    "ViT (2 blocks, width 96), 10 epochs": (
        "0.483", "0.57 / 0.52", "0.52 / 0.51", "0.46 / 0.49", "0.47 / 0.51", "0.53 / 0.53",
        "0.58 / 0.57", "0.52 / 0.52", "0.41 / 0.41"),
    "trees, gbt.yaml (31 leaves)": ("0.714", "0.77 / 0.77", "0.72 / 0.75", "0.78 / 0.81",
                                    "0.66 / 0.75", "0.77 / 0.85", "0.80 / 0.82", "0.69 / 0.73",
                                    "0.53 / 0.53"),
    "trees, 15 leaves, balanced": ("0.696", "0.80 / 0.77", "0.75 / 0.76", "0.78 / 0.79",
                                   "0.73 / 0.78", "0.82 / 0.86", "0.80 / 0.80", "0.78 / 0.78",
                                   "0.62 / 0.61"),
    "trees, gbt.yaml, no structured-noise cleaning": (
        "0.643", "0.80 / 0.77", "0.64 / 0.71", "0.72 / 0.76", "0.68 / 0.74", "0.74 / 0.80",
        "0.80 / 0.78", "0.62 / 0.65", "0.46 / 0.50"),
}  # fmt: skip
DEMO_TABLE = static_table("model", DEMO_COLUMNS, DEMO_VALUES)
#: the demo trees' features (and track trees stopped early) at the demo's size
#: (scripts/demo_features.py --pool
#: training_size/sim/c --check standin=training_size/sim/standin, 2026-12-04; the
#: tracks_v3 rows rerun with both reactions of a pile-up named alike and light_columns,
#: 2026-12-05)
DEMO_FEATURES_TABLE = md_table(
    ("features", "validation: proton F1", "validation: macro-F1",
     "stand-in check: proton F1 / macro-F1"),
    [("`tracks_v2` (the demo before)", "0.783 (0.776-0.791)", "0.810 (0.803-0.817)",
      "0.801 / 0.793"),
     ("`tracks_v2`, `cluster_z_scale` 0.5", "0.799 (0.788-0.810)", "0.819 (0.807-0.841)",
      "0.809 / 0.809"),
     ("`tracks_v3` (named tracks)", "0.796 (0.787-0.804)", "0.848 (0.836-0.858)",
      "0.808 / 0.847"),
     ("**`tracks_v3`, `cluster_z_scale` 0.5 (the demo now)**", "**0.819** (0.808-0.829)",
      "**0.857** (0.851-0.867)", "0.821 / 0.854"),
     ("the same, track trees stopped early (`model.track_early_stopping=true`)",
      "0.814 (0.797-0.833)", "0.854 (0.847-0.862)", "0.815 / 0.853")],
)  # fmt: skip


def robust_norm() -> str:
    """The robust recipe's ``charge_norm`` (as configs/prep/robust.yaml sets it)."""
    for line in (REPO / ROBUST_PREP[1]).read_text().splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["charge_norm:"]:
            return f"charge_norm: {words[1]}"
    return "charge_norm: none"


def robust_per_run() -> bool:
    """Whether the robust recipe normalises charge per run (then every test set is
    preprocessed once per training set, with that set's quantiles as the reference)."""
    return robust_norm() == "charge_norm: quantile"


def preprocess(out: Path, src: Path | list[Path], name: str, prep: str,
               reference: Path | None = None) -> Path:  # fmt: skip
    """Image file of ``src``; with ``reference`` (a training image file) and per-run
    charge normalisation, mapped onto that file's charge quantiles."""
    ref = reference if prep == "robust" and robust_per_run() else None
    sub = f"{prep}/{ref.stem}" if ref is not None and ref.stem != name else prep
    h5 = out / "data" / sub / f"{name}.h5"
    h5.parent.mkdir(parents=True, exist_ok=True)
    srcs = src if isinstance(src, list) else [src]
    extra = ["--reference", ref] if ref is not None and ref.stem != name else []
    sh(["preprocess", *srcs, "--out", h5, *PREPS[prep], *extra, "--workers", "2", "--quiet"],
       h5)  # fmt: skip
    return h5


def evaluate(run: Path, data: Path, tag: str) -> dict:
    ev = run / "eval" / tag
    sh(["evaluate", run, "--data", data, "--out", ev, "--n-boot", "1000", "--quiet"],
       ev / "metrics.json")  # fmt: skip
    return json.loads((ev / "metrics.json").read_text())


def evaluate_many(run: Path, datas: dict[str, Path], sims: dict[str, Path] | None) -> dict:
    """`evaluate` of ``run`` on every image file of ``datas`` (test -> file) in one call: the
    model and torch load once instead of once per file. Metrics per test; each file's
    results in ``RUN/eval/<file stem>/`` as a call per file would write them."""
    files = list(datas.values())
    extra = ["--sim", *(sims[t] for t in datas)] if sims is not None else []
    sh(["evaluate", run, "--data", *files, "--out", run / "eval", "--n-boot", "1000",
        "--quiet", *extra], run / "eval" / files[-1].stem / "metrics.json")  # fmt: skip
    return {t: json.loads((run / "eval" / f.stem / "metrics.json").read_text())
            for t, f in datas.items()}  # fmt: skip


def rounds_kept(run: Path, rounds: int = 3) -> str:
    """``k of N rounds kept`` (and whether the guard undid the next) from ``adapt.json``."""
    report = json.loads((run / "adapt.json").read_text())
    kept = sum(not r["undone"] for r in report["rounds"])
    guard = ", the collapse guard undid the next" if report["stopped_by_guard"] else ""
    return f"{kept} of {rounds} rounds kept{guard}"


def cell(est: dict) -> str:
    lo, hi = est["ci95"]
    return f"{est['value']:.3f} [{lo:.3f}, {hi:.3f}]"


#: (model, test) -> the image file it was scored on
DATA: dict[tuple[str, str], Path] = {}
#: (model, test) -> (proton F1, macro-F1), for the "where it fails" summary
VALUES: dict[tuple[str, str], tuple[float, float]] = {}


def row(label: str, test: str, m: dict) -> str:
    t = m["tasks"]
    VALUES[(label, test)] = (
        t["binary"]["per_class"]["proton"]["f1"]["value"],
        t.get("multiclass", t["binary"])["macro_f1"]["value"],
    )
    b = t["binary"]
    mf = t.get("multiclass", b)["macro_f1"]
    per = t.get("multiclass", b)["per_class"]
    f1s = ", ".join(f"{k} {v['f1']['value']:.2f}" for k, v in per.items())
    cal = m.get("calibration", {}).get("proton", {}).get("ece")
    ece = "" if cal is None else f"{cal:.3f}"
    return (f"| {label} | {test} | {cell(b['per_class']['proton']['f1'])} | {cell(mf)} | "
            f"{cell(b['roc_auc'])} | {f1s} | {ece} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="sim2real_out")
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--doc", default="docs/sim-to-real.md")
    args = ap.parse_args()
    s = SCALES[args.scale]
    out = (REPO / args.out).resolve()
    t0 = time.time()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    out.mkdir(parents=True, exist_ok=True)
    STEP_FILE.append(out / "steps_s.json")
    if STEP_FILE[0].exists():
        STEP_SECONDS.update(json.loads(STEP_FILE[0].read_text()))
    if host_file(STEP_FILE[0]).exists():
        STEP_HOSTS.update(json.loads(host_file(STEP_FILE[0]).read_text()))

    # -- data (seeds and run numbers fixed: every run file has a unique (run, event)) --
    nominal = simulate(out, "nominal", "e15503b_nominal", s["nominal"], 0, 0)
    randomized = [simulate(out, "randomized", "e15503b_randomized", min(s["train"], 2000), 0,
                           1000)]  # fmt: skip
    for k in range(1, (s["train"] - 2000) // 1000 + 1):  # more of it: sets of other seeds
        randomized.append(simulate(out, f"randomized_{k}", "e15503b_randomized", 1000, k,
                                   1010 + 10 * k))  # fmt: skip
    standin = simulate(out, "standin", "e15503b_standin", s["standin"], 100, 500)
    knobs = {k: simulate(out, f"knob_{k}", "e15503b_nominal", s["knob"], 200 + i, 2000 + 50 * i,
                         v) for i, (k, v) in enumerate(KNOBS.items())}  # fmt: skip
    nominal_test = simulate(out, "nominal_test", "e15503b_nominal", s["test"], 300, 3000)
    randomized_test = simulate(out, "randomized_test", "e15503b_randomized", s["rtest"], 301,
                               3100)  # fmt: skip
    tests = {"nominal (in-simulation)": nominal_test,
             "randomised (in-simulation)": randomized_test, "stand-in": standin,
             **{f"nominal, {k}": d for k, d in knobs.items()}}  # fmt: skip

    # -- models ------------------------------------------------------------------------
    runs = {}
    for label, sim, prep in (("nominal, plain images (old demo recipe)", nominal, "plain"),
                             ("nominal, robust inputs", nominal, "robust"),
                             ("randomised, robust inputs", randomized, "robust")):  # fmt: skip
        sims = sim if isinstance(sim, list) else [sim]
        # a training set of several simulations is named by its size (runs of another
        # scale in the same directory stay apart)
        name = sims[0].name if len(sims) == 1 else f"{sims[0].name}{s['train']}"
        data = preprocess(out, sims, name, prep)
        run = out / "runs" / f"{name}_{prep}"
        epochs = s["epochs"] if sim is randomized else s["nominal_epochs"]
        sh(["train", *MODEL, "--data", data, "--out", run, *OVERRIDES,
            f"optim.epochs={epochs}"], run / "model.json")  # fmt: skip
        runs[label] = (run, prep, data)
    # the recommended trees (README) on the same randomised events, features preprocessing
    tree_data = preprocess(out, randomized, f"randomized{s['train']}", "features")
    trees = out / "runs" / f"randomized{s['train']}_trees"
    sh(["train", *TREES, "--data", tree_data, "--out", trees, *TREE_OVERRIDES],
       trees / "model.json")  # fmt: skip
    runs[TREES_LABEL] = (trees, "features", tree_data)

    lines = ["| model | test set | proton F1 (binary) | macro-F1 (3-class) | proton ROC AUC | "
             "F1 per class | ECE p(proton) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    channel_lines: dict[str, list[str]] = {CNN_LABEL: [], TREES_LABEL: []}
    for label, (run, prep, train_data) in runs.items():
        datas = {test: preprocess(out, sim, sim.name, prep, train_data)
                 for test, sim in tests.items()}  # fmt: skip
        # errors per simulated channel for the randomised models
        per_channel = label in channel_lines
        scored = evaluate_many(run, datas, tests if per_channel else None)
        for test, m in scored.items():
            DATA[(label, test)] = datas[test]
            lines.append(row(label, test, m))
            if per_channel:
                channel_lines[label].append(channel_row(label, test, m))

    # -- adaptation on the stand-in: no labels (AdaBN, self-training), then labels ------
    base, _, base_data = runs[CNN_LABEL]
    st_data = preprocess(out, standin, standin.name, "robust", base_data)
    adapted = out / "runs" / f"{base.name}_adabn"
    sh(["adapt", base, "--data", st_data, "--out", adapted], adapted / "model.json")
    ada_lines = [row("randomised, robust + AdaBN on the stand-in (no labels)", "stand-in",
                     evaluate(adapted, st_data, standin.name))]  # fmt: skip
    selftrain = out / "runs" / f"{base.name}_selftrain"
    sh(["adapt", base, "--data", st_data, "--out", selftrain, "--rounds", "3"],
       selftrain / "model.json")  # fmt: skip
    ada_lines.append(row(f"randomised, robust + AdaBN + self-training ({rounds_kept(selftrain)}"
                         "; no labels)", "stand-in",
                         evaluate(selftrain, st_data, standin.name)))  # fmt: skip
    for i, n_labels in enumerate(s["labels"]):
        # hand-labelled events of the target: another stand-in seed, other run numbers
        pool = simulate(out, f"standin_labels{n_labels}", "e15503b_standin", n_labels,
                        101 + i, 700 + 20 * i)  # fmt: skip
        pool_data = preprocess(out, pool, pool.name, "robust", base_data)
        ft = out / "runs" / f"{base.name}_ft{n_labels}"
        sh(["train", *MODEL, "--data", pool_data, "--out", ft, *OVERRIDES,
            f"model.init=run:{adapted}", "optim.epochs=8", "optim.lr=5e-4"],
           ft / "model.json")  # fmt: skip
        ada_lines.append(row(f"randomised, robust + AdaBN + fine-tune on {n_labels} stand-in "
                             "labels (80 % train / 20 % validation)", "stand-in",
                             evaluate(ft, st_data, standin.name)))  # fmt: skip
    # the trees: no BatchNorm; refitted with confident target events, then with labels
    tree_st = preprocess(out, standin, standin.name, "features")
    tree_self = out / "runs" / f"{trees.name}_selftrain"
    sh(["adapt", trees, "--data", tree_st, "--out", tree_self, "--rounds", "3"],
       tree_self / "model.json")  # fmt: skip
    ada_lines.append(row(f"trees + self-training refits ({rounds_kept(tree_self)}; no labels)",
                         "stand-in", evaluate(tree_self, tree_st, standin.name)))  # fmt: skip
    tree_pools = []
    for n_labels in s["labels"]:
        pool = out / "sim" / f"standin_labels{n_labels}"  # simulated above
        pool_data = preprocess(out, pool, pool.name, "features")
        tree_pools.append(pool_data)
        ft = out / "runs" / f"{trees.name}_ft{n_labels}"
        sh(["train", *TREES, "--data", pool_data, "--out", ft, *TREE_OVERRIDES,
            f"model.init=run:{trees}", "model.target_share=0.5"], ft / "model.json")  # fmt: skip
        ada_lines.append(row(f"trees refitted with {n_labels} stand-in labels (80 % train, "
                             "weighted as the simulation / 20 % early stopping)", "stand-in",
                             evaluate(ft, tree_st, standin.name)))  # fmt: skip

    # -- the labels used other ways (outside the application; scikit-learn directly) -----
    sys.path.insert(0, str(REPO / "scripts"))
    import tree_adapt_variants

    COMMANDS.append(f"python scripts/tree_adapt_variants.py {tree_data} {tree_st} "
                    + " ".join(map(str, tree_pools)))  # fmt: skip
    variant_lines = [tree_adapt_variants.HEADER,
                     *tree_adapt_variants.measure(str(tree_data), str(tree_st),
                                                  [str(p) for p in tree_pools])]  # fmt: skip

    # -- how far adaptation can go: the same trees trained on the target itself ----------
    # as many labelled stand-in events as simulated training events (another seed, other
    # runs): what the trees reach when the training data are the target's own
    own = simulate(out, f"standin_train{s['train']}", "e15503b_standin", s["train"], 110, 800)
    own_data = preprocess(out, own, own.name, "features")
    own_trees = out / "runs" / f"standin{s['train']}_trees"
    sh(["train", *TREES, "--data", own_data, "--out", own_trees, *TREE_OVERRIDES],
       own_trees / "model.json")  # fmt: skip
    own_tests = ("stand-in", "randomised (in-simulation)", "nominal (in-simulation)")
    scored = evaluate_many(own_trees, {t: DATA[(TREES_LABEL, t)] for t in own_tests}, None)
    own_label = f"reference: the trees trained on {s['train']:,} labelled stand-in events"
    ceiling_lines = lines[:2] + [row(own_label, t, m) for t, m in scored.items()]

    # -- the run's class mix without labels: predicted fractions against EM -------------
    import prior_shift

    prior_lines, mixes = [prior_shift.HEADER], []
    for label in (TREES_LABEL, CNN_LABEL):
        run = runs[label][0]
        tests_used = ("stand-in", "randomised (in-simulation)", "nominal (in-simulation)")
        COMMANDS.append(f"python scripts/prior_shift.py {run} "
                        + " ".join(str(DATA[(label, t)]) for t in tests_used))  # fmt: skip
        for t in tests_used:
            mixes.append(prior_shift.measure(str(run), str(DATA[(label, t)])))
            prior_lines.append(prior_shift.row(label, t, mixes[-1]))
    prior_lines += ["", mix_verdict(mixes)]

    # -- what the trees' first track really is (per-point truth) ------------------------
    import track_truth

    truth_tests = ("randomised (in-simulation)", "nominal (in-simulation)", "stand-in",
                   "nominal, tilt_6.5deg")  # fmt: skip
    COMMANDS.append(f"python scripts/track_truth.py {trees} " + " ".join(
        f"{tests[t]} {DATA[(TREES_LABEL, t)]}" for t in truth_tests))  # fmt: skip
    truth_lines, shares = [track_truth.HEADER], {}
    for t in truth_tests:
        found = track_truth.measure(str(trees), str(tests[t]), str(DATA[(TREES_LABEL, t)]))
        truth_lines += track_truth.rows(t, found)
        shares[t] = {c: track_truth.not_light(found, c) for c in ("right", "wrong")}
    truth_lines += ["", "Events of both channels whose t1 is not the light product: " + "; ".join(
        f"{t} {v['wrong'][0]} of {v['wrong'][1]} wrong calls, {v['right'][0]} of "
        f"{v['right'][1]} right ones" for t, v in shares.items()) + "."]  # fmt: skip

    # -- the same events stored in other frames (the trees) -------------------------------
    import frames

    frame_sets = (nominal_test, standin)
    COMMANDS.append(f"python scripts/frames.py {trees} "
                    + " ".join(map(str, frame_sets)) + f" --out {out / 'frames'} "
                    + " ".join(f"--set {kv}" for kv in RECIPE_SETS))  # fmt: skip
    frame_lines = [frames.HEADER, *(row for d in frame_sets for row in frames.measure(
        str(trees), str(d), str(out / "frames"), str(REPO / FEATURE_PREP[1]),
        sets=RECIPE_SETS))]  # fmt: skip
    FRAMES_RAN.extend(frames.RAN)

    # -- noise cleaning against the simulator's per-point truth (no model) --------------
    from denoise_quality import HEADER, measure

    COMMANDS.append("python scripts/denoise_quality.py " + " ".join(
        str(d) for d in (randomized_test, standin, knobs["noise_400"])))  # fmt: skip
    clean_lines = [HEADER, *(ln for d in (randomized_test, standin, knobs["noise_400"])
                             for ln in measure(str(d)))]  # fmt: skip

    # -- figures -----------------------------------------------------------------------
    img = REPO / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for src, name in ((base / "eval" / standin.name / "reliability.png",
                       "sim2real_reliability_standin.png"),
                      (base / "eval" / standin.name / "confusion_multiclass.png",
                       "sim2real_confusion_standin.png"),
                      (trees / "eval" / standin.name / "reliability.png",
                       "sim2real_reliability_standin_trees.png")):  # fmt: skip
        if src.exists():
            shutil.copyfile(src, img / name)

    minutes = (time.time() - t0) / 60
    # wall time of every step's last run, summed over the invocations that ran them (a
    # partly cached call adds its own minutes to the earlier total), for a later re-render
    wall = out / "wall_min.txt"
    before = float(wall.read_text()) if wall.exists() else 0.0
    if RAN or FRAMES_RAN:
        total = minutes + (before if len(RAN) < len(STEPS) else 0.0)
        wall.write_text(f"{total:.0f}\n")
    earlier = wall.read_text().strip() if wall.exists() else None
    write_doc(REPO / args.doc, args, s, lines, ada_lines, minutes, channel_lines, clean_lines,
              earlier, prior_lines, truth_lines, frame_lines, variant_lines,
              ceiling_lines)  # fmt: skip
    print(f"wrote {args.doc} ({minutes:.0f} min)")
    return 0


#: channel columns of the per-channel table, in the simulator's order
CHANNELS = ("p_elastic", "p_inelastic", "c12_elastic", "noise", "alpha_43cl", "alpha_54ti",
            "fusion_evap", "pileup")  # fmt: skip
#: (model, test set) -> channel -> (3-class errors, events, called as)
CHANNEL_ERRORS: dict[tuple[str, str], dict[str, tuple[int, int, dict]]] = {}


def channel_row(model: str, test: str, m: dict) -> str:
    """3-class errors per simulated channel: wrong / events (what they were called as)."""
    rows = m.get("by_channel", {}).get("multiclass", {})
    CHANNEL_ERRORS[(model, test)] = {c: (r["wrong"], r["n"], r["called"])
                                     for c, r in rows.items()}  # fmt: skip
    cells = []
    for c in CHANNELS:
        r = rows.get(c)
        if r is None:
            cells.append("-")
            continue
        called = ", ".join(f"{k[0]} {v}" for k, v in r["called"].items() if v)
        cells.append(f"{r['wrong']}/{r['n']}" + (f" ({called})" if called else ""))
    return f"| {test} | " + " | ".join(cells) + " |"


def channel_table(rows: list[str]) -> str:
    return "\n".join([f"| test set | {' | '.join(CHANNELS)} |",
                      f"|---|{'---|' * len(CHANNELS)}", *rows])  # fmt: skip


def ambiguity(model: str) -> str:
    """What share of ``model``'s in-simulation errors sits in channels whose events hold a
    track of another class by construction (pile-up of two elastic reactions,
    fusion-evaporation with evaporated protons)."""
    out = []
    for test in ("randomised (in-simulation)", "nominal (in-simulation)"):
        rows = CHANNEL_ERRORS.get((model, test))
        if not rows:
            continue
        total = sum(w for w, _, _ in rows.values())
        amb = {c: rows[c] for c in ("pileup", "fusion_evap") if c in rows}
        wrong = sum(w for w, _, _ in amb.values())
        parts = ", ".join(f"{c} {w}/{n} wrong" for c, (w, n, _) in amb.items())
        out.append(f"- {test}: {wrong} of the {total} errors ({wrong / max(total, 1):.0%}) are "
                   f"in pile-up and fusion-evaporation ({parts}).")  # fmt: skip
    return "\n".join(out)


def zero_shot_met(proton_f1: float, macro_f1: float) -> bool:
    """Issue 12's zero-shot target on one test set: proton F1 >= 0.90, macro-F1 >= 0.85."""
    return proton_f1 >= 0.90 and macro_f1 >= 0.85


def _zero_shot(model: str) -> list[str]:
    """Sentences on ``model``'s zero-shot and in-simulation values against the targets."""
    zero = {t: v for (m, t), v in VALUES.items() if m == model}
    missed = [f"{t} ({pf:.2f} / {mf:.2f})" for t, (pf, mf) in zero.items()
              if not zero_shot_met(pf, mf)]  # fmt: skip
    met = [t for t, (pf, mf) in zero.items() if zero_shot_met(pf, mf)]
    out = [f"- {model}, zero-shot target (proton F1 >= 0.90 and macro-F1 >= 0.85): met on "
           f"{len(zero) - len(missed)} of {len(zero)} test sets"
           + (f" ({', '.join(met)})" if met else "")
           + f"; missed on {', '.join(missed) or 'none'} (proton F1 / macro-F1)."]  # fmt: skip
    ins = [f"{t} {zero[t][0]:.2f}" for t in ("nominal (in-simulation)",
                                            "randomised (in-simulation)") if t in zero]  # fmt: skip
    if ins:
        out.append(f"- {model}, in-simulation proton F1 {', '.join(ins)} (target >= 0.98).")
    return out


def mix_verdict(mixes: list[dict]) -> str:
    """Which mix estimate lands nearer the truth, and what the EM correction does."""
    off = {k: max(np.abs(m[k] - m["true"]).max() for m in mixes) for k in ("argmax", "em")}
    closer = sum(np.abs(m["argmax"] - m["true"]).max() <= np.abs(m["em"] - m["true"]).max()
                 for m in mixes)  # fmt: skip
    lower = sum(m["after"][0] < m["before"][0] for m in mixes)
    lowest = (min(m["em"].min() for m in mixes), min(m["true"].min() for m in mixes))
    better = "argmax calls land" if closer * 2 > len(mixes) else "EM estimate lands"
    return (
        f"Measured: the {better} nearer the true mix in "
        f"{max(closer, len(mixes) - closer)} of {len(mixes)} rows (largest error of one "
        f"class fraction: argmax {off['argmax']:.2f}, EM {off['em']:.2f}); the EM "
        f"correction lowers the proton F1 in {lower} of {len(mixes)} rows; the smallest "
        f"class fraction EM estimates is {lowest[0]:.2f} (the smallest true one "
        f"{lowest[1]:.2f})."
    )


#: the recommended trees at the README's 180,000 events, measured outside this script
#: (docs/robustness.md, "Where it stands"; docs/recommended-model.md has the commands)
RECIPE_180K = (
    "zero-shot 0.957 and 0.946 proton F1 on two stand-in samples, 0.948 after a refit "
    "with 1,000 of the second one's labels, 0.943 on the trees' validation split and 0.945 on "
    "4,000 fresh randomised events"
)


def in_short(s: dict) -> str:
    """The page in a few lines: this config's recipe trees against issue 12's targets."""
    zero = {t: v for (m, t), v in VALUES.items() if m == TREES_LABEL}
    if "stand-in" not in zero:
        return "(no tree results in this run)"
    knobs = [pf for t, (pf, _) in zero.items() if t.startswith("nominal, ")]
    met = sum(zero_shot_met(pf, mf) for pf, mf in zero.values())
    adapted = {
        m: v[0] for (m, t), v in VALUES.items() if t == "stand-in" and m.startswith("trees ")
    }
    best = max(adapted.items(), key=lambda kv: kv[1]) if adapted else None
    insim = min((pf for t, (pf, _) in zero.items() if "(in-simulation)" in t), default=0.0)
    cnn = VALUES.get((CNN_LABEL, "stand-in"))

    def verdict(value: float, target: float) -> str:
        return "is met" if value >= target else "is not met"

    parts = [
        f"- **The recommended trees at this config's size** ({s['train']:,} randomised "
        f"events; the README trains them on 108,000): proton F1 {zero['stand-in'][0]:.2f} "
        "zero-shot on the stand-in"
        + (f", {zero['randomised (in-simulation)'][0]:.2f} on fresh randomised events"
           if "randomised (in-simulation)" in zero else "")
        + (f", {min(knobs):.2f}-{max(knobs):.2f} on the nominal simulation with one setting "
           "at an extreme" if knobs else "")
        + (f"; adapted to the stand-in, at best {best[1]:.2f} ({best[0].split(' (')[0]})"
           if best else "")
        + (f". The demo-size CNN on the robust images: {cnn[0]:.2f} on the stand-in."
           if cnn else "."),
        f"- **At the README's 180,000 events**: {RECIPE_180K}.",
        f"- **Issue 12's targets**: zero-shot proton F1 >= 0.90 with macro-F1 >= 0.85 is met "
        f"here on {met} of {len(zero)} test sets, and at 108,000 events on both stand-in "
        f"samples; >= 0.95 after adaptation {verdict(best[1] if best else 0.0, 0.95)} here "
        f"and not at 108,000 events; >= 0.98 in simulation {verdict(insim, 0.98)} here "
        "and not at 108,000 events. At 108,000 "
        "events 290 of the 656 proton errors on the validation split are events whose "
        "reaction shows fewer than 40 points outside the beam's core (this label's floor caps "
        "the proton F1 near 0.97); of the rest, 191 are fusion-evaporation events and "
        "pile-ups called proton (\"Where the recommended trees lose proton F1\"; "
        "docs/robustness.md).",
        "- **Reading on**: this script measures \"Zero-shot\", \"Errors per simulated "
        "channel\", \"After adaptation on the stand-in\" (with the labels used other "
        "ways and the trees trained on the stand-in), \"Where it still fails\", \"Choosing "
        "the proton cut on a run with an unknown class mix\", and one table each in \"A run "
        "read in another frame\", \"Noise cleaning\" and \"What the trees' first track "
        "is\"; the rest of the page gives, for each part of the recipe, the measurement "
        "that chose it (measured outside this config, each with its command and date); the "
        "last section lists every command.",
    ]  # fmt: skip
    return "\n".join(parts)


def failures(train: int) -> str:
    """Plain sentences from the measured values against the issue's targets (``train``:
    the randomised training events of this config)."""
    out = [*_zero_shot(TREES_LABEL), *_zero_shot(CNN_LABEL)]
    out.append(
        "- Both models are far from the in-simulation target even on data like their "
        "training data, so every shift-specific number above is bounded by that. Most "
        'in-simulation errors sit in pile-up and fusion-evaporation ("Errors per simulated '
        'channel"), whose labels hinge on a second vertex or an evaporation topology (docs/'
        "simulation.md, label ambiguity); the trees also trail where their training set is "
        f"small ({train:,} events here against the recommended 180,000, README)."
    )
    adapted = {m: v for (m, t), v in VALUES.items()
               if t == "stand-in" and ("+" in m or m.startswith("trees "))}  # fmt: skip
    if adapted:
        top = max(adapted.items(), key=lambda kv: kv[1][0])
        out.append(
            f"- After adaptation the best stand-in proton F1 is {top[1][0]:.2f} "
            f"({top[0]}); target >= 0.95 {'met' if top[1][0] >= 0.95 else 'not met'}."
        )
    own = [(m, v) for (m, t), v in VALUES.items() if t == "stand-in" and m.startswith("reference")]
    if own and adapted:
        (m, (pf, mf)), best = own[0], max(v[0] for v in adapted.values())
        zs = VALUES[(TREES_LABEL, "stand-in")][0]
        out.append(
            f"- {m[len('reference: '):].capitalize()} reach {pf:.2f} proton F1 / {mf:.2f} "
            f"macro-F1 on the stand-in test: the best adaptation ({best:.2f}) closes "
            f"{(best - zs) / max(pf - zs, 1e-9):.0%} "
            "of the gap to it; "
            + ("and even trained on the target's own labels the trees stay below the "
               "adapted target (0.95): reaching it takes a better model or better features "
               "(or more events), not only adaptation." if pf < 0.95 else
               "the adapted target (0.95) is within the trees' reach on the target's own "
               "data.")
        )  # fmt: skip
    plain = {t: v for (m, t), v in VALUES.items() if m.startswith("nominal, plain")}
    zero = {t: v for (m, t), v in VALUES.items() if m == CNN_LABEL}
    worse = [f"{t} ({plain[t][0]:.2f} -> {pf:.2f})" for t, (pf, _) in zero.items()
             if t in plain and pf < plain[t][0]]  # fmt: skip
    if worse:
        out.append("- The robust CNN recipe's price: lower proton F1 than the old recipe where "
                   f"the old one held: {', '.join(worse)} (old -> robust).")  # fmt: skip
    # each adaptation against what it started from
    for base, picks in (
        ("randomised, robust + AdaBN on the stand-in (no labels)",
         lambda m: "self-training" in m or "fine-tune" in m),
        (TREES_LABEL, lambda m: m.startswith("trees ")),
    ):  # fmt: skip
        ref = VALUES.get((base, "stand-in"))
        for (m, t), (pf, _) in VALUES.items():
            if ref is not None and t == "stand-in" and picks(m) and pf <= ref[0]:
                out.append(f"- {m}: proton F1 {pf:.2f}, no better than {base} ({ref[0]:.2f}).")
    dead = [t for t, (pf, _) in plain.items() if pf < 0.05]
    if dead:
        out.append(
            f"- The old recipe calls (almost) no event proton on: {', '.join(dead)} -- "
            "the failure that motivated issue 12; the robust inputs remove that collapse."
        )
    return "\n".join(out)


def step_minutes(minutes: float) -> str | None:
    """The config's cost from each step's recorded wall time (`STEP_SECONDS`, kept over
    invocations) plus this invocation's own measurements; None if a step was not timed."""
    steps = list(dict.fromkeys(STEPS))
    if any(c not in STEP_SECONDS for c in steps):
        return None
    total = sum(STEP_SECONDS[c] for c in steps) / 60
    sims = sum(STEP_SECONDS[c] for c in steps if c.startswith("attpc-classify simulate")) / 60
    fits = sum(STEP_SECONDS[c] for c in steps
               if c.startswith(("attpc-classify train", "attpc-classify adapt"))) / 60  # fmt: skip
    # the part of this invocation outside the CLI steps: the scripts it calls in-process;
    # kept from the invocation that ran steps (a re-render reuses the frames' files)
    own = max(minutes - sum(STEP_SECONDS[c] for c in set(RAN)) / 60, 0.0)
    # only an invocation that made the frames' copies afresh measured all of it (a partial
    # rerun reuses them and would record a fraction)
    if FRAMES_RAN or OWN not in STEP_SECONDS:
        STEP_SECONDS[OWN] = round(own * 60, 1)
        STEP_HOSTS[OWN] = describe_cpu()
        save_step_seconds()
    own = STEP_SECONDS[OWN] / 60
    over = ""
    if total + own > 60:  # the issue's budget for the CPU config
        events = sum(int(c.split("--events ")[1].split()[0]) for c in steps
                     if c.startswith("attpc-classify simulate"))  # fmt: skip
        over = (f"; **over the 60 min asked for**: simulating its {events:,} events alone "
                f"takes {sims:.0f} min ({events / (sims * 60):.0f} events/s)")  # fmt: skip
    return (
        f"{total + own:.0f} min of wall time on the shared 2-core machine ({hosts_of(steps)}): "
        f"CLI steps "
        f"{total:.0f} min (simulation {sims:.0f}, training and adaptation {fits:.0f}; "
        f"each step's seconds in `steps_s.json` of the --out directory), the script's own "
        f"measurements {own:.0f} min{over}"
    )


def hosts_of(steps: list[str]) -> str:
    """Which processor the timed steps ran on: one host, or the count of steps per host."""
    hosts = [STEP_HOSTS.get(c, "host not recorded") for c in [*steps, OWN]]
    kinds = list(dict.fromkeys(hosts))
    if len(kinds) == 1:
        return kinds[0]
    return "; ".join(f"{hosts.count(k)} steps on {k}" for k in kinds)


def write_doc(path: Path, args, s: dict, lines: list[str], ada: list[str], minutes: float,
              channels: dict[str, list[str]], cleaning: list[str],
              earlier: str | None, prior: list[str], truth: list[str],
              frame: list[str], variants: list[str], ceiling: list[str]):  # fmt: skip
    scale = {"cpu": "the CPU config",
             "medium": "the **medium** config, not the 60-minute CPU one; the simulations, "
                       "plain images and plain-image model of the reduced config were copied "
                       "into this directory and reused (same commands)",
             "reduced": "the **reduced** config, not the 60-minute CPU one",
             }[args.scale]  # fmt: skip
    labels = " and ".join(map(str, s["labels"]))
    out_dir = str((REPO / args.out).resolve())  # shown as OUT in the commands
    machine = "of wall time on the shared 2-core machine"
    timed = step_minutes(minutes)
    if timed:
        took = timed
    elif RAN and len(RAN) == len(STEPS):
        took = f"{minutes:.0f} min {machine}"
    elif RAN:
        took = (
            f"{earlier} min {machine} over the invocations that ran its steps; the last "
            f"one ran {len(RAN)} of the {len(STEPS)} steps in {minutes:.0f} min"
        )
    else:
        took = ("every step reused from earlier invocations"
                + (f" that took {earlier} min {machine}" if earlier else ""))  # fmt: skip
    text = f"""# Sim -> real: classifiers on detectors they were not trained on

Generated by `.venv/bin/python scripts/sim_to_real.py --out {args.out} --scale {args.scale}`
({scale}: {s["nominal"]:,} nominal and {s["train"]:,} randomised training events,
{s["standin"]:,} stand-in test events, {s["knob"]:,} events per knob, {s["test"]:,} nominal
and {s["rtest"]:,} randomised in-simulation test events, {s["nominal_epochs"]} epochs
(nominal models) and {s["epochs"]} epochs (randomised model) of the demo-size CNN
(`cnn_small` at width 16), the recommended trees on the same randomised events,
adaptation with {labels} labels, the same trees on {s["train"]:,} labelled stand-in
events for reference; {took}). Do not edit the tables by hand: rerun the
script.

## In short

{in_short(s)}

## What is compared

- **Models**: the 3-class small CNN trained on the nominal simulation with plain images
  (the demo before issue 12), on the nominal simulation with robust inputs
  (`configs/prep/robust.yaml`: DBSCAN noise cleaning, 30 mm beam-axis mask, charge
  normalisation `{robust_norm()}`, summed charge + occupancy channels), and on the
  domain-randomised simulation (`e15503b_randomized`) with robust inputs (the demo's
  recipe now). With per-run normalisation every test set is preprocessed with
  `--reference` the model's training file, so its charge quantiles land on those.
  Beside them the README's recommended model, gradient-boosted trees on physics features
  (`configs/prep/features.yaml` with {" ".join(f"`{kv}`" for kv in RECIPE_SETS)},
  `gbt.yaml` with {" ".join(TREE_OVERRIDES)}), trained on the same {s["train"]:,}
  randomised events (the README trains it on 180,000: docs/recommended-model.md).
- **Tests, zero-shot**: the held-out nominal and randomised simulations (other seeds and
  run numbers), the stand-in (`e15503b_standin`: other GET gain and shaping, one point
  per pad, heavy structured noise, dead chips, E-B tilt, other class mix), and the
  nominal simulation with one knob at a time at an extreme (the `--set` overrides in
  `KNOBS` of the script). No setting was chosen on any of these sets.
- **Adaptation on the stand-in**: for the CNN `adapt` (AdaBN, no labels), `adapt --rounds
  3` (AdaBN then up to three rounds of confident pseudo-label self-training with the
  collapse guard), then fine-tunes from the AdaBN run with {labels} labelled stand-in
  events of another seed; for the trees (no BatchNorm) `adapt --rounds 3` (each round
  refits them on their simulated events plus the confident stand-in events, same guard)
  and `train ... model.init=run:TREES` with the same labelled events (refitted on the
  simulated events plus the labelled ones, both sides weighted equally,
  `model.target_share=0.5`; the application's default is 0.25 since 2026-12-07;
  `attpc_classify/trees_adapt.py`). All scored on the same stand-in test events.

Point estimate [bootstrap 95 % interval, 1,000 resamples, seed 0]. Proton F1 is that of
the binary reading of the 3-class model (proton exactly when its 3-class call is proton);
ECE = expected calibration error of p(proton), 15 bins.

## Zero-shot

{chr(10).join(lines)}

## Charge normalisation: per event or per run

Since 2026-12-05 a run's quantiles are taken on the points the structured-noise rules
leave, where those rules are on (`quantiles_after_rules`; "Events with a spark"). The
image models in this document measured with `structured_noise=rules` were measured
before that; rerun, they move (at the demo's size by at most 0.02, docs/demo.md).

Measured before this run, to choose the recipe (on in-simulation validation and the knob
extremes; the stand-in is reported, not chosen on). The 2,000 randomised events of the
reduced config, `preprocess ... --config configs/prep/robust.yaml --set charge_norm=event`
(each event's median point charge set to 100 ADC) or `charge_norm=quantile` (the run's
point-charge quantiles at 1, 5, 10, ..., 95, 99 % mapped onto the training set's, from a
seeded sample of 2,000 of the run's events; test sets made with `--reference` the
training file), `train --config configs/train/cnn_small.yaml model.width=16
optim.batch_size=32 optim.patience=0 optim.epochs=20` (seed 0), `evaluate --n-boot 100`;
nominal test: `simulate --config e15503b_nominal --events 500 --seed 300 --first-run
3000`, the other sets as in the tables below. Proton F1 / macro-F1:

{NORM_TABLE}

Per run beats per event on the validation split, both in-simulation sets and every knob
in macro-F1 (one seed; 95 % intervals +-0.04-0.10 at these sizes): the per-event median
removes the absolute dE/dx that tells an alpha or a carbon from a proton, the per-run map
keeps it while removing the run's gain. The recipe now uses `charge_norm: quantile`.

## What the stand-in gap is made of

Measured outside this script (2026-12-02; "-" = not run): the stand-in (`simulate
--config e15503b_standin --events 400 --seed 99 --first-run 500`) with one group of its
settings put back to nominal (`--set` overrides), preprocessed and scored as the demo's
models are. Proton F1 (binary reading of 3-class models); with 99 protons the intervals
are about +-0.08.

{ABLATION_TABLE}

Before the fix the beam was the gap: beam ions outside the 30 mm cylinder about the
detector axis (stand-in median 26 per event, 42 % of events with >= 40; training median
0, 14 %), which the models read as tracks. That led to a simulation fix
(docs/simulation.md, "Geometry": the beam pads drop charge after the shear, so the
sheared beam shows) and to `beam_axis: run` (below). "Before": the previous stop's demo
models (2,000 events, simulated before the fix); "after": 3,000 randomised events of the
fixed simulation with the run's beam line (the models of the table in the next
section). After both, the beam optics are still the largest single setting (+0.09): ions
2 deg off the line leave the 30 mm cylinder about it. Tried against that and not kept:
RANSAC beam lines on top of the run's line (`beam_line: ransac`, trees validation
macro-F1 0.595 against 0.678, stand-in 0.65 against 0.67), and a feature rule that
counts straight clusters within 6 deg of z and 80 mm of the line as beam (validation
0.656 against 0.678; stand-in 0.70 / 0.66 against 0.67 / 0.70, 3-class / binary: no
consistent gain; the code was not kept). A wider mask about the line (`beam_mask_mm=45`)
gives the small CNN the same validation macro-F1 (0.737 against 0.734) and lower proton
F1 on nominal, nominal with tilt and the stand-in (0.64 / 0.65 / 0.59 against 0.70 /
0.67 / 0.61), so the mask stays at 30 mm.

## Labels that say what shows, and helix features (`tracks_v2`)

Measured outside this script (2026-12-02, second stop) with `.venv/bin/python
scripts/label_shortcuts.py --out label_shortcuts` (~35 min on 2 cores). Per simulated
channel the trees' largest errors were noise events called carbon (42 of 110 randomised
noise events) and carbon events called other. Both came from the simulation's labels,
not from the detector: (1) a noise event had no beam ion of its own, so a visible beam
meant "a reaction"; (2) a reaction counted as seen with 10 points anywhere off the beam
pads, while the beam's charge fills the 30 mm about its line for every reader (and our
features' and images' core): 11 of 50 carbon events of a nominal test set showed no
track beyond it and looked like noise events under another label. The simulation now
gives every noise event its triggering ion (`beam_axis.trigger_ion`) and redraws a
reaction until its light products show 10 points >= 30 mm from the reacting ion's line
(`min_signal_radius_mm`; docs/simulation.md, "Two label shortcuts removed"). Beside it,
the features gained a helix reading of each track (`tracks_v2`, `data_prep.features`: the
circle through the beam axis on the pad plane, cot theta on the first half turn, the
elastic invariant R / (sin theta cos theta) that is one number per target for elastic
recoils, and vertex-z differences between tracks for pile-up).

The trees of the recipe then recommended (9,000 randomised events, seed 1, 15 leaves,
balanced)
trained on each version and scored on every version's sets: 2,000 stand-in events (seed
99, runs 5000+; bootstrap 95 % interval of the proton F1, 1,000 resamples), 500
randomised (seed 98), 500 nominal (seed 97), 500 nominal with a 6.2° tilt (seed 96).
"previous" = `--set beam_axis.trigger_ion=false --set min_signal_radius_mm=0` (the clouds
of the simulation before this change, byte for byte). Proton F1 (binary reading of the
3-class call) / 3-class macro-F1:

{LABELS_TABLE}

What it says. The beam ion in noise events removes a shortcut: trees trained without it
lose 0.08 macro-F1 on a stand-in that has it (0.71 -> 0.63); with it in training they
lose 0.04 (0.70 -> 0.66; the task is harder) and score 0.71 where the others score 0.66
on the current stand-in. Labels that say what shows lift the validation macro-F1 from
0.68-0.70 to 0.83-0.84 and every test set made the same way: on the current stand-in the
current trees reach 0.85 [0.83, 0.87] proton F1 and 0.85 macro-F1 (the issue's macro-F1
target; its 0.90 proton F1 is not met). Part of that jump is the task, not the model:
the events whose reaction hides in the beam's core are no longer in the current sets. On
the previous stand-in, which keeps them, the current trees score 0.77 / 0.71 against the
previous trees' 0.76 / 0.71, so nothing is lost on the old definition either; no model
here finds a hidden reaction (nor can a reader, who also labels the real runs). The
helix features add little on the previous simulations (-0.03 to +0.03) and 0.02-0.05
proton F1 on every test set of the current one (stand-in 0.83 -> 0.85, randomised 0.80
-> 0.84, nominal 0.79 -> 0.84), so the recipe reads `tracks_v2`. The image models (the
CNN below) see the same events without the features; their numbers in the tables above
are on the current simulation.

## More simulated events and larger trees (the recommended model)

Measured outside this script (2026-12-02, third stop) with `.venv/bin/python
scripts/training_size.py --out training_size --cnn` (~70 min on 2 cores, most of it the
simulation), entirely through the application as docs/recommended-model.md runs it:
`simulate --config e15503b_randomized` in three parts (9,000 events seed 1, 27,000 seed
2, 36,000 seed 3), so the training sets are 9,000, 36,000 and 72,000 events; `preprocess
--config configs/prep/features.yaml`; `train --config configs/train/gbt.yaml
optim.balance=weights model.learning_rate=0.1 model.max_leaf_nodes=L` (early stopping on
its 20 % validation split); `evaluate --n-boot 1000` on the test sets of the section
above (stand-in seed 99, randomised seed 98, nominal seed 97). The number of leaves is
chosen on the validation macro-F1 at the largest size, never on a test set. Proton F1
[95 % interval] (binary reading of the 3-class call) / 3-class macro-F1:

{SIZE_TABLE}

What it says. The trees were starved of events: each step up in training events lifts
the validation macro-F1 (0.85 -> 0.89 -> 0.91) and every test set but nominal, and with
36,000 or more events larger trees help (63-127 leaves against 15: +0.01 on validation),
where with 9,000 they do not. The validation picks 127 leaves at 72,000 events, by 0.001
over 63, a tie. That model reaches on the stand-in proton F1 0.91 [0.89, 0.93] and
macro-F1 0.90, the issue's zero-shot figures, on this stand-in; the stand-in is a
setting of our own simulator, so this is not yet the held-out real-like check. On data
made like its training data it stays at 0.88 (randomised) and 0.88 (nominal), far from
the issue's 0.98. On sets made other ways (the same script: the nominal simulation with
one detector setting at an extreme, 500 events each, seeds 301-306, the `KNOBS` of
scripts/sim_to_real.py; and the stand-in of the simulation before its label fixes, whose
reactions may hide in the beam's core and whose noise events have no beam ion), the
first recipe against the chosen one:

{SIZE_OTHER_TABLE}

The larger model gains or holds on every set (0.90-0.94 proton F1 on the knob extremes).
On the stand-in made with the previous simulation it reaches 0.82 / 0.73: there a share
of the labels cannot be read from the event at all (docs/simulation.md, "Two label
shortcuts removed"). The image CNN is not limited by events in the same way (`--cnn`:
the demo-size CNN on the same image files): four times the events lift its validation
macro-F1 and its in-simulation sets, but its stand-in proton F1 stays at 0.74, far below
the trees':

{SIZE_CNN_TABLE}

Nor is resolution the missing piece. The network that met the nominal targets
(docs/nominal-results.md: `cnn128.yaml`, 128 x 128 images of all three views,
0.994 proton F1 on the nominal simulation) trained on the robust inputs at that
resolution (`configs/prep/robust128.yaml`: the cleaning and beam mask of
`configs/prep/features.yaml`, per-run charge quantiles, summed charge + occupancy) of the
first 9,000 randomised events (`scripts/training_size.py --out TS --cnn128`, measured
2026-12-04 on the AVX-512 host: 65 s per epoch in bf16, 14 min in all) gains 0.01-0.10
over the demo-size CNN but stays 0.05-0.12 below the trees trained on the same events
(this section's first table, 9,000 events, 15 leaves: validation 0.851, proton F1 0.87 /
0.83 / 0.89):

{SIZE_CNN128_TABLE}

(Measured when a run's charge quantiles were taken before the structured-noise rules.
`robust128.yaml` turns the rules on, so a rerun now takes them after
(`quantiles_after_rules`, "Events with a spark"); at the demo's size that moved the
networks' scores by at most 0.02, docs/demo.md.)
Its validation macro-F1 was still rising near the end (0.70 at epoch 6, 0.77 at 11 of 12),
so more epochs and events would lift it; at ~110 training events/s on these 2 cores the
72,000 events of the trees would take ~9 min per epoch, a GPU's job (this task has none).

The trees' errors on the randomised test set (1,000 events), per simulated
channel:

{SIZE_CHANNEL_TABLE}

Pile-up is the largest, and its errors follow how much of the second reaction shows
(light and heavy products >= 30 mm from the run's beam line, from the simulation's point
labels):

{SIZE_PILEUP_TABLE}

A pile-up event whose weaker reaction leaves fewer than 20 points outside the beam's
core is called proton or carbon a third of the time: to a reader such an event is one
reaction and a stub. The simulation counts a reaction as seen from 10 points of its
light products (`min_signal_points`, `min_signal_radius_mm`), so part of the
in-simulation ceiling is the definition of the label, not the model. Tried on the same
events in an exploration outside the application (scikit-learn's trees on the cached
features, 3-fold validation; the code was not kept): joining the DBSCAN pieces of one
helix into one track (steep tracks come out as several clusters on one circle through
the axis) and counting the tracks that start at the beam axis with the z spread of their
inner ends, for pile-up: validation macro-F1 0.855 against 0.870 at 36,000 events, so
not kept; a binary model in place of the binary reading of the 3-class one: stand-in
proton F1 0.896 against 0.890, randomised 0.868 against 0.881, no gain. Adapting the
trees to the stand-in (same exploration, 36,000 training events, 63 leaves; scored on
1,000 stand-in events, the other 1,000 a pool): trees have no BatchNorm for AdaBN;
self-training on the stand-in's confident pseudo-labels (p > 0.9, no label) moves proton
F1 from 0.882 to 0.894, and adding 250 / 1,000 labelled stand-in events to the simulated
ones (weight 30) to 0.903 / 0.908: small gains, within the intervals. Both routes are
now in the application (`adapt --rounds N` and `train ... model.init=run:TREES` refit
the trees, `attpc_classify/trees_adapt.py`) and measured by this script ("After
adaptation on the stand-in").

### Which protons the trees miss

Measured 2026-12-04 with `scripts/proton_misses.py` on the calls of the recommended
named-track trees (72,000 events; `classify TS/runs/v3_72000_127 TS/data/v3/NAME.h5`)
on the randomised (seed 98) and stand-in (seed 99) test sets of the section above, added
together: 740 protons, 47 missed (called carbon or other). By the simulation's truth for
each proton: how many times it goes round its circle on the pad plane, how many of its
points show outside the beam's 30 mm core, and, for the clearly seen ones (>= 80 points
shown), into how many clusters the features' DBSCAN cuts it (clusters of >= 10 points,
mostly the proton's; on the run files' points before the structured-noise rules) and how
many beam-ion points lie outside the core in the same event:

{MISS_TURNS_TABLE}

{MISS_SHOWN_TABLE}

{MISS_PIECES_TABLE}

{MISS_BEAM_TABLE}

Two causes. 11 of the 47 misses are protons that show fewer than 20 points outside the
core (a third of such protons are missed): the label's floor, as for pile-up. And 13
of the 17 clearly seen misses are protons cut into four or more clusters, missed 21 % of
the time against 1-2 % for one to three. 37 of those 61 go round their circle once or
more (misses 15-18 % at one turn or more against 1-7 % below): a helix that starts on the
beam axis comes back to it every turn and the core cuts it there (why the others break
into four: "Clustering that keeps a steep track whole" below). Each piece reads as a
track of its own, with its own
helix vertex, as in pile-up. A beam ion outside the core adds to it (25 % missed with
three or more clusters and >= 20 beam-ion points, 5 % with none; two dozen events per
cell), not on its own (1 of 26 with fewer clusters).

Tried for the turns, in the application (commit f387b23, reverted in 2988682): a feature
set `tracks_v4` = `tracks_v2` plus whether the largest tracks are pieces of one helix
(the rms of one circle through the axis fitted to t1 + t2 and to t1 + t3, their z gaps,
and a count of helices joining clusters within 10 mm rms; on the 9,000-event part the
t1 + t2 rms has median 4.5 mm for elastic protons and 12.1 mm for pile-up). Commands, at
that commit, with TS the `--out` of `scripts/training_size.py`:

```bash
attpc-classify preprocess TS/sim/a TS/sim/b TS/sim/c --out V4/train_72000.h5 \\
    --config configs/prep/features.yaml --set features=tracks_v4 --workers 2  # and TS/sim/NAME
attpc-classify train --config configs/train/gbt.yaml --data V4/train_72000.h5 --out V4/run_S \\
    optim.balance=weights model.learning_rate=0.1 model.max_leaf_nodes=127 seed=S   # S = 0, 1
attpc-classify evaluate V4/run_S --data V4/NAME.h5 --out V4/run_S/eval/NAME
```

against the `tracks_v2` trees of the same settings (seed 0: TS/runs/72000_127; seed 1 the
same command on TS/data/train_72000.h5). Validation proton F1 from the runs' own
validation splits (`scripts/validation_scores.py RUN TRAIN_FILE --seed S`: `classify` on
the training file, scored on the split of `attpc_classify.data.stratified_split`).
Proton F1 / macro-F1, mean over the two seeds:

{JOIN_TABLE}

On the validation splits (14,401 simulated events each, the criterion) the two tie to
the third decimal in macro-F1 and in proton F1 (+0.0006 and +0.0003); on the test sets
proton F1 moves by -0.01 to +0.02 (randomised +0.019, inside its interval of about
+-0.03), the six knob extremes by nothing on average. So `tracks_v4` was not kept: the
trees seem to read from the per-track helix radii and vertex differences of `tracks_v2`
what the joined fit says. One circle through the axis may also be too strict a join for
these protons: they slow down from turn to turn, so each turn's circle is smaller (on the
three-turn proton of run 5102, event 261, the joint fits' rms was 20 and 14 mm, over the
10 mm cut). A model that reads all the pieces together rather than the five largest
clusters, a network on the point cloud, is the next thing to try; at 72,000 events it
needs a GPU (the 128 x 128 CNN above already takes ~9 min per epoch on these 2 cores).

### Clustering that keeps a steep track whole (`cluster_z_scale`)

Why do protons of less than a turn break into four clusters too (24 of the 61)? Drawn
by cluster (run 5000 event 70, run 5001 event 193 and two more of the stand-in, one point
per pad as pytpc's `peaks_only` makes them), they are single arcs from the axis cut into
consecutive pieces with no gap on the pad plane: where the points of neighbouring pads
lie farther apart in z than the features' DBSCAN reach (20 mm in 3-D, 4 points), a
stretch has no core points and cuts the track. The prep option
`cluster_z_scale` (new; 1 = the 3-D distance every table above used when they were
measured, and the default)
weighs z in that distance; at 0.5 the same protons (`scripts/proton_misses.py ...
--z-scale 0.5`) fall into fewer clusters:

{MISS_PIECES_HALF_TABLE}

The recommended `tracks_v2` trees trained with it (measured 2026-12-04, AVX-512 host;
TS the `--out` of `scripts/training_size.py`, Z a new folder; the 0.5 was not tuned,
one value tried):

```bash
attpc-classify preprocess TS/sim/a TS/sim/b TS/sim/c --out Z/train_72000.h5 \
    --config configs/prep/features.yaml --set cluster_z_scale=0.5 --workers 2   # and TS/sim/NAME
attpc-classify train --config configs/train/gbt.yaml --data Z/train_72000.h5 --out Z/run \
    optim.balance=weights model.learning_rate=0.1 model.max_leaf_nodes=127
attpc-classify evaluate Z/run --data Z/NAME.h5 --out Z/run/eval/NAME --n-boot 200
```

against TS/runs/72000_127, the same command without the option (validation proton F1 as
for `tracks_v4`). Proton F1 [95 % interval] / 3-class macro-F1:

{ZSCALE_TABLE}

Every one of the ten test sets goes up in both numbers (ten of ten: p = 0.002 by a sign
test), each change inside its interval, and the validation split (the criterion) by
+0.014 proton F1 and +0.009 macro-F1, more than two training seeds differ (0.004 and
0.005 above).

The named-track trees (`--set features=tracks_v3`, the same events and settings,
TS/runs/v3_72000_127 against the same commands with both options; training 15 min here):

{ZSCALE_V3_TABLE}

Validation macro-F1 0.923 -> 0.933; proton F1 up or level on all ten test sets (+0.000 to
+0.025), macro-F1 -0.006 to +0.019. Chosen on the validation split,
docs/recommended-model.md now adds `--set cluster_z_scale=0.5`, and so does the demo
(chosen at its own size:
"The demo's models and the recommended model"). `configs/prep/features.yaml` keeps 1, so
that every other number in this document and the README stays the one measured with it.

### Both reactions of a pile-up named alike (the named tracks' truth)

The track trees of `tracks_v3` learn what each track is from the simulator's per-point
truth (`data_prep.tracktruth.cluster_kinds`: the majority of a track's points). Until the
fourth stop of 2026-12-04 that truth read the first reaction's nuclei only. The second
reaction of a pile-up carries its nuclei's indices plus `PILEUP_OFFSET` (10), which
counted for none of the four kinds: its proton's track was named "other", or "noise" as
soon as one noise point lay in it. The two reactions are drawn alike, so which one came
second shows in no track; the track model was asked for a coin toss on every pile-up
proton. On the first 2,000-event training set of `scripts/demo_features.py`, 474 of
4,172 tracks (in 303 of the 2,000 events) change name when the second reaction's nuclei
count as the first's: 218 "other" and 137 "noise" become the light product, 66 and 34
the heavy product, and 19 mixed tracks change majority. Found from the recommended
trees' false protons: on the randomised test set 12 of 157 pile-up events are called
proton, among them run 5104 event 422, two protons whose vertices lie 577 mm apart in z
(p(proton) 0.94).

The track truth now counts both reactions alike (test
`test_both_reactions_of_a_pile_up_are_named_alike`). At the demo's size it helps on every
training set (the demo's settings, `scripts/demo_features.py` rerun; the earlier numbers
measured at commit 59b5825):

{PILEUP_NAMES_DEMO_TABLE}

At 72,000 events it is level. The recommended command (docs/recommended-model.md:
`tracks_v3`, `cluster_z_scale` 0.5, 127 leaves, balanced; on the 72,000-event file and
the ten test files of "Clustering that keeps a steep track whole"), trained with each
truth, `evaluate --n-boot 1000`, validation scores by `scripts/validation_scores.py RUN
TRAIN_FILE --seed 0`:

{PILEUP_NAMES_TABLE}

On validation (the criterion) the two agree within 0.001; on the test sets proton F1
moves by -0.012 to +0.032 (mean +0.004; five up, four down, one level), each change inside
its interval. With the training set large the event trees had learnt pile-up from the
tracks' geometry whatever the names said; with 2,000 events the right names are worth
+0.014 proton F1. Pile-up itself is no better called at 72,000 events: 16 of the 157
pile-up events of the randomised test are called proton (12 before), and run 5104 event
422 still is (p 0.90). Both models are from the same code but for the truth, and the fixed
truth is the one in the application: the demo and a new recommended model use it; the
72,000-event tables above this section were measured before it.

Tried at the same time and not kept: naming the tracks of fusion-evaporation by particle
(every evaporated proton or α a light product, the residue, the last nucleus, the heavy
one; today an evaporated particle is named by its place in the emission order). At the
demo's size it moved validation by +0.001 proton F1 and +0.002 macro-F1 (two of five
sets up) and the stand-in check by -0.002 / +0.001, so the names stay by emission order.

### How many tracks are light products (`light_columns`)

With both reactions of a pile-up named alike, the names can say what the geometry has
to work out otherwise: one light product is the proton class, two are a pile-up (or one
proton cut in two). The event trees read each track's p(light product), but a count is
something trees put together only from several splits. So the named-track trees now add
two columns for the event trees (`models.gbt.light_columns`): how many of the five
tracks have p(light product) > 0.5, and the second-largest p(light product) (0 where
there is no such track). Runs trained before have none (their `light_counts` is
absent, read as false) and load, classify and refit as before (test
`test_a_run_from_before_light_columns_refits_and_classifies`).

At the demo's size (`scripts/demo_features.py` rerun; the demo's settings, named tracks
with `cluster_z_scale` 0.5) validation macro-F1 goes from 0.844 to 0.857, up on each of
the five training sets (+0.006 to +0.019), and proton F1 stays level (0.820 -> 0.819;
two sets down, by 0.004 and 0.009, three up). The gain is in carbon (F1 0.805 -> 0.835
on the 4,000 validation events, mean over the sets): fewer events of "other" called
carbon (94 -> 68 per set), the pile-up of two carbons. The stand-in check agrees: 0.819 / 0.835 ->
0.821 / 0.854.

At 72,000 events (the recommended command, the same files and commands as the section
above) it is level: validation proton F1 0.926 -> 0.926, macro-F1 0.9330 -> 0.9327; on
the ten test sets:

{LIGHT_COLUMNS_TABLE}

Proton F1 moves by -0.009 to +0.018 (mean +0.003, seven up, three down), macro-F1 by
-0.004 to +0.017, each inside its interval. Kept: it costs nothing, helps the small
training sets of the demo and leaves the large one where it was.

### Two light tracks: one particle or two reactions (`tracks_v6`, the demo's trees)

The recommended trees (docs/recommended-model.md, trained again on the current
simulation for "Detector health") call 201 of the 2,267 pile-ups of their validation
split proton (an exploration of their calls and the run files' truth, code not kept).
In 76 of them both reactions show 40 points or more >= 30 mm from the beam line, so the
label's floor does not excuse them. Run 1107, event 10729 is one: two
protons whose helices leave the axis at z = 420 and 696 mm on opposite sides of it, both
named light products, p(proton) 0.99. The vertex gap of the two largest tracks
(`vertex_dz_12_mm`) does not tell two reactions from one proton that the beam core cut
into pieces, each piece with its own fitted vertex. On the training split 1,813 elastic
protons have two or more tracks named light products and that gap over 200 mm, beside
4,072 pile-ups.

What tells them apart is the circle. The pieces of one helix lie on one circle through
the axis; the protons of two reactions lie on two. `tracks_v6` is `tracks_v3` plus, per
pair of the five described tracks (10 pairs), the angle about the beam axis between their
circles' centres and their vertex gap (`data_prep.features.pair_values`). The named-track
trees read the two numbers of the two tracks likeliest to be light products
(`models.gbt.light_pair_columns`; or of another pair: "Which two light tracks" below).
The observation is Spyral's: its ClusterPhase joins
clusters whose fitted circles overlap (`spyral.core.clusterize.join_clusters_overlap`,
attpc-spyral 1.1.2); the pair columns are ours, features for the trees rather than a
join. Measured with `.venv/bin/python scripts/pair_columns.py
RUN TRAIN_FILE` (RUN: those trees; TRAIN_FILE: their 72,000 training events; the
clusters the features describe, read again from the run files with their truth;
2026-12-06). The light pair, for the events with two or more tracks named light products:

{PAIR_SEPARATION_TABLE}

The centre angle separates what the vertex gap does not: half the elastic protons'
light pairs lie within 0.10 rad of one circle, half the pile-ups' more than 1.33 rad
apart, where the vertex gaps (medians 136 and 302 mm) overlap. Yet at 72,000 events it
adds nothing. One-stage trees on the features and the run's track names, validated on a
fifth of the run files held out (two splits; the names are the run's own for every
variant):

{PAIR_PROXY_TABLE}

With this many events the trees find the pairs from the tracks' other columns. The
recommended model stays on `tracks_v3` (the recommended command with `--set
features=tracks_v6`, trained in the 9th session, is level with it: "Which two light
tracks" below).

At the demo's size the pairs help (`scripts/demo_features.py --pool K72/c --check
standin=STANDIN --variants ...`, the two variants of the demo's trees; K72/c: the
36,000-event part of those training events; STANDIN: the stand-in of
`scripts/training_size.py`, 2,000 events, seed 99; 2026-12-06, ~40 min beside other
jobs). Proton F1 / macro-F1, mean over five training sets of 2,000 (per set):

{PAIR_DEMO_TABLE}

Proton F1 rises on each of the five training sets (+0.011 to +0.024) and so does
macro-F1 (+0.006 to +0.015). The stand-in check, not used for the choice, agrees on each
set (0.858 -> 0.882 / 0.891 -> 0.901). So the demo preprocesses with `features:
tracks_v6` since 2026-12-06 (`demo_r`): its 3-class trees score 0.872 [0.812, 0.925]
proton F1 / 0.877 macro-F1 on its own 300 test events, against 0.837 [0.768, 0.893] /
0.859 with `tracks_v3` (`demo_q3`), in 151 s (docs/demo.md). Its preprocessing
stage took 12 s against 11 s (`demo_q2`).

**Which two light tracks** (`model.light_pair`, 9th session of 2026-12-06). The two
likeliest light products are not always the two reactions. A pile-up's proton cut in two
by the beam core gives two likely pieces of one circle, and they can outrank the other
reaction's track: about half of the validation pile-ups the recommended trees call
proton with two or more light tracks have a light pair within 0.25 rad (an exploration
of the 8th session, code not kept). `model.light_pair=widest` reads instead, among the
tracks likelier a light product than not (p > 0.5), the pair whose circles' centres lie
widest apart (`models.gbt.widest_light_pair_columns`; the likeliest pair where fewer
than two are likely, a pair without a circle ranked last); `both` reads the two pairs.
Ours, as the pair columns. At the demo's size (the same command and sets, `--variants`
the three `tracks_v6` ones; ~25 min beside other jobs):

{PAIR_CHOICE_DEMO_TABLE}

The widest pair lifts the validation proton F1 on each of the five training sets (+0.009
to +0.014) and macro-F1 on four (one level); both pairs gain less. The stand-in check,
not used for the choice, agrees (0.882 -> 0.888). So the demo's trees read the widest
pair (`demo_s`): 0.883 [0.824, 0.934] proton F1 / 0.887 macro-F1 on the demo's own test
against 0.872 / 0.877 (`demo_r`), binary trees 0.895 against 0.876, in 148 s; on the
eleven test sets of docs/demo.md the 3-class trees gain or hold on every set. At the
recommended model's size the choice is level, and so are the pairs themselves: the
recommended command (72,000 events, 127 leaves, unit hidden for 10 %) on its training
file preprocessed with `--set features=tracks_v6`, once with each pair, against the
recommended run on `tracks_v3`; validation: the runs' own split (the same events), the
stand-in: seed 99, `evaluate --n-boot 1000` (each training ~10 min, two side by side on
one thread each):

{PAIR_CHOICE_72K_TABLE}

+0.002 to +0.003 on validation, the stand-in check inside its interval each way, and the
pile-ups called proton barely move (201, 204, 194). With 72,000 events the trees read
from the tracks' other columns what the pairs say; the recommended model stays on
`tracks_v3`, and `model.light_pair` keeps `likeliest` as its default (the runs trained
before it read that pair).

### The invariant at the window's beam speed (`tracks_v5`, measured, not kept)

The elastic invariant R / (sin theta cos theta) of `tracks_v2` is one number per target
only for one beam energy, and the beam slows down on its way through the gas: an elastic
recoil's momentum is proportional to the beam's speed at the vertex. In the randomised
simulation the proton's median invariant falls from 2.53 (log10 mm) for vertices in the
first 50 mm to 2.12 in the last 50 mm, and pycatima's energy loss of 46Ar at 4.17 MeV/u
in isobutane at 19.2 Torr (through spyral-utils) gives the same fall from the speed
alone (sqrt(E(z) / E(0)) from 1 to 0.29 over 1 m; 2.538 at the window by hand, from
p_max = 2 m_p v M / (M + m_p) = 174 MeV/c and B = 1.68 T). Within 200 mm of vertex depth
the elastic protons' invariant spreads by 0.05-0.08 (interquartile) in the first 600 mm,
over the whole chamber by 0.2. So `tracks_v5` (commit 79a20b8) added to `tracks_v3` each
named track's invariant divided by the beam's speed at its helix vertex (the event's
largest track's vertex where it has none; a table of the speed every 50 mm, tested
against pycatima), a column the track trees read too. The vertex z itself was left out
on purpose: the classes' vertex-z distributions are the simulation's (channels close at
low energy, cross-sections are not weighted; REAL_DATA.md names that shortcut), where
the fall of the invariant is the beam's physics. Measured with the vertex's own error:
on the training events the corrected invariant of the elastic protons has interquartile
range 2.49-2.59 against 2.30-2.50 uncorrected.

At the demo's size (`scripts/demo_features.py` at that commit, with the variant
`tracks_v5`) validation went from 0.819 / 0.857 to 0.822 / 0.861 (proton F1 / macro-F1;
four of five sets up in each), the stand-in check 0.821 / 0.854 -> 0.821 / 0.859. Adding
the vertex z itself instead, in an earlier run of the same script (code not kept): 0.821
/ 0.859. At 72,000 events (the recommended command with `--set features=tracks_v5`, the
same files and test sets as the sections above; commit 79a20b8):

{WINDOW_INVARIANT_TABLE}

Level: validation +0.002, the test sets -0.017 to +0.008 in proton F1 (mean -0.004,
three up, seven down), each inside its interval, so it was reverted. The trees seem to
know the depth already. In an exploration outside the application (scikit-learn's trees
on the cached features, the same training split; the code was not kept), trees
regressing the true vertex z on the `tracks_v3` features alone put elastic-proton events
within 50 mm of it (median; R^2 0.86), which features carry it was not measured. The
same exploration had promised +0.011 proton F1 to one-stage trees from the corrected
invariant when it used the true vertex z (+- 20 mm); with the measured vertex the same
trees gained nothing (0.9111 -> 0.9112): the truth had carried more than the depth.

### The track's own vertex (`tracks_v7`, in the recipe; `tracks_v8`, measured)

**Why.** The elastic invariant of `tracks_v2` reads each track's circle through the run's
beam line (`beam_axis: run`), as if every reaction happened on it. A beam ion does not
keep to that line: the randomised simulation spreads its spot (1-6 mm) and its angle
(0.2-2.5 deg, 17 mm off at 1 m for 1 deg), and the true vertex lies 9 mm from the fitted
line in the median, 24 mm at the 90th percentile. A circle forced through a point 10 mm
from where a proton starts misreads its radius. Measured against the simulation's truth
(`.venv/bin/python scripts/vertex_helix.py SIM_DIR --files 30`, the first 30 run files
of `simulate --config e15503b_randomized --events 9000 --seed 1`, the recommended
model's first training files, clustered as its features are; 13 s): the first tracks of
elastic protons at 27-63 deg,
log10 invariant minus the elastic line at the beam's true energy at the true vertex, and
the fusion-evaporation first tracks that fall inside the protons' 10-90 % range:

{VERTEX_HELIX_TABLE}

The helix about the run's line spreads the protons three times as wide as the same fit
about the true vertex, and 3 % of the fusion-evaporation tracks in the band fall among
them: the circle fit is not the limit, the point it is forced through is. So
`tracks_v7` adds to `tracks_v3`, per named track, its helix about its own vertex
(`data_prep.features.vertex_helix`): a free circle (Kasa's algebraic fit, then
Gauss-Newton on the distances, `circle_fit`), the vertex its point nearest the beam line
(none where the circle passes farther than the 30 mm core), the helix `_helix` read again
about it: its cot, its invariant, and its invariant over the beam's speed at the vertex's
z (`BEAM_SPEED`, the table of `tracks_v5`, tested against pycatima), which puts elastic
protons of any depth on one line. `tracks_v8` adds the same to `tracks_v6` (the demo's set).
This follows Spyral's estimation phase (`estimate_physics_pass` in
ATTPC/Spyral's `src/spyral/core/estimator.py`: a least-squares circle on the track's first
arc, the vertex re-estimated as the circle's point closest to the beam axis, tracks whose
vertex lies outside the beam region dropped); ours are the fit on the whole cluster (the
first arc of a stub is the stub), the geometric refinement, and the invariant over the
beam's speed. Spyral then solves the equation of motion with energy loss; we stop at the
circle. The features cost more time to compute (`.venv/bin/python
benchmarks/features.py --events 1500 --data RUN_FILES`, the fresh randomised run files,
one thread: `tracks_v3` 599 events/s, `tracks_v7` 417, 1.44x the time); `preprocess` of
the 108,000 events took 424 s against 312 s on 2 workers. (The 108,000-event files below
were made with the circle fit's first version, a least-squares solve per Gauss-Newton
step that stopped at 1e-6 of the radius; the kept one solves the 3 x 3 normal equations
and stops at 0.01 mm. On 1,500 events the new columns agree with the first version's to
2e-4 for 99 % of the values; 0.3 % differ by more than 0.001, at most 0.025.)

**At 108,000 events** (the recommended command with `--set features=tracks_v7`, the same
run files, split and settings as the `tracks_v3` run; the test files preprocessed from
the same run files, the last four from copies of the seed-99 stand-in with its points
placed as another analysis chain would (`scripts/transform_runs.py`, docs/demo.md);
`scripts/paired_f1.py RUN_V3 TRAIN_V3 RUN_V7 TRAIN_V7 --validation
NAME=A.h5,B.h5 ...`, the difference bootstrapped over the same events, 1,000 draws, 2.7
min). Proton F1 of `tracks_v3` -> `tracks_v7`, the paired difference [95 % interval]:

{VERTEX_HELIX_108K_TABLE}

On its validation split the fusion-evaporation events called proton fall from 151 to 111
and the pile-ups called proton from 288 to 257 (`scripts/error_budget.py`), and proton F1
on the events above the label's floor goes from 0.966 to 0.971; on the fresh 4,000 the
calls barely move (fusion events called proton 22 and 22). The knob sets of the nominal
simulation (500 events each) move by -0.011 to +0.012, +0.001 in the mean (gain x0.3
0.976 -> 0.976, gain x3 0.972 -> 0.961, threshold 60 0.976 -> 0.984, 400 noise hits
0.968 -> 0.968, one point per pad 0.959 -> 0.952, tilt 6.5 deg 0.960 -> 0.972, nominal
0.956 -> 0.964), the previous simulation's stand-in 0.852 -> 0.853. Refitted with the
1,000 labelled stand-in events ("After adaptation" below, `model.init=run:`), the
`tracks_v7` trees score 0.941 [0.926, 0.955] on the seed-100 stand-in (`tracks_v3`:
0.934) and 0.936 on the fresh events (0.933); self-trained on the stand-in's own calls
(`adapt --rounds 3`, no labels) 0.938 [0.922, 0.953] (0.930). Chosen on the
in-simulation validation split, as the other features were: +0.007, its interval clear
of zero; the fresh in-simulation sets are level within theirs (-0.003 and -0.012), and
the stand-ins and their copies gain +0.003 to +0.010 (none outside its interval). The
recommended command reads `tracks_v7` since the 13th session.

**At the demo's size** (`scripts/demo_features.py --pool POOL --files 30 --variants "the
same, the widest light pair instead" "the demo's trees on tracks_v8 (+ each track's helix
about its own vertex)" --check standin=STANDIN`; POOL: the run files of `simulate
--config e15503b_randomized --events 36000 --seed 3 --first-run 2000`, STANDIN the seed-99
stand-in; the five `tracks_v6` runs reused from the 12th session, ~20 min for the
`tracks_v8` ones): proton F1 / macro-F1, mean over the five 3,000-event training sets
(per set):

{VERTEX_HELIX_DEMO_TABLE}

Level: +0.000 proton F1 (three sets up, two down) and +0.002 macro-F1. A first run of the
same comparison, with the circle fit stopped after at most 4 Gauss-Newton steps instead
of 10, gave +0.003 / +0.006: at 3,000 events a change that small in the features moves
the means by that much. So the demo stays on `tracks_v6` (its stand-in check, not used
for the choice, 0.900 -> 0.906). At 3,000 events the trees seem to lack the events to
use a sharper invariant that 108,000 events do use.

**Pile-ups: which clusters are one particle** (14th session). Pile-ups are the largest
group of false protons left (257 on the validation split of the 108,000 events, 80 of
them above the label's floor). With each track's own vertex, could the gap between two
tracks' vertices say "two reactions"? Read against the simulation's truth
(`.venv/bin/python scripts/pileup_pairs.py SIM_DIR --files 60`, the same seed-1 training
run files, 6,000 events, ~25 s): in the elastic events and the pile-ups of two, the five
largest clusters as the features see them, each named by its points' truth; every pair
of product clusters that both have a vertex of their own (a vertex depth only where the
track leaves the axis at more than ~14 deg, as `tracks_v7` reads it):

{PILEUP_PAIRS_TABLE}

The vertex gap in mm barely separates them (ROC AUC 0.55), and the inner ends not at
all.
Two thirds of one reaction's pairs are pieces of one particle (659 of 964 on the first
60 files, by the points' truth), mostly a proton's helix that the beam's core cuts each
time it comes back to the axis, each later piece reading a "vertex" of its own a turn
further on (368 of the 650 such pairs with both depths lie more than 100 mm apart); the
rest a 12C recoil beside the scattered 46Ar, whose steep track mostly reads no vertex
depth at all (238 of 305 pairs). The circles say more (AUC 0.71-0.74; for the overlap
0.32, as the larger it is,
the likelier one reaction), but a proton slowing from turn to turn curls on smaller
circles. Spyral's clustering phase joins clusters whose pad-plane circles overlap
(`join_clusters_overlap` in ATTPC/Spyral's `src/spyral/core/clusterize.py`: by more than
a quarter of the smaller circle's area in its current configurations, half before). The
same script counts what such a join would merge here (pair by pair; Spyral also leaves
out clusters under 15 points and circles under 10 mm, and joins in chains):

{PILEUP_JOIN_TABLE}

It would put back together nearly every proton the core has cut (96 % of those pairs)
and keep a 12C recoil apart from the 46Ar, but at Spyral's two thresholds it would also
merge 29-42 % of the pairs that belong to two reactions (22 % at 0.75): the tracks a
pile-up needs kept apart. The vertex gap itself says it, read in turns: each piece of
a helix reads its vertex where its own turn began, so two pieces lie a whole number of
pitches (2 pi R cot, the pair's mean radius and cot) apart, and two reactions anywhere
(ROC AUC 0.90, the best of the six). Joined on both, circles that overlap by a quarter
and vertices within 0.15 turn of a whole number, 92 % of the pieces come together and
9 % of the two-reaction pairs. That join, made before the tracks are named, was built
and measured next (the next paragraph: it does not help the trees; a join on one circle
through the axis, `tracks_v4`, had moved nothing either: "Which protons the trees
miss"); Spyral's solver, which fits a whole trajectory with its energy loss, is the
other way to tell the pieces.

**Joining the pieces of a helix** (`cluster_join: helix_turns`, 15th session). That
join is now the prep option `cluster_join: helix_turns` (`data_prep.features
.join_pieces`), made on the features' clusters before the tracks are named: two
clusters whose free circles overlap by more than a quarter of the smaller one and whose
own vertices lie within 0.15 turn of a whole number of pitches are one track, in chains
(a with b and b with c: one). The joined track's shares, size and shape read all its
points; its helix columns (through the beam line and about its own vertex; in
`tracks_v6` and `v8` the pair columns' circle and vertex too) read its first piece, the
one that reaches lowest in z: a piece's own reading cannot say which
way it climbs (a whole turn reads as well backwards), but the beam runs to +z and the
recoils go forward, and on 140 joined elastic protons of the seed-1 simulation the
lowest piece was the true first one every time (the piece coming nearest in z to the
simulated vertex). The track names the track trees learn read the same joined clusters.
On the first 1,000 events of the seed-1 simulation it changes the track count of 18 %
of the proton events, 8 % of the others and 1 % of the carbon events. The recipe
without and with it, trained on the same 108,000 events (docs/recommended-model.md's
command and seeds, simulated again this session: the recipe reads 0.935 on its
validation split where the 13th session's trees read 0.939; those were trained before
the command added `data.unit_dropout=0.1`, and without it the trees read 0.937 here,
fresh 0.933, stand-ins 0.945 / 0.943), the same split and test events, scored by
`scripts/paired_f1.py`:

{CLUSTER_JOIN_TABLE}

It costs 0.005 proton F1 on the validation split, an interval clear of zero, and no
set's proton F1 gains beyond its interval (the seed-100 stand-in's macro-F1 does, +0.011;
stand-ins never choose): not kept; the option stays off, as `beam_line: ransac` does.
Commands: the recipe's `preprocess` of docs/recommended-model.md with and without `--set
cluster_join=helix_turns` on the training and test run files, its `train` on each, then
`.venv/bin/python scripts/paired_f1.py RUN TRAIN RUN_JOINED TRAIN_JOINED --validation
fresh=F,F_JOINED ...` (3 min) and `scripts/error_budget.py RUN TRAIN A B C D` per run.
Where it goes (`scripts/error_budget.py` on both runs' validation split): pile-ups
called proton 281 -> 303, elastic protons missed 266 -> 288 (73 -> 87 of those showing
80 or more points outside the core), fusion-evaporation events called proton 115 ->
120. Merging 9 % of two reactions' track pairs hides the second reaction of some
pile-ups, and the clearly seen protons whose turns are joined are missed more often
than when each turn was a track of its own.
At 9,000 events (the seed-1 part alone, its own split) the join had read -0.004
[-0.023, +0.014]; reading the joined track's shape on its first piece too (only its
shares and size on all of it) -0.007 [-0.027, +0.013]; and, apart from the join, the
helix read in one known rotation sense (the field's, the same for every positive
particle; in the simulation each piece's own guess reads 8 % of the elastic protons'
first tracks backwards) 0.000 [-0.016, +0.014]. The trees already read through what the
pieces and the sense hide; what the pile-ups called proton need is not in which
clusters belong together.

**The join's numbers as columns** (`tracks_v9`, 16th session). A fixed cut decides
before the trees see anything; the same two numbers as columns let them weigh it.
`--set features=tracks_v9` is `tracks_v8` (`tracks_v7` plus `tracks_v6`'s pair columns)
plus, per pair of the five named tracks, the overlap of their free circles, how far
their own vertices lie from a whole number of turns apart and their own vertices' gap
(`data_prep.features.own_pair_values`, 30 columns; the light pair the event trees read
carries them too). The recipe on it against the recipe on `tracks_v7`, the same 108,000
events and split, and 8,000 more fresh randomised events (`simulate --config
e15503b_randomized --events 8000 --seed 96 --first-run 6100`):

{OWN_PAIR_TABLE}

Every in-simulation set leans the same way, by 0.001-0.004, and none clears its interval
on proton F1, the validation split least (+0.001 [-0.001, +0.004]): the options here are
chosen there, so the recipe stays on `tracks_v7`. At 180,000 events (the recipe's
training set since this session, "180,000 events" in docs/recommended-model.md; the same
split) it is level again: validation +0.0005 [-0.0015, +0.0026] (0.943 both), fresh
-0.001 [-0.007, +0.005] and +0.004 [-0.000, +0.009], stand-ins -0.001 and +0.006 within
their intervals. What the pair columns of `tracks_v6` had shown at 72,000 events (+0.002 to
+0.003, "Which two light tracks") holds for the join's own numbers: the trees read from
the tracks' other columns most of what a pair says. Commands: the recipe's `preprocess`
with `--set features=tracks_v9` on the training and test run files, its `train`, then
`.venv/bin/python scripts/paired_f1.py RUN TRAIN RUN_V9 TRAIN_V9 --validation
fresh=F,F_V9 ...` (the 8,000 fresh events as a first pair of their own, without
`--validation`); the preprocessing of 108,000 events took 19 min beside a simulation.

## A run's charge unit (`charge_calibration: proton_band`, on in the recipe)

**Why.** An alpha of 46Ar(p,alpha)43Cl leaves the vertex at the angle and curvature of
an elastic proton ("Where the recommended trees lose proton F1") but loses about 16 times
its energy per mm. The features kept charge only relative to each event's own median
point charge, because the randomised simulation drew the gain per event: no absolute
dE/dx survived that. A real run has one gain, one threshold and one gas density, and a
physicist calibrates it on a line they know, so `e15503b_randomized` now draws those
three once per run file (`randomize.per_run`, beside the E-B angle), and a run file's
charges can be read in its own unit.

**What.** With `charge_calibration: proton_band` (features `tracks_v2` or `tracks_v3`)
each input file is a run with its own unit: the median charge per mm (ADC/mm) of the
first tracks that lie in the elastic-proton band, polar cot 0.5-2 (27-63 degrees, where
no alpha of (p,alpha) reaches) and log10 elastic invariant 2.3-2.6
(`calibration_cot`, `calibration_log10_invariant`; in the randomised simulation ~95 % of
them protons, elastic, in pile-ups, inelastic or evaporated, and 4 % carbon), measured
on the features of a seeded sample of up to 2,000 of the file's events
(`data_prep.quantiles.charge_units`; `preprocess`, `classify`, `adapt` and `show`
measure it alike, and print it). The features then also
give the event's median point charge and each described track's charge per mm in that
unit (log10; `data_prep.features.run_columns`), and the track trees of the named-track
model read each track's own. A file with fewer than 3 band tracks has no unit of its
own: it takes the unit of the band tracks of all the files preprocessed or classified
with it, pooled (`calibration_fallback: pooled`, the default since the third session of
2026-12-05: short files of one run read in its unit; the table below shows what one
unit for files of other gains costs), and has NaN columns with `calibration_fallback:
none` or when the pool has fewer than 3 too. The band is e15503b's: its invariant runs
from the window's beam energy (R / (sin cos) = 362 mm, log10 2.56, for 46Ar at 4.6 MeV/u in 1.68 T:
`data_prep.features.elastic_invariant_mm`) down to a beam slowed to ~1.4 MeV/u (2.30).
Another beam, energy or field needs its own band, from the same function.
Which parts are ours: all of it; the idea is the calibration an experimenter makes on a
known line (here the elastic protons), not a method from a paper.

**Measured** (`.venv/bin/python scripts/charge_unit.py --out charge_unit`, 2026-12-05, AVX-512 host;
the 72,000 events and test sets of `scripts/training_size.py`, the training events
simulated again with one gain, threshold and gas density per run file; the recommended
trees on the README's preprocessing, with and without the option; nothing chosen on a
test set). Proton F1 [95 % interval] / 3-class macro-F1:

{CHARGE_UNIT_TABLE}

The unit lifts validation proton F1 by 0.020 (0.918 -> 0.938) and macro-F1 by 0.017, and
every test set but gain x0.3 (0.98 -> 0.97, inside the interval) and tilt 6.5 deg
(level): the stand-in 0.92 -> 0.95, randomised 0.91 -> 0.94, nominal 0.93 -> 0.95,
gain x3 0.90 -> 0.96, one point per pad 0.91 -> 0.95. By simulated channel (binary
errors of `evaluate --sim`) the stand-in's alphas go from 4 to 1 of 164 called proton,
its carbon recoils from 7 to 0, fusion-evaporation from 20 to 8, pile-ups from 26 to 21,
missed elastic protons from 17 to 15 (with the unit hidden for a tenth of the training
runs, the recipe: 0, 0, 12, 19 and 16). The one-stage emulation in "Where the recommended
trees lose proton F1" had promised +0.009; the named-track trees, which read the unit per
track, take more. The first row was made on the new simulation: the same recipe on the
previous one (one gain per event) read 0.926 / 0.9327 on its own validation split and
0.92 / 0.93 on the stand-in: the new simulation alone does not make the gain.

**Where it can fail.** A run whose unit is wrong or missing. Evaluated again with each
file's unit halved, doubled or removed, or replaced by the median of the set's units
(copies of the test files, `with_unit_off` in the script), and the stand-in and
randomised run files cut into files of 10 events, preprocessed with and without the
pooled unit for files short of band tracks and with every file in it (`split_runs`,
`with_pooled_unit`; the last nine rows added on
2026-12-05, third session, by the same command, every other number of both tables
reproduced):

{UNIT_ERROR_TABLE}

A unit off by a factor of 2 (the band badly contaminated, or a detector whose protons
read differently from the simulation's relative to its alphas) costs 0.01-0.03 and
leaves the trees at the level of the recipe without the unit. A missing unit (a file
with fewer than 3 band tracks: a short file, or a run without elastic protons at those
angles) was a collapse (stand-in 0.62), because no training run lacked one: the trees
sent NaN wherever most training events went. So the recipe trains with the unit hidden
for a seeded tenth of the training run files (`data.unit_dropout=0.1`): validation level
(0.938 / 0.943 against 0.938 / 0.944), the test sets -0.01 to +0.01, and a run without
a unit falls back to about the recipe without the option (stand-in 0.91, randomised
0.88, nominal 0.87 against 0.92, 0.91, 0.93). Each test file here has 100 events and
13-18 band tracks; a real run file of thousands of events has hundreds, and its unit is
the better for it. `preprocess` and `classify` name every file without a unit.

How precise must the unit be? The stand-in's 20 files were simulated with one gain, yet
their units spread over 13.1-26.9 ADC/mm (0.08 dex standard deviation; the nominal
set's 5 files 57.8-80.7): a dozen or two band tracks per file, each proton's charge per
mm scattered by its angle and length, and the band's carbon recoils and pile-ups on top.
Given the median of the 20 instead (the set's one true unit, up to the estimate's own
bias) the trees score the same, 0.95 [0.93, 0.96], and the nominal set the same 0.95:
the per-file estimate's scatter costs nothing we can measure, so a tighter estimator is
not needed at these sizes (the stand-in of "After adaptation", seed 100, agrees: units
13.6-32.6, 0.12 dex, and the recipe's 0.929 zero-shot there reads 0.930 [0.913, 0.947]
with the median unit: the script's `with_unit_off(FILE, COPY, "median")` on that file,
then `evaluate --n-boot 1000`). The randomised set,
whose files have their own gains (15.1-102.8), shows the other side: one unit for all
its files costs 0.03 (0.94 -> 0.91, 0.93 -> 0.90 with the dropout), so each file keeps
its own. The same rows price the pooled fallback for files too short for a unit of their
own (`calibration_fallback: pooled`): in their set's unit the recipe scores 0.95 on the
one-gain stand-in and nominal sets against 0.91 and 0.87 without a unit, and 0.90
against 0.88 on the randomised set, whose files have other gains. The short files measure
it directly: cut into files of 10 events, 173 of the stand-in's 200 files (76 of the
randomised set's 100) have fewer than 3 band tracks. Read in the pooled unit the recipe
scores 0.93 on the stand-in and 0.91 on the randomised set, against 0.89 and 0.88 without
it (0.69 and 0.71 for the trees trained without the dropout). The 27 stand-in files with
a unit of their own (median 3 band tracks) range over 9.3-1058 ADC/mm, but giving them
the pooled unit too moves the recipe only from 0.930 to 0.933 (the last two rows); the
rest of the loss against whole files (0.95)
would be the other per-file fits on 10 events (beam axis, hot pads), not measured apart.

## Beam axis per run file (`beam_axis: run`, on in the recipe)

**What.** With `beam_axis: run` every point's x, y are measured from the run's beam line
`x = x0 + ax z`, `y = y0 + ay z` before anything else (structured noise, features, beam
mask, denoising, projection), so `beam_mask_mm` and the features' beam core (`CORE_MM`)
act around the beam and the images are centred on it. **Why.** The E-B angle (e15503b: 6.2
deg) shears every point by (drift length) x tan(angle) along one azimuth, up to ~100 mm at
the window end, and the beam spot can be off centre: a cylinder about the detector axis
misses the beam, whose ions the models then read as tracks (the largest single cause of
the stand-in gap). **How it is fitted** (`data_prep/beamaxis.py`, ours; no label used):
from a seeded sample of 500 events of the file (`quantiles.beam_axes`), starting at the
detector axis, with search radii 120, 80, 40, 20 mm (two passes each): in each of 20 z
slices the charge-weighted median x and y of the points within the radius of the current
line (only from events with >= 3 such points: a beam ion leaves a line of points in its
event, a hot pad one; slices with < 20 such points skipped), then a least-squares line
through the medians weighted by the points per slice. At 20 mm a slice counts only where
the beam stands out (>= 3 x the points its 20-60 mm ring puts in a 20 mm disc); fewer than
5 such slices, or a slope >= 0.3, and the file keeps the detector axis ("no visible beam",
as without the option). **Per file**: a run is one file, so each input file of
`preprocess`, `classify`, `adapt`, `show` and the labelling tool gets its own line (and
hot pads are found outside 30 mm of it); preprocess prints each line and records them in
the image file's `beam_axes` attribute, which detector augmentation reuses. The line is
not part of the model (`run_beam_axis`, like `run_quantiles`); `beam_axis` is.

Accuracy, `.venv/bin/python scripts/beamaxis_accuracy.py --events 300 --seeds 5
SIM_RUNS` (2026-12-02), as the largest x or y distance between the fitted and the true
line over z 0-1000 mm: on hand-made runs (tests/test_beamaxis.py: a beam ion up to the
vertex, blind within 20 mm of the detector axis, a reaction track from the vertex always
into one half plane, 5-40 noise hits, a hot pad 18 mm off the detector axis) 1.62 mm on
average (worst 2.30) for the e15503b shear (4, 0, 108.6, -0.109), 1.59 (2.38) for
(-6, 0.02, 5, 0.1), 1.83 (2.47) for a shear along -x half hidden by the blind core;
0.1 s per file; a run without a beam keeps the detector axis (5 of 5; the hot pad is not
taken for a beam, which it was before the 3-points-per-event rule). The error is a bias
(the one-sided tracks), not statistics: `--events 2000 --seeds 3 --sample 500` gives
1.55 / 1.47 / 1.60 mm (0.2 s per file), `--sample 2000` 1.56 / 1.47 / 1.59 mm (1.0 s per
file), hence 500 events per file rather than the quantiles' 2,000.

On today's simulation the beam is not visible in the point clouds (`simulate --config
e15503b_nominal --events 200 --events-per-file 200 --set detector.tilt_deg=6.2 --seed 3`,
and `--config e15503b_standin --events 500 --events-per-file 500 --seed 5`, given to the
script as run files): both keep the detector axis ("no visible beam"). attpc-engine drops
the charge on its beam pads *before* the shear, so only a hollow ring of leaked charge
shows about the sheared line. With the cut moved after the shear (the script's `--sim`
mode empties attpc-engine's beam-pad list for the measurement only; data_prep/sim's shear
then drops what lands on beam pads) the beam is visible and the fit follows it, `--seeds 0
--sim CONFIG --sim-events 500 --sim-seed 5`:

{AXIS_FIT_TABLE}

**With the simulation fixed** (0d6eaa0: with a tilt, the beam pads drop charge where it
lands, so the sheared beam shows; `e15503b_randomized` draws one tilt per run file), the
demo's models trained on 3,000 randomised events (seed 0) with the demo's preprocessing,
without and with `beam_axis=run`, tested on three fresh sets made by the fixed simulation
(400 events each: stand-in seed 99 runs 500+, nominal seed 7, nominal with tilt 6.2° seed
8), proton F1 [95 % bootstrap interval] (3-class: / macro-F1):

{AXIS_MODEL_TABLE}

Commands: `simulate --config e15503b_randomized
--events 3000 --seed 0`; `preprocess RUNS --config configs/prep/robust.yaml --views xy,zy
--size 64 --set voxel_grid=0 --set structured_noise=rules --set features=tracks_v1 [--set
beam_axis=run]`, each test set with `--reference` the training file; `train --config
configs/train/gbt.yaml optim.balance=weights model.max_leaf_nodes=15 model.learning_rate=0.1`
(the demo's trees) and `train --config configs/train/cnn_small.yaml model.width=16
optim.epochs=10`; `evaluate`. Better on every set, never worse beyond the intervals: on in
`configs/prep/robust.yaml`, so the demo and the recommended model use it.

## A run read in another frame (the beam's direction, found per run file)

Tools store events in different frames (../shared/REAL_DATA.md, "Frames differ between
tools"): pytpc puts z = 0 at the micromegas with the beam along -z, the simulation,
Spyral and attpc-engine at the window with the beam along +z, and the sign of the field
sets which way a track curls. A run read in a frame other than the one it was written in
reaches the model turned around. Measured on the code before the fix (e75d36f, this
script's trees and test sets of then, `tracks_v2`, `preprocess` of the copies below with
`configs/prep/features.yaml`):
the trees' proton F1 on the nominal test set fell from 0.834 to **0.297** [0.215, 0.374]
(macro-F1 0.886 -> 0.632) and on the stand-in from 0.827 to **0.622** [0.580, 0.659]
(0.830 -> 0.699) when the events were stored turned 180 deg about x or with z mirrored;
with x mirrored or rotated about the beam axis they did not move (the features use only
r, z and rotation-invariant shapes, by design).

**The fix** (`data_prep.beamaxis.beam_direction`, ours; part of `beam_axis: run`, so the
recipe and every model that uses it, old ones included, get it in `preprocess`,
`classify`, `adapt`, `show` and the labelling tool): in inverse kinematics every reaction
product leaves the vertex forward, so the tracks of a run vote. From the events sampled
for the beam-axis fit (at most 200 of them, evenly spread; ~0.3 s per 100-event file, the
DBSCAN), the largest off-axis track of each (the features' DBSCAN,
after centring on the fitted line) whose principal axis is steeper than ~12 deg to the pad
plane, and whose distance from the line grows along it (|correlation| >= 0.5), goes along
+z or -z. A file where at most 30 % of at least 20 such tracks go along +z is turned into
the simulation frame by a proper rotation (y -> -y, z mirrored about the middle of the
image's z range), and `preprocess` says so per file. On every file of this study's
simulations (189 run files of nominal, randomised, stand-in and knob sets, and the
carbon-only sets of "What the trees' first track is") 76-100 % of the voting tracks go
forward, 30-65 tracks per 100-event file; on the same files turned around 2-16 %. A
z-mirrored file (an improper change) comes back x-mirrored, which the features do not
see. The same events in each frame, the trees of this document, 1,000 bootstrap
resamples (`python scripts/frames.py`, in Commands):

{chr(10).join(frame)}

The robust CNN's images are turned by the same step (tests/test_beamaxis.py checks that a
file in pytpc's frame gives the images and features of the file in the simulation
frame). An x-mirrored event is another image to it; measured outside this script
(2026-12-03, `python scripts/frames.py RUN_CNN SIM/nominal_test --out DIR --prep
configs/prep/robust.yaml --reference` its training file), its proton F1 on the nominal
test set as simulated / turned / x mirrored / rotated 90 deg / z mirrored: 0.711 / 0.711 /
0.688 / 0.702 / 0.684 (intervals +-0.06): the mirror costs it 0.02, inside the interval,
so no mirror augmentation was added. Not covered: a run with fewer than 20 voting tracks
keeps its stored frame (say, a run of noise events only).

## Events with a spark (not simulated; the spark rule)

The simulation has no sparks (docs/simulation.md, "Not modelled"). In the detector a
discharge of the micromegas fires a whole region of the pad plane at one time, near
saturation. `scripts/spark_check.py` adds one to a seeded tenth of the events of 20
stand-in run files: 197 of 2,000 events. The spark is our own picture of one, not
taken from data: every pad outside the beam pads within a disk of radius 60-275 mm, at
one drift depth (4 mm rms), 1,500-4,095 ADC. Each model classifies the raw files as they
are and with the sparks (`.venv/bin/python scripts/spark_check.py RUN
charge_unit/sim/standin --files 20 --out DIR`, 2026-12-05). The models:
- the recommended trees: run `v2` of `scripts/charge_unit.py`;
- the demo's 3-class runs of docs/demo.md: `demo_l`, and `demo_m` for the CNN
  retrained with the quantile fix below;
- each at the commit before the spark rule (da20b3b) and after it.

{SPARK_TABLE}

What the table shows:
- **Before the rule, the trees held.** They called a spark event other: the spark is
  one huge flat track, neither helix nor elastic. That is a safe call but not the
  event's own: a third of the protons under the sparks were lost.
- **Before the rule, the CNN failed.** It called two thirds of the spark events proton.
  Worse, the sparks moved its calls of the events that held none: 548 of 1,803
  changed.
- **Why the other events moved.** `charge_norm: quantile` maps a run's point-charge
  quantiles onto the training set's. Those quantiles were taken on the points before the
  structured-noise rules, so the sparks' thousands of saturated points, like a run's hot
  pads and chip fires, moved them. Every event's image moved with them.
- **The two fixes.** The spark rule (`data_prep.structured.spark_mask`, part of
  `structured_noise: rules`, on in the recipe and the demo) finds a spark as a 25 mm z
  slab in which at least `spark_min_cells` (4) cells of a 20 mm grid are filled together
  with the eight cells around them. That is an area, the middle of a filled 60 mm
  square, which no track fills. It then drops the points of the filled cells within two
  cells of one. It runs before the chip and burst rules, which then judge the event
  without the spark. The run's quantiles are now taken after the rules
  (`quantiles_after_rules`), on the points the images are made of.
- **How safe the rule is.** `.venv/bin/python scripts/spark_check.py --scan` over the
  first 9,000 training events of the recommended model and 8,500 test events of every
  kind (stand-in, randomised, nominal, every knob extreme, the previous simulation's
  stand-in): no slab of any of the 17,500 events reached 2 such cells, so the rule
  changes no simulated event. All 197 sparks reach 4 or more (up to 432), and the rule
  cleans exactly those events. tests/test_structured.py holds a proton curling three
  times within one slab as a 20 mm band: it stays.
- **After both fixes.** The trees call 189 of the 197 spark events as they call the same
  events without the spark, and the retrained CNN 187. What still differs is the physics
  the spark's slab hid: its points are dropped wherever a track crosses the disk at the
  spark's depth.
- **Old models keep their quantiles.** A model or image file recorded before the option
  has no `quantiles_after_rules` key, and reads as false: its training quantiles included
  the structured noise, so its runs' quantiles must too. `demo_l`'s CNN is such a model,
  and a run's sparks still move its other events (1,255 of 1,803). Retrain it to get the
  fix.
- **The retrained CNN elsewhere.** Its scores on the other test sets are those of
docs/demo.md (`demo_m`): within 0.02 of the model before.
- **Speed.** A spark adds thousands of points to its event. With a spark in each of 500
  events (the script's first version, before the spark rule), `classify` of the
  recommended trees ran at 5 events/s. The chip-fire rule took a median per fired chip
  by masking, quadratic in the ~100 chips a spark lights; the medians now come from one
  sort (`structured.group_medians`, the same medians, tests/test_structured.py): 20
  events/s. The burst rule's DBSCAN then spent the rest on the dense disk; the spark rule
  now goes first: 173 events/s against 211 without the sparks (`--fraction 1 --files
  5`). With sparks in a tenth of the events, `classify` keeps 96 % of its speed (the
  table's last column).
- **A spark in every event** (`--fraction 1 --files 5`) is harsher than any run: the
  pads under the sparks then fire in most events and are taken for hot pads, whose
  points go in every event. The recommended trees keep the call of 377 of the 500.
- **A count for the shift log.** `preprocess` and `classify` (on point clouds) print how
  many events held a spark the rule removed ("12 sparks removed"; `BuildSummary.sparks`,
  `ClassifySummary.n_sparks`, and the image file's `summary` attribute): a run whose
  count climbs is a detector to look at. An image file's events were cleaned when it was
  made, so `classify` on one counts none.
- **Small sparks** (`--radius 20 60`, 201 spark events) are the rule's limit. It cleans
  the 119 whose disk holds 4 inner cells (radius above ~40 mm). The recommended trees
  keep the call of 174 of the 201, but a small spark costs protons (50 -> 31 called
  proton): the disk reads as a blob beside the track. No event the trees called other
  or carbon without its spark became proton. The retrained demo CNN keeps 145, calls 40
  more of them carbon, and 4 newly proton (31 protons lost). A lower threshold
  would need margin against tracks that the 17,500 simulated events cannot show (none
  reached 2 inner cells, so 2 would leave none).

## A run in another file format (where each keeps the pad id)

The structured-noise rules find hot pads and chip fires by pad id, and the layouts keep
it in different places: Spyral and attpc-engine in column 5 of each cloud, pytpc (the
reference paper's real data) in column 4 with its neighbour count in column 5, and
ATTPCROOT's HDF5 export and ROOT trees not at all. Until 2026-12-05 the rules read
column 5 of every format. In a pytpc run that is the neighbour count, a few values
shared by every event, so every point sat on a "hot pad" and went: the demo's trees
called every event other (proton F1 0.00), and a model with run quantiles stopped with
"the run has no point of positive charge". ATTPCROOT and ROOT runs got no hot-pad or
chip rule at all.

**The fix.** Each reader names its pad column (`Event.pad_column`). A format without one
gets, for each point, the pad whose centre lies within 1 mm of its (x, y) on the AT-TPC
pad plane (`data_prep.padplane`: attpc-engine's `padxy.csv`, the file Spyral ships too;
a hit sits at its pad's centre, and the closest two centres are 2.45 mm apart). The
plane is symmetric under both mirrors, so a mirrored file still finds a pad for every
point. The same events in every layout (`.venv/bin/python scripts/formats_check.py RUN
FILES --out DIR`; the copies written by the test suite's writers; the models of
`attpc-classify demo`, seed 0; the stand-in from `attpc-classify simulate --config
e15503b_standin --events 1000 --seed 41 --first-run 500`), before the fix (3ee6a29)
and after:

{FORMATS_TABLE}

After the fix every layout gives every event the call of the Spyral file.
tests/test_structured.py checks that a pytpc and an ATTPCROOT copy of a simulated run
find the simulation's own hot pads and drop the same points. Not covered: a file whose
points are not at pad centres (another detector, smeared hits) gets no pad where no
centre is within 1 mm; a pad plane other than the AT-TPC's (the prototype pAT-TPC) is
not in `data_prep.padplane`; and without the run's electronics map the chip rule's 64
consecutive pad ids per AGET chip are the simulation's picture, not the real wiring
(next section).

## Chip fires on the real electronics (the run's map, `--pad-electronics`)

An AGET chip reads 64 pads, and when it fires as a whole all of them show a hit at one
time. The simulation drew a chip as 64 consecutive pad ids (docs/simulation.md): on the
pad plane an arc along a ring of pads, 76-540 mm long, and the chip-fire rule groups
pads the same way. A real chip is wired otherwise. In the AT-TPC's map (Spyral shipped it
as `src/spyral/data/pad_electronics.csv` until April 2025; `git show
1282e25^:src/spyral/data/pad_electronics.csv` in github.com/ATTPC/Spyral; it is GPL-3
and not in this project) the 64 pads of a chip form a compact, interleaved patch, 80-120
mm across for half of the 160 chips, spread over 3-23 blocks of 64 ids (median 11). So
on real data the rule, blind to the map, misses every chip fire, and a fire is a dense
blob at one depth that the features read as a track.

`.venv/bin/python scripts/chip_check.py RUN FILES --map pad_electronics.csv --out DIR`
adds chip fires (Poisson, 0.8 per event, the stand-in's rate) to copies of 1,000
stand-in events simulated without chip fires (`attpc-classify simulate --config
e15503b_standin --events 1000 --seed 41 --first-run 500 --set noise.chip_rate=0`), on
the simulation's chips and on the map's, and classifies them with the models of
`attpc-classify demo` (seed 0) before (`demo_n`) and after (`demo_o`) the simulation
learned a second chip shape, and after a third (`demo_p`), with and without the map, and
with the chips `attpc-classify chips` learns from the fired copies themselves ("Chips
learned from the run", below):

{CHIP_TABLE}

- **A model that saw only the simulation's chips loses a third of its proton F1** to
  real chip fires when the map is not given (`demo_n`'s trees 0.845 -> 0.586; 149 of
  1,000 calls change), where the simulation's chips cost it nothing (0.839). The CNN
  moves less (0.600 -> 0.570) but changes 205 calls.
- **Trained on two chip shapes, the trees hold most of it without the map.** The
  randomised preset now draws per run file whether its firing chips are blocks of 64 ids
  (which the rule cleans) or compact patches (`noise.chip_layout: patches`, our own
  layout of 160 ring sectors, 26-111 mm across, not the real wiring; the rule cannot see
  them), docs/simulation.md "Noise". Retrained that way (`demo_o`, `attpc-classify demo`
  after the change), the trees keep 0.770 on the map's fires without the map (86 calls
  change) and lose nothing without fires (0.865; two demo trainings differ by about
  +-0.03 on this set). They learned that a flat compact blob at one depth is noise,
  whatever its pads. The CNN gains little (0.570 -> 0.582). A third shape since, bands
  three pad spacings wide (`stripes`, 54-157 mm long for 80 % of the chips, where the
  map's chips are 77-167 mm across; docs/simulation.md "Noise"), drawn beside the other
  two per run file (`demo_p`): 0.792 [0.752, 0.828] on the map's fires without the map
  (65 calls change), 0.845 without fires.
- **The recommended trees retrained** (README's command on the preset of two shapes:
  72,000 events simulated as `scripts/training_size.py`'s parts, 9,000 + 27,000 + 36,000
  with seeds 1-3; validation macro-F1 0.939): 0.804 [0.762, 0.841] on this section's
  fires without the map, 0.938 without fires and with the map (993-995 calls kept). On
  the sets of docs/recommended-model.md the retrained trees hold their level: stand-in
  (2,000) 0.946 [0.931, 0.960] / 0.952 (0.95 / 0.95 before), nominal (500) 0.953 / 0.968
  (0.94 / 0.97), the randomised set of that preset 0.913 / 0.922. Again on the preset of
  three shapes (2026-12-06, the same command and seeds; validation macro-F1 0.933):
  **0.866** [0.831, 0.897] on the fires without the map (938 calls kept), 0.952 [0.930,
  0.970] without fires and with the map (997 kept), 0.943 [0.920, 0.963] with the map
  `attpc-classify chips` learns from the fired files (992 kept); stand-in 0.945 / 0.951,
  nominal 0.957 / 0.975, the randomised set of two shapes 0.912 / 0.918 and of three
  0.906 / 0.918.
- **At the recommended recipe's size.** The same 9,000 randomised events simulated twice
  (`simulate --config e15503b_randomized --events 9000 --seed 1`, and again with `--set
  "randomize.chip_layout=[]"`: 47 of the 90 run files byte-identical, the other 43
  differing only in their chips' shape), preprocessed with the recommended settings
  (`configs/prep/features.yaml`, `tracks_v3`, `cluster_z_scale=0.5`,
  `charge_calibration=proton_band`) and trained as the recommended trees (127 leaves,
  `data.unit_dropout=0.1`; validation macro-F1 0.908 blocks only, 0.909 both shapes).
  On this section's fires without the map: 0.552 -> **0.717** proton F1 (804 -> 891
  calls kept); without fires 0.892 -> 0.877 and with the map 0.887 -> 0.891 (intervals
  +-0.03). On the 2,000 stand-in events of docs/demo.md (the Spyral row of
  `scripts/formats_check.py`): 0.901 / 0.914 -> 0.903 / 0.918 (proton F1 / macro-F1); on
  the new randomised test set, whose chips fire in both shapes: 0.824 / 0.827 -> 0.865 /
  0.879. The second shape costs nothing measurable where chips do not fire and buys a
  good part of the loss back where real ones do. The same events a third time with
  `--set "randomize.chip_layout=[blocks, patches, stripes]"` (21 of the 90 files draw
  stripes; validation macro-F1 0.898, on a validation set with stripes in it): 0.717 ->
  **0.762** [0.715, 0.803] on the fires without the map (910 calls kept), 0.884 without
  fires, 0.885 with the map; stand-in 0.903 / 0.918 -> 0.904 / 0.920, the randomised set
  of two shapes 0.865 / 0.879 -> 0.855 / 0.876 (inside its +-0.035).
- **With the run's map** (`--pad-electronics CSV`, a reader option of `preprocess`,
  `classify`, `adapt` and the rest, as the drift calibration is): each pad is known by
  its place in the electronics (`data_prep.padplane.electronics_order`: chip x 64 +
  channel), so the rule's 64 consecutive ids are one real AGET; the real fires go (986-991
  calls as without them) and the map changes nothing where no chip fires. Give the map
  of the detector the run was taken with; a model trained on the simulation needs none.
- **A rule blind to the map was tried** (exploration on `demo_n`'s trees, code not
  kept): drop each DBSCAN cluster (10 mm, z weighed 0.5) of at least 30 points within 20
  mm of z and 40 mm or more from the axis, at classify time. On the fires it took the
  trees from 0.586 to 0.694 (0.708 at 30 mm), and it cleaned 8 of the 1,000 events
  without fires (3 calls changed): less than the training above, with thresholds set on
  this script's own fires, and physics can meet them (those 1,000 events hold 11 flat
  clusters of track points, 42-129 points within 20 mm of z, 25-143 mm from the axis).
  The dense patch at one depth is seldom a spark (64 interleaved pads rarely fill a 60
  mm square) and never a burst (it is not spread over the plane, and its points have
  neighbours).
- **Dead chips of either shape cost the same.** The simulation's dead chips stay blocks
  of 64 ids. Copies of the same 1,000 events with 3 dead chips per run file (the
  stand-in's number; exploration, code not kept): `demo_n`'s trees 0.849 with the
  simulation's chips, 0.832 with the map's (975-976 calls as before); with 10 per file
  0.825 and 0.828. A dead patch is not the problem a firing one is.

### Chips learned from the run (`attpc-classify chips`)

Where the map is not at hand, the run carries it: a chip that fires lights the same
pads at one instant each time, and a track lights other pads in every event.
`attpc-classify chips RUN_FILES --out chips.csv` (`data_prep/chipmap.py`, ours) lists
each event's dense instants (at least 48 distinct pads within +-12 mm of z, the chip
rule's numbers), links two instants that share at least 60 % of the larger one's pads,
and reads a linked set of at least 3 instants as one chip firing again and again: its
pads are those present in at least half of the set's instants and 5 times more often
than in the other instants (a chip that fires in most events is still one chip: a
first version compared with all instants and missed it; on the sets below both give the
same maps to the byte), kept when there are at least
48 of them and they are present in 90 % of the set's instants on average (a chip fires
whole). The map it writes lists each learned chip as an AGET and every other pad as the
rule groups it without a map, so a pad no chip claimed is treated as before (and the
hot-pad rule still sees every pad). Give it to `--pad-electronics` as the real map, or
let `classify --learn-chips` (the map beside the predictions, `OUT_chips.csv`) and
`ClassifyPhase(run, learn_chips=True)` (per Spyral run, `Classify/run_NNNN_chips.csv`)
learn it from the files they classify.

What it learns from copies of this section's 1,000 stand-in events with the map's chips
firing (0.8 per event) and from the same events with the fires drawn again (seeds 1-4:
further events of the run), 1-4 s per set (`scripts/chip_check.py ... --other-runs 4`,
which prints this and the rows "learned from" below; the simulated test sets: their
`attpc-classify chips` line):

{LEARN_CHIPS_TABLE}

On the simulated sets it learns the simulation's chips, which the rule then cleans as
well as without the map. Classified with the learned map (`chip_check.py` with RUN each
model, 2026-12-06; "1,000 other events": the map learned from seed 1's copies):

{LEARNED_MAP_TABLE}

Proton F1 [95 %]. The learned map does what the real one does: 983-992 calls as
without the fires (988-997 with the real map; 977-989 with the map of other events), and
on the events without fires it changes no call. A first version joined pads, not
instants, that fired together (at least 3 times, in half of the busier pad's instants):
it found 116-134 of the map's chips, because a pad near the axis sits in 3-12 times more
dense instants than its chip fired (tracks crossing it at that depth), so the inner
chips fell apart: 0.826, 0.829 and 0.857 with it for the three trees above. Without
the presence test the stand-in's beam entrance (100 mm off axis, where beam ions and the
pile-ups' products pass in many events) gave one false chip of 64 pads from 6 events
without chip fires (mean presence 0.79 and 0.86 for the two candidates, 0.98 and more
for 95 % of the real chips' sets).

What it needs: a run in which a chip fired whole at least 3 times (`--min-fires`); at
0.8 fires per event 1,000 events find 5 of 6 chips, 2,000 all. At most 4,000 dense
instants are used (a seeded sample beyond; the instant x instant product grows with
their square). `.venv/bin/python benchmarks/chipmap.py` (1,000 stand-in events,
2026-12-06, AVX-512 host): events read with their dense instants at 4,300/s, the 1,437
instants learned in 0.19 s (28 MiB), 4,000 at the cap in 1.2 s (207 MiB); 126 chips, at
least 95 % of each one's pads in one of the simulation's blocks (a pad that tracks
crossed in most of a rarely firing chip's fires can join it). Not covered: a chip that
fires at the same time in every event (a "hot chip": the hot-pad rule takes its pads if
they fire in more than half the events), chips of which only part fires (below 90 % of
the pads), and the channels a chip reads that no fire showed (beam pads).

## Detector health (`attpc-classify health`)

**Why.** The sections above measure, one difference at a time, what the recommended trees
stand. A physicist with a run needs the other half: where that run differs from the
simulation the model was trained on. `attpc-classify health RUN_FILES` measures how each
run file's detector ran, on a seeded sample of its events (`--events`, 1,000), each number
from a rule one can check by eye, blind to labels; with `--reference` (run files,
directories, or a report written before with `--out`; by default `RUN/health.json` beside
the model given with `--model RUN`) it names every number outside its range over the
reference files. The numbers are measured with the model's preprocessing (`--model`), or
the README's recommended one. Kept beside the model as `RUN/health.json`, the report is
checked by every `classify RUN` of point-cloud files and by the Spyral phase, per run
(`--no-health`, `check_health=False` skip it).

**What** (`data_prep/health.py`; ours: the run-quality summary every experiment keeps, no
paper or code followed):

- points per event, the point charge (median, 99th percentile), the share of points at
  the 12-bit ADC's full scale (4,095), the depth z (1st and 99th percentile) and the
  share of points outside the image's z range;
- the fitted beam line (`data_prep.beamaxis`): its angle to the detector axis, its
  distance from the axis at mid-drift, and whether the beam runs along -z (a file in
  another frame);
- hot pads (the structured-noise rule's); dead pads: a pad with no point in the sample
  while the median pad of its 10 mm ring about the beam fires in at least 10 events (a
  live pad firing as often as its ring stays silent with a chance below e^-10; the ring's
  median, so a dead chip's block does not hide itself), as a share of the pads judged;
- AGET chips firing whole per event, by the rule's chips (`structured.chip_fires`: 64
  consecutive ids, or the run's map) and by the chips the file teaches
  (`data_prep.chipmap`); the dense instants per event (>= 48 pads within +-12 mm of z)
  that no chip of the rule explains (tracks along the pad plane, and chips wired
  otherwise); the share of events in which the burst rule drops points, of events with a
  spark, and of points the structured-noise rules drop;
- the charge unit of the elastic-proton band and its band tracks per event;
- the beam core's edge: of the events with a point 10-30 mm beyond the features' beam
  core (`track_core_mm`, 30 mm), the share with a point in the 10 mm ring just outside
  it. Every track leaves the beam through that ring, so it reads near 1 wherever those
  pads read; a detector blind past the core (whose track starts the features miss) reads
  it low. A per-file number about how far out the pads are blind would not do: the
  training draws the blind radius per event (0-30 mm), so no training file is blind
  inside 30 mm as a whole, while its events are.

**Measured** (`.venv/bin/python scripts/health_check.py RUN --reference REF --set NAME=DIR
... --out DIR`, 2026-12-06, AVX-512 host; RUN: the recommended trees retrained on the
three-shape preset, 72,000 events, "Chip fires on the real electronics"; REF: `attpc-classify
health` of its 720 training run files of 100 events, `--workers 2`, 2 min 41 s; the test
sets of this document, the nominal set's pytpc copies of `scripts/formats_check.py` read
as pytpc files and in the simulation's frame (`--format pytpc --frame simulation`, scored
by the originals' labels), and the stand-in's 1,000 events without chip fires joined into
one file of 1,000 events, as a real run file is, with and without the map's chip fires of
`scripts/chip_check.py`):

{HEALTH_TABLE}

The training files span 303-717 points per event, a median point charge of 57-289 ADC,
2-33 % of the points saturated, beam lines up to 6.8 degrees and 61 mm off the axis,
0-20 hot pads, up to 26 % of the judged pads dead, 0-0.93 rule chip fires and 0.29-1.95
unexplained dense instants per event, no spark, 7-28 % of the points dropped by the rules,
and charge units of 9-378 ADC/mm.

- **Outside is not failing.** Every nominal knob extreme has 1-7 numbers outside, nearly
  all below the range: one nominal detector is quieter than any randomised training file
  (fewer points per event, fewer events in which the burst rule drops points, fewer
  points past the drift window). The trees keep 0.95-0.98 proton F1 there.
- **A file in another frame** is named (`beam_backward`, 5 of 5 files), and the recipe
  turns it ("A run read in another frame"): the same scores as the originals.
- **Inside is not passing.** The randomised test set and the stand-in are inside every
  range, and the trees score 0.906 and 0.945 there. A change of labels does not show at
  all: the stand-in of the previous simulation is inside every range, yet scores 0.84 /
  0.77, because its labels say another thing ("Labels that say what shows").
- **Chips wired otherwise.** The only sign is the spark rule firing in some files (5 of
  10 files of 100 events, the file of 1,000): a compact real chip fills the rule's 20 mm
  cells as a small spark does. Joined into one file of 1,000 events, the chips the file
  teaches fire whole 0.77 times per event against at most 0.22 in the training files, a
  difference of length, not of detector: a chip is learned from 3 whole fires in one
  file, and the training files hold 100 events. Ten randomised files of 1,000 events
  (`simulate --config e15503b_randomized --events 10000 --events-per-file 1000 --seed 7
  --first-run 7000`) learn 0.61-0.73 fires per event, because the training simulation
  fires chips that no rule chip explains as often (its patches and stripes): against
  them the joined file sits at the edge (0.77). So the report judges that number only
  against reference files of about the file's length (within a factor 2 of their
  sampled events, `LENGTH_BOUND`), and says which files it did not judge. The fires cost
  the trees whether or not the report names them: read every run with its map or
  `--learn-chips` (0.866 -> 0.952 and 0.943, "Chip fires on the real electronics").

- **A detector blind past the core** (21st session; `core_edge_seen`). Against a
  reference of 60 training files (`simulate --config e15503b_randomized --events 6000
  --seed 430 --first-run 9300`, `attpc-classify health ref --out ref.json --workers 2`),
  whose files read 0.95-1, sets of 10 files of 100 events (`simulate --config
  e15503b_nominal --events 1000`, seeds 431-436, `--set` as named; the stand-in's and the
  randomised presets, seeds 437 and 438; `health SET --reference ref.json`) read:
  nominal 0.96-1, blind inside 30 mm (the training's widest) 0.96-0.99, drift 5 % fast
  0.96-0.99, beam diverging 3 deg 0.99-1, the stand-in 0.99-1 and fresh randomised
  events 0.94-1 (one file of 10 below the range: 100 events leave about +-0.015 by
  chance); blind inside 35 mm 0.93-0.97 (3 files of 10 below; the trees 0.982,
  docs/recommended-model.md) and blind inside 40 mm 0 in every file (the trees 0.962).
  The blind detector that costs the trees is named in every file, by a value no other
  set comes near. A beam that diverges past the training's 2.5 deg is still not named:
  per run file, the share of events whose own ion line (`beamaxis.event_line`) leaves
  the run's line by more than 2.5 deg reads 0.20-0.28 on the 3 deg set and 0.01-0.27 in
  the 60 training files, whose beam-leak hits make lines of their own (a line in 90 % of
  their events, 3 % on the nominal detector; `scripts/event_line_check.py ref nominal
  diverg3 ... --events 6000`, 23 s), so it was not built.

So the report says where a run differs from the simulation, not what the difference
costs; the sections above say what each difference cost the recommended trees. Its
ranges are min-max over the reference files, so a reference of a few files flags more:
against the ten files of 1,000 events above, the joined stand-in file without chip fires
has 7 numbers outside, against none for the 720 training files. Some numbers grow with a
file's length (the chips learned, the pads judged dead or alive). So give the reference
many files, as long as the run's where you can: simulate it with `--events-per-file`
near your run files' length and measure it once.

What it costs: `.venv/bin/python benchmarks/health.py` (1,000 stand-in events in one run
file, 2026-12-06, AVX-512 host, best of 3): 3.5 s for the report (285 events/s), of
which the charge unit's features take 1.8 s (1.7 s without the unit) and reading the
sample 0.1 s; 190 MiB at the peak (on `tracks_v3`; with the recipe's `tracks_v7` since
the 13th session, the same command: 4.2 s, 239 events/s; with the core's edge since the
21st session, 2026-12-07, AVX-512 host, one run: 3.2 s, 312 events/s, 190 MiB: the edge
is a count over points already centred, lost in the machine's noise). The samples are at
most 1,000 events per file (2,000 for the unit's features), so a run file of 10,000
events costs 5.7 s (the ten randomised files of 1,000 events above joined into one, best
of 3) against ~35 s to classify it with the recommended trees (~290 events/s here).
`classify` hands the report the charge units and beam lines it measured already: on that
file its check adds 3.8 s to 41.6 s (`classify` with and without `--no-health`, the
recommended trees).

## Noise cleaning: DBSCAN or HDBSCAN

No model involved: each cleaning of the robust recipe against the simulator's per-point
truth (noise points = the simulated noise hits; signal = points of the reaction products;
beam points are neither). HDBSCAN (scikit-learn's, `denoise: hdbscan`,
`min_cluster_size` 10, `min_samples` 4, one cluster allowed) keeps a little more signal
but lets about half the noise through and is several times slower than the recipe's
DBSCAN (20 mm, 4 points), so the recipe keeps DBSCAN.

{chr(10).join(cleaning)}

## Errors per simulated channel

3-class calls: wrong / events of each channel (what the wrong ones were called: p
proton, c carbon, o other). Proton = p_elastic + p_inelastic, carbon = c12_elastic,
other = the rest. The recommended trees ({s["train"]:,} randomised events):

{channel_table(channels[TREES_LABEL])}

{ambiguity(TREES_LABEL)}

The CNN with robust inputs, on the same events:

{channel_table(channels[CNN_LABEL])}

{ambiguity(CNN_LABEL)}

## After adaptation on the stand-in

{chr(10).join(lines[:2] + [ln for ln in lines if ln.startswith(STANDIN_ROWS)] + ada)}

The labels used other ways, outside the application (`scripts/tree_adapt_variants.py`:
scikit-learn's trees with the recommended settings fitted directly on the same feature
files, so every variant starts from the same simulated events; three seeds, each another
validation split and tree seed; scored on the same {s["standin"]:,} stand-in test events,
no setting chosen on them):

{chr(10).join(variants)}

Two more ways, measured at the recommended model's size (2026-12-06, `scripts/tree_adapt_variants.py
TRAIN TEST POOL --seeds 2 --only refit cut weights`, one-stage trees as above; TRAIN: the
72,000 events of docs/recommended-model.md preprocessed as its command does, with named
tracks, `cluster_z_scale` 0.5 and the run's unit; TEST: the stand-in of
`scripts/training_size.py`, 2,000 events, seed 99; POOL: 1,000 other stand-in events,
`simulate --config e15503b_standin --events 1000 --seed 111 --first-run 6800`; both
preprocessed as TRAIN):

{ADAPT_MORE_TABLE}

- **Importance weights** (no labels; covariate-shift correction, Shimodaira 2000): a
  classifier of simulated against stand-in events weighs each simulated event by the odds
  that it came from the stand-in. It moves nothing. In an exploration (code not kept) that
  classifier told the two apart almost perfectly (ROC AUC 0.98), mostly on the event's
  median charge in its run's unit and its number of points: the stand-in forms one point
  per pad. So the weights rest on a few simulated events (about 13,000 effective of
  57,600 there, at the same cap) that look like the stand-in in what the trees need least.
- **The proton cut chosen on 1,000 labels** lands below the argmax as well. With the
  recommended run itself (the `p_proton` of `classify`; exploration, code not kept): the
  argmax scores 0.946 on this stand-in, the cut that is best on the 1,000 labels (0.39)
  0.939, the cut best on the simulation's validation split (0.47) 0.942; cuts chosen on
  250 labels (20 bootstrap draws of the pool) 0.931 on average (0.877-0.949). The best
  cut on the test events themselves (0.58) would give 0.951: the labels cannot find it.
- **The refit with the labels** costs 0.009 here (0.935 -> 0.926), where it gains about
  0.02 with 6,000 simulated events (the table above); with the recommended run's own
  two-stage trees it moved 0.929 -> 0.932 on the other stand-in sample (the table below).

How far adaptation can go: the same trees (`gbt`, 127 leaves) trained not on the
simulation but on {s["train"]:,} labelled events of the stand-in itself (`simulate --config
e15503b_standin --seed 110 --first-run 800`, another seed and other runs than every
stand-in set above), scored on the same test sets. The first row is what an adapted model
could hope for with these features and this many events; the two others show what a model
of one detector setting does on the randomised and nominal simulations.

{chr(10).join(ceiling)}

The trees of docs/recommended-model.md (72,000 randomised events, 127 leaves: the
`72000_127` run of `scripts/training_size.py --out TS` on `tracks_v2`, and its
named-track twin `v3_72000_127` of `--v3`) adapted the same ways to the same stand-in, S =
this script's `--out` of the CPU config (measured outside this script, 2026-12-04, AVX-512
host). The stand-in files: V2 = `preprocess S/sim/NAME --out V2/NAME.h5 --config
configs/prep/features.yaml` (`tracks_v2`; this script's own feature files were those
until the 14th session) for NAME = standin, standin_labels250, standin_labels1000; for
the named trees the same with `--set features=tracks_v3` into V3, which takes the place
of V2 below:

```bash
attpc-classify adapt TS/runs/72000_127 --data V2/standin.h5 --out self --rounds 3
attpc-classify train --config configs/train/gbt.yaml --data V2/standin_labelsN.h5 \\
    --out ftN optim.balance=weights model.max_leaf_nodes=127 model.learning_rate=0.1 \\
    model.init=run:TS/runs/72000_127 model.target_share=0.5             # N = 250, 1000
attpc-classify evaluate RUN --data V2/standin.h5 --out RUN/eval --n-boot 1000
```

{RECOMMENDED_REFIT_TABLE}

Proton F1 [95 % interval] / 3-class macro-F1. Measured when this script's trees still
read `tracks_v2` (then zero-shot 0.84, at best 0.86 after a refit, and 0.90 for the trees
trained on 6,000 events of the stand-in itself): the same steps at 72,000 events were a
little higher everywhere, with the same verdict: the best, the named trees with 1,000
labels, reaches 0.915 [0.896, 0.932], a little above that reference and short of the
issue's 0.95.
Self-training moves nothing (the pseudo-labels agree with the calls they came from: the
predicted proton fraction stays at 0.27 through three rounds), 250 labels +0.005, 1,000
+0.009. The named trees start where the others end: zero-shot 0.906 against 0.877, the
issue's zero-shot figure on this stand-in too. Each refit of the named trees took 14-22
min here (self-training's three rounds 17 min; with other jobs beside them), most of it
naming the 72,000 simulated events again.

The third row is the recommended command of the third stop of 2026-12-04 (named tracks
and `cluster_z_scale: 0.5`, "Clustering that keeps a steep track whole"; the run of that
section trained again by `train` with the same settings, validation macro-F1 0.9325 both
times; stand-in files made with `--set features=tracks_v3 --set cluster_z_scale=0.5`).
Zero-shot it gains 0.014 proton F1 and 0.020 macro-F1 over the named trees without it,
and no refit adds to that: self-training 0.921, 250 labels 0.913, 1,000 labels 0.918,
all inside the zero-shot interval [0.902, 0.936]. The issue's 0.95 after adaptation is
not reached; on this stand-in the trees are where labelled target events no longer move
them. With both reactions of a pile-up named alike (the row below it; the run of "Both
reactions of a pile-up named alike", the same commands, 2026-12-04, fourth stop) every
route stays inside that interval again: 0.919 zero-shot, 0.913 self-trained, 0.911 with
250 labels, 0.925 [0.907, 0.942] with 1,000; and with the light-product counts as well
(the row below; the run of "How many tracks are light products", 2026-12-05): 0.920
zero-shot, 0.922 self-trained, 0.913 and 0.920 with 250 and 1,000 labels. The last row
is the recommended command of the 2026-12-05 session ("A run's charge unit": the run
`v2` of `scripts/charge_unit.py`, trained on the simulation with one gain per run file;
stand-in files made with `--set features=tracks_v3 --set cluster_z_scale=0.5 --set
charge_calibration=proton_band`; the refits as above with `model.init=run:` that run):
0.929 zero-shot, 0.927 [0.909, 0.944] after three self-training rounds (all kept; the
predicted proton fraction 0.251 -> 0.254), 0.923 and 0.932 [0.916, 0.947] with 250 and
1,000 labels. Those refits read the simulated events as the training did, each run's
unit hidden for the same tenth of the run files (`data.training_features`, since the
third session of 2026-12-05); before, they read every run's unit and scored 0.925 and
0.933 [0.916, 0.949]. Each refit took 14-17 min. On this stand-in the unit gains 0.009
zero-shot, where on the stand-in of `scripts/training_size.py` it gained 0.03 (0.92 ->
0.95): the issue's 0.95 after adaptation is reached on neither by a refit, and on the
second sample zero-shot.

Why no route moves on this stand-in: `scripts/error_budget.py RUN S/standin.h5
S/sim/standin --test` scores it whole by the simulation's truth (RUN the recipe's run).
Of its 31 missed protons 7 show fewer than 20 points outside the beam's core, and
`scripts/proton_misses.py` finds the known cut helices among the rest (of the protons
showing 80 points or more, those cut into four or more clusters: 8 of 23 missed, against
3 of 193 cut into fewer). Of its 40 false
protons 24 are fusion-evaporation events (of 466: this preset has more of that
background) and 13 pile-ups. On the 1,609 events whose every reaction shows at least 40
points outside the core it scores 0.958. Labelled stand-in events teach the trees
neither a helix the clustering has cut into pieces nor a fusion-evaporation proton on
the elastic line; their own errors, not the domain gap, hold this stand-in near 0.93.

The zero-shot values also say how far one number travels: on the stand-in of
`scripts/training_size.py` (the same preset, seed 99 instead of 100, 2,000 events each)
the `tracks_v2` trees score 0.91 [0.89, 0.93] against 0.877 here, the named trees 0.91
[0.89, 0.93] against 0.906 (docs/recommended-model.md). The `tracks_v2` pair differs by
more than either interval suggests (the bootstrap resamples events,
not run files, and each run file gets its own beam line and charge quantiles), so read a
single test set's interval as a lower bound on the uncertainty.

Zero-shot on the stand-in, the randomised robust model: reliability (left: top label,
right: p(proton)) and confusion matrix.

![reliability on the stand-in](img/sim2real_reliability_standin.png)
![confusion matrix on the stand-in](img/sim2real_confusion_standin.png)

The recommended trees, zero-shot on the stand-in: reliability.

![reliability of the trees on the stand-in](img/sim2real_reliability_standin_trees.png)

## Where it still fails

{failures(s["train"])}

### Where the recommended trees lose proton F1

Measured 2026-12-05 with `.venv/bin/python scripts/error_budget.py RUN TRAIN_FILE
TS/sim/a TS/sim/b TS/sim/c --oracle-gain` (RUN: the recommended trees, the README command
on the 72,000 events of `scripts/training_size.py`'s `TS/sim`; TRAIN_FILE its training
file). On its own validation split (14,401 events, 3,551 protons) the run misses 231
protons and calls 302 other events proton: proton F1 0.926. For 0.98 the two together
would have to fall from 533 to about 145. Where they are, per simulated channel:

{BUDGET_CHANNEL_TABLE}

Three groups carry most of it.

- **The label's floor** (217 of the 533). A reaction counts as seen from 10 points of its
  products >= 30 mm from the beam line. 114 of the 201 missed elastic protons show fewer
  than 40 such points, and 103 of the 155 pile-ups called proton have a weaker reaction
  under 40 points: a clear track and a stub. Elastic protons under 40 points are missed
  18 % of the time (3-5 % above), pile-ups under 40 are called proton 9 % of the time
  (4-5 % above). Were every other error gone and these left, the proton F1 would be
  0.969: with this label the issue's 0.98 asks the model to read into the floor too.
  Scored on the 10,785 validation events whose every reaction shows >= 40 points (noise
  events all kept; the script's last lines) the run reaches 0.960: above the floor it is
  still short of 0.98 too.

{BUDGET_FLOOR_TABLE}

- **Forward protons against the alphas of 46Ar(p,alpha)43Cl** (64 misses, 29 of them
  also at the floor, and 44 false protons below 27 degrees). The reaction's Q is -0.75
  MeV, so at 4.17 MeV/u its alphas stay in a 26-degree cone with 97-248 MeV/c per unit
  charge, around the elastic proton's 174 MeV/c (by hand from the AME masses): the same
  angles and the same curvature, so neither the helix nor the elastic invariant parts
  them. 1,548 of the 1,658 (p,alpha) events have their first track within 27 degrees,
  and there the elastic protons are missed 10-17 % of the time against 2 % at 27-63
  degrees.

{BUDGET_FORWARD_TABLE}

  An alpha of the same rigidity loses about 16 times a proton's energy per mm (twice the
  charge at half the speed), but only a known charge scale shows it, and the randomised
  simulation draws the gain per event (x0.3-3), so the features read charges only
  relative to the event's own. What a known scale would be worth, on one-stage trees
  (`--oracle-gain`):

{BUDGET_ORACLE_TABLE}

  Validation here is a fifth of the run files held out, so that no per-file number is
  shared with training. With the simulated gain divided out the charge is worth +0.010
  proton F1; as simulated (one gain per event) +0.002. A real run has one gain
  (REAL_DATA.md): emulated by multiplying the gain-free charges by one log-uniform
  x0.3-3 per run file, the charge is worth +0.007 uncalibrated and +0.009 calibrated on
  the file's own elastic-proton band (the median charge per mm of its first tracks at
  27-63 degrees, where no (p,alpha) alpha reaches, with a log10 invariant of 2.3-2.6;
  16 such tracks in the median 100-event file). These fits move by about +-0.003 with
  their settings, so the last three rows are one level: what hides dE/dx is the gain
  drawn per event, and a calibration on the run's own protons gets what an exact gain
  would. The per-run quantile map of `charge_norm: quantile` would be the wrong one: it
  moves with the run's class mix (a run richer in protons has its charges pushed up),
  where the band holds protons whatever the mix (its first tracks are elastic protons
  for 56 %, pile-ups of elastic reactions 32 %, inelastic and evaporated protons 8 %,
  carbon recoils 4 %). Done since, at 72,000 events with the training simulation redone
  with one gain per run file: "A run's charge unit" (validation proton F1 0.918 ->
  0.938, the stand-in 0.92 -> 0.95). Nor does the geometry show
  the alphas' energy loss at this pressure: the pad-plane radius of a track's outer half
  over its inner half (free circle fits) overlaps between the two (log10 medians +0.03
  for elastic protons, +0.13 for the alphas; interquartile ranges -0.03 to 0.21 and -0.03
  to 0.30) and left the one-stage trees where they were (0.9146 -> 0.9130; exploration,
  code not kept).
- **Fusion-evaporation protons** (75 false protons): they are protons, from another
  reaction, and leave the elastic line only through their kinematics.

The rest: carbon recoils called other (90) and pile-ups called carbon (106) cost
macro-F1, not proton F1; near 90 degrees the protons are slow and short, and 39 of the 52
missed there show fewer than 40 points (counted with the floor above).

**With the run's charge unit** (the recommended command of "A run's charge unit", run
`v2` of `scripts/charge_unit.py`; `scripts/error_budget.py` on its own training file and
sims, 2026-12-05; its validation split is of the new simulation, 3,551 protons again):
proton F1 0.938, 165 missed and 284 false. The (p,alpha) alphas called proton fall from
44 to 10 and the forward misses below 27 degrees from 64 to 23; what is left is mostly
the label's floor (87 of the missed elastic protons show fewer than 40 points, 109 of
the pile-ups called proton have a weaker reaction that does), pile-ups (165 called
proton) and fusion-evaporation protons (100 called proton). On the 10,706 events whose
every reaction shows at least 40 points the proton F1 is 0.971 (0.960 before).

The trees' settings are not what limits them. In an exploration outside the application
(scikit-learn's one-stage trees on the same cached features and split, 127 leaves,
learning rate 0.1; the code was not kept) the validation proton F1 of 0.9146 moved by
-0.003 to +0.002 with 5 or 100 events per leaf at least, L2 regularisation 10, learning
rate 0.05, or half or a third of the features per split (scikit-learn's `max_features`).

A z calibration off by more than the training's +-20 mm and +-3 % costs nothing
measurable: the nominal simulation with `--set detector.z_offset_mm=60` (seed 311,
`--first-run 6100`) or `--set detector.z_scale=0.94` (seed 312, `--first-run 6200`),
500 events each, preprocessed as the recommended model's test sets and scored with
`evaluate --n-boot 1000`: proton F1 0.92 [0.88, 0.95] / macro-F1 0.95 and 0.93 [0.89,
0.96] / 0.95, against 0.93 [0.89, 0.96] / 0.95 on the nominal test set (2026-12-05). The
features read z only as differences; a scale moves them by its 6 %.

### What the trees' first track is

The feature model describes the largest off-axis clusters one by one (t1, t2, t3;
`data_prep.features`) as if the largest were the reaction's light product (the proton,
or the 12C recoil). `scripts/track_truth.py` follows each elastic proton and carbon event
through the same steps as the features (run beam axis, structured-noise rules, the
features' DBSCAN) and reads t1 against the simulator's per-point truth: what most of its
points are, for the events the trees call right and wrong:

{chr(10).join(truth)}

Where t1 is the scattered 46Ar (the heavy product, which can leave the 30 mm core after
a carbon scattering; compare the tilted detector's row with the nominal one) or a beam
ion off the core, the t1 features describe the wrong particle; the line above says how
much more often that happens in the wrong calls than in the right ones. The fix names
the tracks by what they are (a start on the axis at the vertex, charge per mm,
direction) rather than by size: the next section, in the recipe since 2026-12-04 (the
trees of the tables above read those names; t1 is still the largest cluster).

Which detector conditions put the 46Ar first, measured outside this script (2026-12-03):
150 carbon-only events per setting, the nominal preset with one stand-in setting at a
time, then the stand-in and the randomised preset (`simulate --config e15503b_nominal
--events 150 --seed 400 --set mix.proton=0 --set mix.other=0 [--set ...]`, first runs
4010-4070 in the order below, 4100 and 4200 for the last two; then `python
scripts/track_truth.py --no-model DIR ...`). Tilt: `detector.tilt_deg=6.2`; drift:
`detector.drift_velocity_cm_us=4.9`; shaping: `electronics.shaping_time_ns=1014`; one
point per pad: `electronics.point_formation=pad`; beam: `beam.divergence_deg=2.0
beam.spot_sigma_mm=5.0 beam.energy_spread=0.02`; gas: `gas.pressure_torr=19.9
detector.magnetic_field_t=1.63`. Share of carbon events whose t1 is mostly (light product /
heavy product / beam ions / noise / no cluster):

| setting | t1 mostly |
|---|---|
| nominal | 0.99 / 0.00 / 0.01 / 0.00 / 0.00 |
| tilt 6.2° (e15503b's E-B angle) | 0.89 / **0.11** / 0.01 / 0.00 / 0.00 |
| drift velocity 4.9 cm/us | 1.00 / 0.00 / 0.00 / 0.00 / 0.00 |
| shaping 1014 ns | 0.99 / 0.00 / 0.01 / 0.00 / 0.00 |
| one point per pad | 1.00 / 0.00 / 0.00 / 0.00 / 0.00 |
| wide beam (2°, 5 mm, 2 % spread) | 0.90 / **0.09** / 0.01 / 0.00 / 0.00 |
| pressure 19.9 Torr, field 1.63 T | 0.99 / 0.00 / 0.00 / 0.01 / 0.00 |
| stand-in (tilt and wide beam together) | 0.69 / **0.25** / 0.03 / 0.03 / 0.00 |
| randomised (the training preset) | 0.81 / 0.13 / 0.05 / 0.00 / 0.01 |

So the real detector's tilt and a wide beam each put the scattered 46Ar first in about a
tenth of the carbon events and together in a quarter; the training preset has them in an
eighth, so the trees see such events, but fewer of them than a tilted run with a poor
beam holds. Two feature-level tries (describing lines within 14° of the axis last; two
features marking them) moved no in-simulation score beyond its interval and were not
kept.

### Naming the tracks by what they are (`tracks_v3`: in the recipe since 2026-12-04)

Measured outside this script (2026-12-03, ~11 min on the shared 2 cores) with
`.venv/bin/python scripts/track_identity.py --train SIM/randomized SIM/randomized_1 ...
SIM/randomized_4 --train-features DATA/features/randomized6000.h5 --test NAME SIM/NAME
DATA/features/NAME.h5 ...` (SIM, DATA: this document's `--out`, whose feature files were
then `tracks_v2`, `configs/prep/features.yaml` alone; the nine test sets of the tables
above). A first model learns what each of an event's five largest off-axis
tracks is (light product, heavy product, beam ions, noise, other: the majority of its
points by the simulator's truth, after the features' own steps) from the track's rank,
points and the numbers the features give t1-t3; scikit-learn's trees, 31 leaves,
out-of-fold on the training events. The event trees (the recommended settings, 3 seeds
x 3-fold cross-validation on the same 6,000 randomised events, then fitted on all of
them) get beside the features each track's probability of being the light product, the
largest and its rank, t1's probabilities of being the heavy product or beam, and the
numbers of the track most likely to be the light product. Tracks named right: 0.68
out-of-fold on the training events, 0.63-0.74 on the test sets (0.63 on the stand-in and
one point per pad). Proton F1 / macro-F1 (mean over the 3 seeds; intervals on single
sets +-0.03-0.05):

{TRACK_NAMES_TABLE}

Macro-F1 rises on all nine sets (+0.006 to +0.022; mean over the eight sets other than
the stand-in 0.890 -> 0.901) and proton F1 on eight of nine (mean 0.851 -> 0.863;
randomised -0.003); each single difference is inside its set's interval, the agreement
of nine is not chance (all nine up: p = 0.002 by a sign test). Naming only the three
described tracks (the same script on the feature file's t1-t3 columns, a first version)
gave the cross-validation gain (0.847) but no test-set gain (proton F1 -0.016 to +0.013,
mean +0.000): the light product is often the fourth or fifth cluster. This is the next
step for the recommended model: a feature set with five tracks and a two-stage tree
model that keeps the track model beside the event trees in its checkpoint (the track
names need the simulator's per-point truth at training time only).

**Now in the application, as an option** (`preprocess --config configs/prep/features.yaml
--set features=tracks_v3`, then `train --config configs/train/gbt.yaml`: gbt on
`tracks_v3` names its tracks, `models.gbt.NamedTracksGBT`, docs/ARCHITECTURE.md).
Measured through the CLI (2026-12-03): the same 6,000 randomised events and test sets
preprocessed as `tracks_v3`, `train ... optim.balance=weights model.max_leaf_nodes=127
model.learning_rate=0.1 seed=S` for S = 0, 1, 2 (each seed its own validation split),
`evaluate`; against the recommended trees on the `tracks_v2` files with the same
settings and seeds. Proton F1 / macro-F1, mean over the three seeds:

{TRACK_NAMES_CLI_TABLE}

Macro-F1 rises on all nine sets, proton F1 on eight (threshold 60: -0.009); the mean over
the eight sets other than the stand-in moves 0.849 -> 0.856 / 0.888 -> 0.898, the
stand-in 0.830 -> 0.848 / 0.832 -> 0.865. Training reads the source run files again for
their per-point truth (~40 s for 6,000 events), so it needs simulated run files, as
detector augmentation does.

Both adaptation routes refit these trees too. A target run has no truth to name its
tracks by, so a refit keeps the run's track trees and fits new event trees: on the
simulated training events named as at training (out of fold, `trees_adapt
.source_inputs`) plus the target's events named by the kept track trees. On the stand-in
(seed 0, the settings and label pools of the adaptation table above; proton F1 [95 %
interval] / 3-class macro-F1; measured 2026-12-03 with the seed-0 `tracks_v3` run above,
V3 = the `tracks_v3` files of the sets, S = this script's `--out`):

```bash
attpc-classify preprocess S/sim/standin_labelsN --out V3/standin_labelsN.h5 \\
    --config configs/prep/features.yaml --set features=tracks_v3        # N = 250, 1000
attpc-classify adapt RUN --data V3/standin.h5 --out self --rounds 3
attpc-classify train --config configs/train/gbt.yaml --data V3/standin_labelsN.h5 \\
    --out ftN optim.balance=weights model.max_leaf_nodes=127 model.learning_rate=0.1 \\
    model.init=run:RUN model.target_share=0.5
attpc-classify evaluate self --data V3/standin.h5 --out self/eval/standin   # and ftN
```

{TRACK_NAMES_REFIT_TABLE}

The named trees stay ahead after every route (+0.008 to +0.03 proton F1, +0.03 macro-F1),
each gain inside the intervals; as for `tracks_v2`, 250 labels move nothing and
self-training little, and 1,000 labels give the most (0.878, short of the issue's 0.95).
A refit costs 2.5-5.5 min on the shared 2 cores (the training events' names are made out
of fold again from the run files). The other tables of this section and the ones before
it that name no feature set are `tracks_v2` (the tables this script measures read the
recipe's features since the 14th session); at 72,000 events the named trees became the
README's recommended model (below).

Does the gain grow with the training set? The recommended model trains on 72,000 events,
too many to simulate again in a session, so the same comparison was run at 2,000 and
4,000 of the 6,000 events (the first one and three of this document's randomised
simulations, preprocessed both ways; `train ... optim.balance=weights
model.max_leaf_nodes=127 model.learning_rate=0.1`, seed 0; `evaluate` on the nine test
sets, one call per run, `--n-boot 200`). 6,000 is this script's trees of then
(`tracks_v2`) and the seed-0 `tracks_v3` run above. Proton F1 / macro-F1, each one
training:

{TRACK_NAMES_SIZE_TABLE}

The named tracks help on the stand-in's macro-F1 at every size (+0.03, +0.02, +0.04).
Off the stand-in the change is -0.015 to +0.001 in proton F1 and -0.003 to +0.010 in
macro-F1. The validation gain shrinks as the training set grows: +0.023, +0.019, +0.008.
That suggested the second stage matters less with more events. At 72,000 events it does
not shrink further (measured 2026-12-04 with `scripts/training_size.py --out TS --v3`, the
README's training and test sets preprocessed both ways, 127 leaves): validation macro-F1
0.908 -> 0.923, and on all ten test sets proton F1 +0.00 to +0.02 and macro-F1 +0.00 to
+0.03, never lower (table in docs/recommended-model.md). Chosen on the validation split,
the named trees are now the recommended model; training takes ~25 min there instead of
half a minute.

## Choosing the proton cut on a run with an unknown class mix

p(proton) is calibrated on the simulated class mix (the ECE column says how well it
transfers; a class-balanced model's on equal classes). Two ways to estimate a run's mix
without its labels, measured (`scripts/prior_shift.py`, called by this script: the true
mix, the fractions of the argmax calls, the EM estimate of Saerens, Latinne &
Decaestecker 2002 started from the training prior, and the scores of the argmax calls
before and after that EM correction of the probabilities):

{chr(10).join(prior)}

EM trusts the probabilities to be calibrated on the run; where they are not (the ECE
column), it amplifies the miscalibration and can drive a class towards zero. So
read the class fractions `adapt` prints (or count `classify`'s calls) as the estimate of
the run's mix, unless the rows above say otherwise when you rerun them. To choose the
cut: (1) estimate the mix; (2) if the estimated proton fraction pi_run differs from the
one the probabilities stand for, pi_sim (1/3 for a class-balanced model), correct them by
Bayes' rule, p' = p pi_run/pi_sim / (p pi_run/pi_sim + (1 - p)(1 - pi_run)/(1 -
pi_sim)), before cutting; (3) cut on `p_proton` from `classify` for the purity you need,
and check the cut on a few hundred hand-labelled events (the rows with labels above show
what 250 labels buy).

## The demo's models and the recommended model

Measured outside this script, to choose them (on the validation split and the knob
extremes; the stand-in is a check): the first 2,000 events of the 4,000 randomised ones
with the beam knobs (`simulate --config e15503b_randomized --events 4000 --seed 21
--first-run 9000`, run files 9000-9019; 1,600 train / 400 validation, seed 0), one image
file for every model (`preprocess --config configs/prep/robust.yaml --set
structured_noise=rules --set features=tracks_v1`, or without the cleaning where the row
says so), the test sets of this document's knobs and nominal test preprocessed the same
way with `--reference` the training file, and a fresh stand-in sample (`simulate --config
e15503b_standin --events 400 --seed 99 --first-run 500`); CNN = `cnn_small` at width 16,
batch 32; `evaluate --n-boot 200`. Proton F1 / macro-F1:

{DEMO_TABLE}

The trees lead the CNN on validation and on every knob in macro-F1 and cost seconds; the
structured-noise cleaning is what lifts them (validation 0.643 -> 0.714, knob macro-F1
0.739 -> 0.783 on average), while it costs the CNN a little (validation 0.603 -> 0.588,
knob macro-F1 0.657 -> 0.637, knob proton F1 0.694 -> 0.689; one seed, within the
intervals); more epochs help the CNN (10 -> 20: validation +0.024), and the ViT trails
both by 0.1-0.2 at this size. So the demo trains the CNN and the 15-leaf balanced trees
(above `gbt.yaml`'s settings on all 7 knob and nominal sets in proton F1, two of them by
less than 0.01, at a validation macro-F1 0.018 lower here and 0.019 higher with 3,200
training events) on one cleaned file with features, and the ViT (the demo shows each
model family). At equal training data of 4,000 events the trees are
also the README's recommended model (docs/recommended-model.md: validation macro-F1
0.779 against the CNN's 0.636, and ahead on every knob).

**The trees' features at the demo's size** (2026-12-04, `.venv/bin/python
scripts/demo_features.py --pool training_size/sim/c --check
standin=training_size/sim/standin`, ~25 min). The recommended model's two feature
options (named tracks, `features: tracks_v3`; track clustering with z at half weight,
`cluster_z_scale: 0.5`) were chosen at 72,000 events; the demo trains on 2,000. Five
disjoint training sets of 2,000 randomised events (20 run files each of
`scripts/training_size.py`'s pool), one common evaluation set of 4,000 other randomised
events, the demo's preprocessing (`configs/prep/robust.yaml`, `structured_noise=rules`,
`--reference` the training file) and trees (15 leaves, balanced, learning rate 0.1, seed
0). Mean over the five (range):

{DEMO_FEATURES_TABLE}

Both options help at this size too, and together most: +0.036 proton F1 and +0.047
macro-F1 over `tracks_v2` on average, ahead on each of the five training sets in both
(+0.023 and +0.026 when first measured, before both reactions of a pile-up were named
alike and the light-product counts were added: "Both reactions of a pile-up named
alike", "How many tracks are light products").
So the demo preprocessed with `features: tracks_v3` and `cluster_z_scale: 0.5` (since
2026-12-06 `tracks_v6`: "Two light tracks: one particle or two reactions"). The
stand-in sample of `scripts/training_size.py` (2,000 events, seed 99), scored by the same
models and not used for the choice, agrees in the mean (0.801 -> 0.821 proton F1,
0.793 -> 0.854 macro-F1) but shows how much one training set of 2,000 moves the score
there: proton F1 0.807-0.836 across the five sets with the chosen features. The price is
time: naming the tracks adds ~25 s to the demo's training stage (the trees now train in
~30 s instead of ~8 s; docs/demo.md).

The last row is a new option of the named-track trees, `model.track_early_stopping`
(default off). The track trees run 300 boosting iterations (1,500 trees for five kinds)
whatever the number of tracks. With the option each track fit (the three out-of-fold ones
and the last) stops where the loss on the tracks of a seeded tenth of its events, held
out whole, stops falling. At the demo's size it trails the fixed 300 a little (-0.005
proton F1, -0.003 macro-F1 on validation, ahead on one set of five in each; the
stand-in check 0.815 / 0.853 against 0.821 / 0.854; -0.001 and -0.002 before the pile-up
names) with 28-43 iterations, eight times fewer track trees, so training and `classify`
cost less. At
72,000 events (the recommended command plus `model.track_early_stopping=true`, test files
of "Clustering that keeps a steep track whole", measured outside this script with
`scripts/validation_scores.py` and `evaluate --n-boot 1000`) it is level again:
validation proton F1 0.927 -> 0.925, macro-F1 0.9325 -> 0.9318, proton F1 on the ten test
sets -0.014 to +0.017 (stand-in +0.005, randomised -0.014), but the track trees stop at
211 iterations, so the saving shrinks to 1,055 track trees instead of 1,500 (`classify`
of the 72,000 training events: 889 against 654 events/s; measured before the pile-up
names and the light-product counts). The option stays off by default and in the
recommended model, which keeps the 300 iterations its numbers were measured with. The demo
turns it on since 2026-12-05 (fourth session), to keep its 4 minutes as the shared host
slowed: its trees then trained in 17 s instead of 27 s, their proton F1 on the demo's own
300 test events 0.847 against 0.851 (docs/demo.md).

**The run's charge unit at the demo's size** (2026-12-05, `.venv/bin/python
scripts/demo_features.py --pool charge_unit/sim/c --out DF --check
standin=charge_unit/sim/standin --variants "tracks_v3 (named), z x0.5" "tracks_v3
(named), z x0.5, the run's charge unit" "tracks_v3 (named), z x0.5, the run's charge
unit, hidden for 10 % of the runs"`; the pool simulated with one gain, threshold and gas
density per run file, "A run's charge unit"). Mean over the five training sets (per set):

{DEMO_UNIT_TABLE}

The unit helps at 2,000 events as at 72,000: +0.043 proton F1 and +0.025 macro-F1, ahead
on each of the five sets; with a tenth of the runs hidden +0.038 and +0.022, the price of
not collapsing on a run without a unit. So the demo preprocesses with
`charge_calibration: proton_band` and trains its trees with `data.unit_dropout=0.1`, as
the recommended model.

**How many events the demo's trees learn from** (9th session of 2026-12-06,
`.venv/bin/python scripts/demo_features.py --pool K72/c --check standin=STANDIN
[--files N] --variants ...`, as in "Which two light tracks": five training sets of N run
files, 20 unless given, one evaluation set of 4,000 events for all; ~10 min per variant
beside other jobs). The trees stop early on a held-out share of their training file, a
fifth by default. Mean over the five training sets (per set):

{DEMO_SIZE_TABLE}

A tenth for validation gives the trees 150 more events to learn from and lifts them on
each of the five sets (+0.007 proton F1, +0.007 macro-F1); a twentieth makes the early
stop noisier and gains less on validation (+0.003, +0.006). So the demo's trees hold out
a tenth since the 9th session (`demo_t`; the networks keep a fifth). The stand-in check
moves little (0.888 -> 0.890). The trees' settings are not what limits them here: with a
tenth for validation, learning rate 0.05 gives 0.865 / 0.878 and 31 leaves 0.862 /
0.876 (the variants "learning rate 0.05" and "31 leaves"; stand-in check 0.890 and
0.889). More simulated events help more: +0.015 proton F1 at
3,000 and +0.019 at 4,000, the stand-in check 0.888 -> 0.900 -> 0.907. But they cost
the simulation's time: `demo --events 3000` took 212 s against 148 s, within 30 s of the
4 minutes on a host that has run 1.5x slower for hours (docs/demo.md), so the demo
stayed at 2,000 events. The 10th session's transport shortcut (docs/simulation.md, "The
same events with less overhead") took the demo's simulation from 70 to 42 s, so the demo
now simulates 3,000 (`demo_v`: 141 s, its networks at 7 epochs, about the optimiser
steps of 10 at 2,000). At 3,000 a tenth for validation still beats a fifth on each of the
five sets (`--files 30` with the variants "the widest light pair instead" and "a tenth
of the training events for validation": +0.004 proton F1, +0.006 macro-F1), and the demo
keeps it; against `demo_t`'s recipe at 2,000 it gains 0.012 proton F1 and 0.009 macro-F1
on validation, 0.006 and 0.004 on the stand-in check. On the README's eleven test sets
the 3-class trees gain 0.008 in the mean of the ten besides the own test, the binary
trees 0.017 (docs/demo.md). At 4,500 events (12th session) they gain 0.012 more
(0.010 binary) and at 6,000 nothing more, but the whole demo then takes 198-232 s: it
stays at 3,000 (docs/demo.md, "More events for the demo's trees: measured, not
adopted").

**Points placed another way** (10th session). docs/demo.md, has the demo's models
(`demo_w`) on copies of the stand-in whose points another analysis chain could have
placed otherwise (`scripts/transform_runs.py`): the drift velocity off by 10-20 %, z moved
by 60 mm, x mirrored, the pad plane turned by 30°, every charge x10 or x0.1. The trees
keep 0.87-0.90 proton F1 (0.90 as simulated): the drift scale costs them 0.02-0.03, the
rest nothing; the networks move by 0.03 at most.

## Commands

In the order they ran; OUT is the `--out` directory ({args.out} here).

```
{chr(10).join(dict.fromkeys(c.replace(out_dir, "OUT") for c in COMMANDS))}
```
"""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
