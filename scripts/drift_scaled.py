"""Copies of simulated run files whose drift velocity is off by a factor (README, "Demo").

    .venv/bin/python scripts/drift_scaled.py SIM_DIR --scale 1.1 --out OUT_DIR

A run analysed with a drift velocity off by ``s`` places every point at the drift
distance ``s`` times the true one from the micromegas (z = ``--length-mm``, 1,000 mm
in e15503b): z' = L - s (L - z). Every ``cloud/cloud_<n>`` of each ``run_*.h5`` of SIM_DIR
is rewritten so in a copy under OUT_DIR; nothing else changes (labels, attributes).
The randomised simulation trains on z scales 0.97-1.03 (`detector.z_scale`); these
copies test beyond that range.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import h5py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", type=Path, help="directory of run_*.h5")
    ap.add_argument("--scale", type=float, required=True, help="drift distance factor")
    ap.add_argument("--out", type=Path, required=True)
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
                points = cloud[()]
                points[:, 2] = args.length_mm - args.scale * (args.length_mm - points[:, 2])
                cloud[...] = points
        tmp.replace(args.out / path.name)
    print(f"{len(files)} run files -> {args.out} (drift x{args.scale})")


if __name__ == "__main__":
    main()
