"""Classify the public real AT-TPC point clouds: does the pipeline read them, and what
does the health check say?

    git clone https://github.com/ATTPC/libattpc && git -C libattpc checkout develop
    .venv/bin/python scripts/real_clouds.py libattpc/cleaning/test/data RUN [RUN ...] \\
        --out real_clouds [--z-scale 0.556]

The nine PCL ASCII files there (fields x y z time intensity) are events of a 2017 run of
another experiment than e15503b, with a drift of ~1.8 m where e15503b's is 1 m; the
repository has no licence file, so they are read where they were fetched, not copied.
They are written, unchanged or with z times ``--z-scale``, as one ATTPCROOT-layout HDF5
file (``/Event_[n]/HitArray``: x, y, z, t, A; no pad ids, so each point gets the pad at
its x, y) under ``--out``, then each RUN (a ``train`` run directory) classifies it with
``attpc-classify classify``, which prints the file's charge unit and its health against
``RUN/health.json``. No labels: the calls are shown, not scored. Last line: JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

HIT = np.dtype([("x", "f8"), ("y", "f8"), ("z", "f8"), ("t", "i4"), ("A", "f8")])


def read_pcd(path: Path) -> np.ndarray:
    """x, y, z, time, intensity of a PCL ASCII file as (N, 5)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    return np.loadtxt(lines[start:], ndmin=2)


def write_hits(paths: list[Path], out: Path, z_scale: float) -> None:
    """The clouds as ATTPCROOT HitArrays, event ids in file order."""
    with h5py.File(out, "w") as f:
        for event_id, path in enumerate(paths):
            cloud = read_pcd(path)
            hits = np.zeros(len(cloud), HIT)
            hits["x"], hits["y"], hits["t"], hits["A"] = (
                cloud[:, 0],
                cloud[:, 1],
                cloud[:, 3],
                cloud[:, 4],
            )
            hits["z"] = cloud[:, 2] * z_scale
            f.create_group(f"Event_[{event_id}]").create_dataset("HitArray", data=hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcd_dir", type=Path)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("real_clouds"))
    ap.add_argument("--z-scale", type=float, default=1.0, help="z times this (1 m / 1.8 m: 0.556)")
    args = ap.parse_args()
    paths = sorted(args.pcd_dir.glob("*.pcd"))
    if not paths:
        raise SystemExit(f"error: {args.pcd_dir}: no *.pcd files")
    args.out.mkdir(parents=True, exist_ok=True)
    hits = args.out / f"libattpc_z{args.z_scale:g}.h5"
    write_hits(paths, hits, args.z_scale)
    calls: dict[str, dict[str, str]] = {}
    for run in args.runs:
        out = args.out / f"calls_{run.name}_z{args.z_scale:g}.csv"
        print(f"== {run}", flush=True)
        subprocess.run([sys.executable, "-m", "attpc_classify.cli", "classify", run, hits,
                        "--out", out, "--run", "2017", "--quiet"], check=True)  # fmt: skip
        with open(out, newline="") as fh:
            rows = list(csv.DictReader(fh))
        calls[run.name] = {
            paths[int(r["event_id"])].stem: f"{r['label']} {float(r['p_proton'] or 'nan'):.2f}"
            for r in rows
        }
    print("| event | " + " | ".join(calls) + " |")
    print("|---|" + "---|" * len(calls))
    for path in paths:
        print(f"| {path.stem} | " + " | ".join(c[path.stem] for c in calls.values()) + " |")
    print(json.dumps({"z_scale": args.z_scale, "calls": calls}))


if __name__ == "__main__":
    main()
