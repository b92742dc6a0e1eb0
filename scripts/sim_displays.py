"""Event displays of docs/simulation.md: one event per class side by side, two views.

    .venv/bin/python scripts/sim_displays.py SIM_DIR OUT.png [--title TEXT] [--skip N]

Takes the first event of each class (after skipping N of each) from the run files of
``attpc-classify simulate`` and draws the pad plane (x-y) above the side view (z-y);
reaction points, beam-axis points and noise hits in different colours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from data_prep.events import CLASS_NAMES


def first_events(sim: Path, skip: int) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Class name -> (points, per-point labels, channel) of one event each."""
    found: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    seen = dict.fromkeys(CLASS_NAMES, 0)
    for path in sorted(sim.glob("run_*.h5")):
        with h5py.File(path) as f:
            for row in f["events"][()]:
                name = CLASS_NAMES[int(row["label"])]
                if name in found or row["channel"] == b"noise":
                    continue
                seen[name] += 1
                if seen[name] > skip:
                    n = int(row["event"])
                    found[name] = (f[f"cloud/cloud_{n}"][()], f[f"cloud/labels_{n}"][()],
                                   row["channel"].decode())  # fmt: skip
        if len(found) == len(CLASS_NAMES):
            break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sim", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", default="")
    parser.add_argument("--skip", type=int, default=0)
    args = parser.parse_args()
    events = first_events(args.sim, args.skip)
    fig, axes = plt.subplots(2, len(CLASS_NAMES), figsize=(10, 6.4), dpi=72)
    kinds = ((lambda lab: lab >= 0, "reaction", "tab:blue"),
             (lambda lab: lab == -2, "beam ions", "tab:red"),
             (lambda lab: lab == -1, "noise", "0.6"))  # fmt: skip
    for col, name in enumerate(CLASS_NAMES):
        points, labels, channel = events[name]
        for select, what, colour in kinds:
            p = points[select(labels)]
            axes[0, col].scatter(p[:, 0], p[:, 1], s=3, c=colour, label=what)
            axes[1, col].scatter(p[:, 2], p[:, 1], s=3, c=colour)
        axes[0, col].set_title(f"{name} ({channel}, {len(points)} points)", fontsize=9)
        axes[0, col].add_patch(plt.Circle((0, 0), 19.7, fill=False, ls=":", color="k"))
        axes[0, col].set(xlim=(-280, 280), ylim=(-280, 280), aspect="equal")
        axes[1, col].set(xlim=(0, 1000), ylim=(-280, 280))
        axes[0, col].set_xlabel("x [mm]", fontsize=8)
        axes[1, col].set_xlabel("z [mm] (window 0, micromegas 1000)", fontsize=8)
    axes[0, 0].set_ylabel("y [mm]")
    axes[1, 0].set_ylabel("y [mm]")
    axes[0, 0].legend(fontsize=7, loc="lower left", markerscale=2)
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
