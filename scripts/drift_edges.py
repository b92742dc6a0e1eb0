"""Where the drift window's two edges fall in each run file: could z be calibrated per run?

    .venv/bin/python scripts/drift_edges.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--quantile 0.1]

A run's points fill the drift volume from the window (z = 0 in our frame, the beam's way
in) to the micromegas (z = 1,000 mm). A drift velocity off by a factor s stretches the
distance from the micromegas by s, so the window edge moves and the span between the
two edges scales by s: the span of a run against the training files' would give s, as
Spyral's window and micromegas time buckets give its z. This prints, per set of
Spyral-format run files, the median window edge (the ``--quantile`` per cent of all the
points' z in each file), micromegas edge (100 minus that) and span, and the span's
range over the files. Whether the span measures the drift alone is the question: the
electronics (point formation, shaping) move the edges too. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np


def file_edges(path: Path, quantile: float) -> tuple[float, float]:
    """The window and micromegas edges (mm) of one run file: quantiles of all its z."""
    with h5py.File(path, "r") as f:
        clouds = f["cloud"]
        z = np.concatenate([clouds[k][:, 2] for k in clouds if k.startswith("cloud_")])
    low, high = np.percentile(z, [quantile, 100.0 - quantile])
    return float(low), float(high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", metavar="NAME=RUN_DIR")
    ap.add_argument("--quantile", type=float, default=0.1, help="edge quantile, per cent")
    args = ap.parse_args()
    columns = ("run files", "files", "window edge (mm)", "micromegas edge (mm)", "span (mm)",
               "span over the files")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    out = {}
    for item in args.sets:
        name, _, folder = item.partition("=")
        edges = np.array([file_edges(p, args.quantile) for p in sorted(Path(folder).glob("*.h5"))])
        spans = edges[:, 1] - edges[:, 0]
        low, high, span = np.median(edges[:, 0]), np.median(edges[:, 1]), np.median(spans)
        print(f"| {name} | {len(edges)} | {low:.0f} | {high:.0f} | {span:.0f} | "
              f"{spans.min():.0f}-{spans.max():.0f} |")  # fmt: skip
        out[name] = {"window": round(low, 1), "micromegas": round(high, 1), "span": round(span, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
