"""Proton F1 and macro-F1 of a run on its own validation split.

    .venv/bin/python scripts/validation_scores.py RUN TRAIN_FILE [--seed 0]

`train` keeps only the validation macro-F1 (metrics.jsonl); this classifies TRAIN_FILE
(the run's training image file) with the run and scores the events of the split `train`
held out: `attpc_classify.data.stratified_split` of the file's labels with the run's
seed and 20 % (the default `data.val_fraction`). docs/sim-to-real.md uses it for the
validation proton F1 of the feature variants.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from label_shortcuts import scores  # proton F1 and 3-class macro-F1 of calls

from attpc_classify.data import stratified_split

CLASSES = ("proton", "carbon", "other")


def called(run: Path, data: Path) -> np.ndarray:
    """The class index `classify` gives each event of the image file ``data``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "calls.csv"
        subprocess.run([sys.executable, "-m", "attpc_classify.cli", "classify", run, data,
                        "--out", out, "--quiet"], check=True)  # fmt: skip
        with open(out, newline="") as fh:
            return np.array([CLASSES.index(r["label"]) for r in csv.DictReader(fh)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("train_file", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (its split)")
    args = ap.parse_args()
    with h5py.File(args.train_file, "r") as f:
        labels = f["label"][()]
    calls = called(args.run, args.train_file)
    _, val = stratified_split(labels, 0.2, np.random.default_rng(args.seed))
    proton, macro = scores(labels[val], calls[val])
    print(f"{args.run}: {len(val)} validation events, proton F1 {proton:.4f}, macro-F1 {macro:.4f}")


if __name__ == "__main__":
    main()
