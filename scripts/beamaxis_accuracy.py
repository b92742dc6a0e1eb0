"""How close the fitted beam axis (data_prep.beamaxis) comes to the true one on hand-made
run files (tests/test_beamaxis.py's runs: a beam ion up to the vertex on a known line,
blind within 20 mm of the detector axis, a reaction track from the vertex into one half
plane, 5-40 noise hits), and on simulated run files given on the command line.

    .venv/bin/python scripts/beamaxis_accuracy.py [--events 300] [--seeds 5] [--sample 500]
        [SIM_RUN.h5 ...]

Prints, per true line, the largest x or y distance between the fitted and the true line
over z in [0, 1000] mm (mean and worst over the seeds) and the fit's time per file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_beamaxis import OTHER, SHEARED, _distance, _run

from data_prep.beamaxis import NO_AXIS, SAMPLE_EVENTS
from data_prep.images import ImageConfig
from data_prep.quantiles import file_beam_axis

LINES = {
    "e15503b shear (4, 0, 108.6, -0.109)": SHEARED,
    "other (-6, 0.02, 5, 0.1)": OTHER,
    "shear along -x, half blind (10, -0.109, -4, 0)": (10.0, -0.1086, -4.0, 0.0),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300, help="events per hand-made run")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sample", type=int, default=SAMPLE_EVENTS, help="events the fit samples")
    ap.add_argument("sim", nargs="*", type=Path, help="simulated run files: fit and print")
    args = ap.parse_args()
    config = ImageConfig()
    with tempfile.TemporaryDirectory() as tmp:
        for name, line in LINES.items():
            dist, secs = [], []
            for seed in range(args.seeds):
                path = _run(Path(tmp) / f"run_{seed:04d}.h5", line, args.events, seed=100 + seed)
                t0 = time.perf_counter()
                fit = file_beam_axis(path, config, n_events=args.sample)
                secs.append(time.perf_counter() - t0)
                dist.append(_distance(fit.axis, line))
            print(
                f"{name}: distance mean {np.mean(dist):.2f} mm, worst {np.max(dist):.2f} mm "
                f"({args.seeds} runs of {args.events} events, {args.sample} sampled; "
                f"{np.mean(secs):.2f} s/file)"
            )
        kept = 0
        for seed in range(args.seeds):
            path = _run(Path(tmp) / "nobeam.h5", SHEARED, args.events, seed=200 + seed, beam=False)
            kept += file_beam_axis(path, config).axis == NO_AXIS
        print(f"no beam: detector axis kept in {kept} of {args.seeds} runs")
    for path in args.sim:
        fit = file_beam_axis(path, config)
        print(f"{path}: {tuple(round(v, 4) for v in fit.axis)} ({fit.note})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
