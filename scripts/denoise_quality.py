"""Noise cleaning against the simulator's per-point truth (docs/sim-to-real.md).

    .venv/bin/python scripts/denoise_quality.py SIM_DIR [SIM_DIR ...]

For each simulated run directory and each cleaning of ``configs/prep/robust.yaml`` (its
DBSCAN, scikit-learn's HDBSCAN instead, the beam mask alone): the fraction of noise
points removed, of signal points (neither noise nor beam) kept, the events whose signal
is removed entirely (by channel), and the time per event.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from attpc_classify.config import load_config
from data_prep.build import expand_inputs
from data_prep.images import ImageConfig, clean_points
from data_prep.readers import open_events

REPO = Path(__file__).resolve().parents[1]
HEADER = (
    "| run | cleaning | noise points removed | signal points kept | events with all signal "
    "removed | ms / event |\n|---|---|---|---|---|---|"
)


def cleanings() -> dict[str, ImageConfig]:
    base = replace(load_config(ImageConfig, REPO / "configs/prep/robust.yaml", []),
                   charge_norm="none")  # fmt: skip
    return {"dbscan": replace(base, denoise="dbscan"), "hdbscan": replace(base, denoise="hdbscan"),
            "beam mask only": replace(base, denoise="none")}  # fmt: skip


def measure(sim_dir: str) -> list[str]:
    files = sorted(expand_inputs([sim_dir]))
    with h5py.File(files[0]) as f:
        noise_label, beam_label = (
            int(f.attrs["noise_point_label"]),
            int(f.attrs["beam_point_label"]),
        )
    events, channels = [], []
    for path in files:
        with h5py.File(path) as f:
            channels += [c.decode() for c in f["events"]["channel"]]
        with open_events(path) as reader:
            events += list(reader)
    counts = np.array([len(e.points) for e in events])
    points = np.concatenate([e.points[:, :4] for e in events])
    truth = np.concatenate([e.point_labels for e in events])
    event = np.repeat(np.arange(len(events)), counts)
    noise, signal = truth == noise_label, (truth != noise_label) & (truth != beam_label)
    lines = []
    for name, cfg in cleanings().items():
        tagged = points.copy()
        tagged[:, 3] = np.arange(1, len(points) + 1)  # the charge column carries the index
        t0 = time.perf_counter()
        kept_points, _ = clean_points(tagged, counts, cfg)
        ms = (time.perf_counter() - t0) / len(events) * 1e3
        kept = np.zeros(len(points), bool)
        kept[kept_points[:, 3].astype(np.int64) - 1] = True
        n_sig = np.bincount(event[signal], minlength=len(events))
        n_kept = np.bincount(event[signal & kept], minlength=len(events))
        lost: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for channel, s, k in zip(channels, n_sig, n_kept, strict=True):
            if s:
                lost[channel][0] += int(k == 0)
                lost[channel][1] += 1
        gone = ", ".join(f"{c} {a}/{b}" for c, (a, b) in sorted(lost.items()) if a)
        lines.append(
            f"| {Path(sim_dir).name} | {name} | {1 - kept[noise].mean():.3f} | "
            f"{kept[signal].mean():.3f} | {sum(a for a, _ in lost.values())}/"
            f"{sum(b for _, b in lost.values())}{f' ({gone})' if gone else ''} | {ms:.1f} |"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim_dirs", nargs="+")
    args = ap.parse_args()
    print(HEADER)
    for d in args.sim_dirs:
        print("\n".join(measure(d)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
