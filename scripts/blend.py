"""Two runs' probabilities blended: is a second model worth keeping beside the first?

    .venv/bin/python scripts/blend.py RUN_A RUN_B TRAIN_FILE [NAME=FILE ...] [--n-boot 1000]

Both runs classify TRAIN_FILE (the file both trained on, so both held out the same
validation events: checked) and each NAME=FILE (an image file both can read: one file
that carries the features and the images). The weight ``w`` of run A in
``w p_A + (1 - w) p_B`` is chosen on the validation events alone (the best proton F1 of
the argmax call on a grid of 0.30-1.00), then the blend is scored on each test set
against run A alone, the difference bootstrapped over the same events (paired, as
scripts/paired_f1.py). A blank event (NaN probabilities, an image model's empty image)
counts as uniform for that model in the blend, and as "other" for it alone (`classify`
calls it empty: no proton). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from label_shortcuts import scores  # proton F1 and 3-class macro-F1 of calls
from paired_f1 import events, held_out, paired

from attpc_classify.predict import read_predictions

WEIGHTS = np.round(np.arange(0.30, 1.0001, 0.05), 2)
OTHER = 2  # the class index of "other"


def probabilities(run: Path, data: Path) -> np.ndarray:
    """``(B, 3)`` class probabilities `classify` gives each event of the image file
    ``data`` (NaN rows: blank events)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "calls.csv"
        cmd = [sys.executable, "-m", "attpc_classify.cli", "classify", run, data, "--out", out]
        subprocess.run([*cmd, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        found = read_predictions(out)
    return np.column_stack([found[c] for c in ("p_proton", "p_carbon", "p_other")]).astype(float)


def alone(p: np.ndarray) -> np.ndarray:
    """One model's argmax call, "other" for a blank (NaN) row."""
    return np.where(np.isnan(p).any(axis=1), OTHER, np.nan_to_num(p).argmax(axis=1))


def blended(p_a: np.ndarray, p_b: np.ndarray, w: float) -> np.ndarray:
    """The argmax call of ``w p_a + (1 - w) p_b``; a NaN row counts as uniform."""
    uniform = 1.0 / p_a.shape[1]
    mix = w * np.nan_to_num(p_a, nan=uniform) + (1.0 - w) * np.nan_to_num(p_b, nan=uniform)
    return mix.argmax(axis=1)


def choose_weight(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> tuple[float, list]:
    """The weight of A on `WEIGHTS` with the best proton F1 of the blend on ``y`` (the
    largest such weight on a tie: the blend stays nearest to A alone), and every
    weight's (proton F1, macro-F1)."""
    table = [scores(y, blended(p_a, p_b, w)) for w in WEIGHTS]
    best = max(range(len(WEIGHTS)), key=lambda k: (round(table[k][0], 12), WEIGHTS[k]))
    return float(WEIGHTS[best]), table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("train_file", type=Path)
    ap.add_argument("tests", nargs="*", help="NAME=FILE")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    y = events(args.train_file)[0]
    val = held_out(args.run_a, y)
    if not np.array_equal(val, held_out(args.run_b, y)):
        raise SystemExit("error: the two runs held out different validation events")
    p_a = probabilities(args.run_a, args.train_file)[val]
    p_b = probabilities(args.run_b, args.train_file)[val]
    w, table = choose_weight(y[val], p_a, p_b)
    print(f"validation ({len(val)} events): proton F1 A {scores(y[val], alone(p_a))[0]:.4f}, "
          f"B {scores(y[val], alone(p_b))[0]:.4f}; weight of A chosen "
          f"{w:.2f}: blend {table[list(WEIGHTS).index(w)][0]:.4f}", flush=True)  # fmt: skip
    out = {"weight_a": w, "validation": dict(zip(map(str, WEIGHTS), table, strict=True))}
    for item in args.tests:
        name, path = item.split("=", 1)
        y_t = events(Path(path))[0]
        keep = y_t >= 0
        p_a, p_b = probabilities(args.run_a, Path(path)), probabilities(args.run_b, Path(path))
        a, b = alone(p_a)[keep], blended(p_a, p_b, w)[keep]
        d = paired(y_t[keep], a, b, args.n_boot)
        d["b_alone"] = round(scores(y_t[keep], alone(p_b)[keep])[0], 4)
        print(f"{name}: {d['events']} events, proton F1 A {d['a'][0]:.4f}, B alone "
              f"{d['b_alone']:.4f}, blend {d['b'][0]:.4f}, blend - A {d['proton_f1'][0]:+.4f} "
              f"[{d['proton_f1'][1]:+.4f}, {d['proton_f1'][2]:+.4f}]", flush=True)  # fmt: skip
        out[name] = d
    print(json.dumps(out))


if __name__ == "__main__":
    main()
