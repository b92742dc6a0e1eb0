"""Copies of simulated run files as another analysis chain would place their points.

    .venv/bin/python scripts/transform_runs.py SIM_DIR --out OUT_DIR
        [--drift-scale S] [--z-offset-mm D] [--mirror-x] [--rotate-deg A] [--charge-scale C]

Every ``cloud/cloud_<n>`` of each ``run_*.h5`` of SIM_DIR is rewritten in a copy under
OUT_DIR; nothing else changes (labels, attributes). In this order:
- ``--drift-scale S``: a drift velocity off by S places each point at S times its drift
  distance from the micromegas (z = ``--length-mm``, 1,000 mm in e15503b):
  z' = L - S (L - z). The randomised simulation trains on 0.97-1.03 (`detector.z_scale`).
- ``--z-offset-mm D``: z' = z + D, a trigger delay or micromegas time the analysis
  places D mm off (the randomised simulation trains on +-20 mm, `detector.z_offset_mm`).
- ``--mirror-x``: x -> -x, the pad plane seen from the other side, or the field reversed:
  every track curls the other way (docs/ARCHITECTURE.md, frames).
- ``--rotate-deg A``: the pad plane turned by A degrees about the detector axis.
- ``--charge-scale C``: every point's charge (column 3, and the integral, column 4, of
  Spyral's layout) times C: another gain, or a chain that reads the integral as charge.
docs/demo.md, has the demo's models on such copies of the stand-in.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import h5py
import numpy as np


def transform(points: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """``points`` (N, 4+) x, y, z [mm], ... moved as ``args`` say."""
    out = points.copy()
    if args.drift_scale != 1.0:  # (a no-op would still round z)
        out[:, 2] = args.length_mm - args.drift_scale * (args.length_mm - out[:, 2])
    if args.z_offset_mm:
        out[:, 2] += args.z_offset_mm
    if args.mirror_x:
        out[:, 0] = -out[:, 0]
    if args.rotate_deg:
        c, s = math.cos(math.radians(args.rotate_deg)), math.sin(math.radians(args.rotate_deg))
        x, y = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0], out[:, 1] = c * x - s * y, s * x + c * y
    if args.charge_scale != 1.0:
        out[:, 3:5] *= args.charge_scale
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", type=Path, help="directory of run_*.h5")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--drift-scale", type=float, default=1.0, help="drift distance factor")
    ap.add_argument("--z-offset-mm", type=float, default=0.0, help="added to z")
    ap.add_argument("--mirror-x", action="store_true", help="x -> -x")
    ap.add_argument("--rotate-deg", type=float, default=0.0, help="about the detector axis")
    ap.add_argument("--charge-scale", type=float, default=1.0, help="charge factor")
    ap.add_argument("--length-mm", type=float, default=1000.0, help="micromegas z")
    args = ap.parse_args()
    files = sorted(args.sim.glob("run_*.h5"))
    if not files:
        raise SystemExit(f"error: {args.sim}: no run_*.h5")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in files:
        tmp = args.out / (path.name + ".partial")
        shutil.copy(path, tmp)
        with h5py.File(tmp, "r+") as f:
            for cloud in f["cloud"].values():
                if cloud.ndim != 2 or cloud.shape[0] == 0:  # an event without points
                    continue
                cloud[...] = transform(cloud[()], args)
        tmp.replace(args.out / path.name)
    print(f"{len(files)} run files -> {args.out}")


if __name__ == "__main__":
    main()
