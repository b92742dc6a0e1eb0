"""Validation table of docs/simulation.md: simulated classes next to real point clouds.

    .venv/bin/python scripts/sim_validation.py SIM_DIR [SIM_DIR ...] [--pcd DIR]

Prints one Markdown row per class of each simulation directory (run files of
``attpc-classify simulate``) and, with ``--pcd``, one row for real events given as PCL
ASCII files (fields x y z time intensity, e.g. ATTPC/libattpc cleaning/test/data/*.pcd;
read where they are, not copied). All label-free columns use
`data_prep.sim.stats.cloud_measures`, so both sides are measured the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from data_prep.sim.stats import class_statistics, cloud_measures

COLUMNS = (
    "points/event",
    "points/track",
    "points/pad",
    "ADC/mm (track)",
    "median ADC",
    "stray hits",
    "axis points (r<30 mm)",
    "beam points",
)


def read_pcd(path: Path) -> np.ndarray:
    """x, y, z, intensity of a PCL ASCII file as (N, 4)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    data = np.loadtxt(lines[start:], ndmin=2)
    return data[:, [0, 1, 2, 4]]


def fmt(value: float, digits: int = 0) -> str:
    return "-" if not np.isfinite(value) else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sims", nargs="+", type=Path)
    parser.add_argument("--pcd", type=Path, help="directory of real *.pcd point clouds")
    args = parser.parse_args()
    print("| data | class | events | " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * (3 + len(COLUMNS)))
    for sim in args.sims:
        stats = class_statistics(sorted(sim.glob("run_*.h5")))
        for name, s in stats.items():
            cells = [
                fmt(s["median_points"]),
                fmt(s["median_track_points"]),
                fmt(s["median_points_per_pad"], 2),
                fmt(s["median_charge_per_mm"]),
                fmt(s["median_charge"]),
                fmt(s["median_isolated"]),
                fmt(s["median_axis_points"]),
                fmt(s["mean_beam_points"], 1),
            ]
            print(f"| {sim.name} | {name} | {s['events']} | " + " | ".join(cells) + " |")
    if args.pcd:
        measures = [cloud_measures(read_pcd(p)) for p in sorted(args.pcd.glob("*.pcd"))]
        med = {k: float(np.median([m[k] for m in measures])) for k in measures[0]}
        lo = {k: float(np.min([m[k] for m in measures])) for k in measures[0]}
        hi = {k: float(np.max([m[k] for m in measures])) for k in measures[0]}

        def span(key: str, digits: int = 0) -> str:
            return f"{fmt(med[key], digits)} ({fmt(lo[key], digits)}-{fmt(hi[key], digits)})"

        cells = [span("n_points"), "-", span("points_per_pad", 2), "-",
                 span("median_charge"), span("isolated"), span("axis_points"), "-"]  # fmt: skip
        print(f"| real ({args.pcd.name}) | all | {len(measures)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
