"""How close the fitted beam axis (data_prep.beamaxis) comes to the true one.

    .venv/bin/python scripts/beamaxis_accuracy.py [--events 300] [--seeds 5] [--sample 500]
        [--sim CONFIG [--sim-set KEY=VALUE] --sim-events 500 --sim-seed 5] [RUN.h5 ...]

1. Hand-made run files (tests/test_beamaxis.py's runs: a beam ion up to the vertex on a
   known line, blind within 20 mm of the detector axis, a reaction track from the vertex
   into one half plane, 5-40 noise hits, a hot pad near the axis): per true line, the
   largest x or y distance between the fitted and the true line over z in [0, 1000] mm
   (mean and worst over the seeds) and the fit's time per file.
2. ``--sim CONFIG``: a simulated run whose sheared beam is visible. Today's simulation
   drops the beam's charge on attpc-engine's beam pads *before* the drift shear; here,
   for this measurement only, the engine's beam-pad list is emptied (its numba functions
   compiled afresh in a temporary cache) so that data_prep/sim's shear drops what lands
   on beam pads *after* it, as in the detector. The true line follows from the config
   (tilt, its azimuth, z calibration, spot offset). Printed: the fit against it, and the
   beam points (simulation truth) per event outside 30 mm of the detector axis and of
   the fitted line.
3. Any run files given: their fitted line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_beamaxis import OTHER, SHEARED, _distance, _run

from data_prep.beamaxis import NO_AXIS, SAMPLE_EVENTS, centre_on_beam
from data_prep.images import ImageConfig
from data_prep.quantiles import file_beam_axis

LINES = {
    "e15503b shear (4, 0, 108.6, -0.109)": SHEARED,
    "other (-6, 0.02, 5, 0.1)": OTHER,
    "shear along -x, half blind (10, -0.109, -4, 0)": (10.0, -0.1086, -4.0, 0.0),
}


def hand_made(events: int, seeds: int, sample: int) -> None:
    config = ImageConfig()
    with tempfile.TemporaryDirectory() as tmp:
        for name, line in LINES.items():
            dist, secs = [], []
            for seed in range(seeds):
                path = _run(Path(tmp) / f"run_{seed:04d}.h5", line, events, seed=100 + seed)
                t0 = time.perf_counter()
                fit = file_beam_axis(path, config, n_events=sample)
                secs.append(time.perf_counter() - t0)
                dist.append(_distance(fit.axis, line))
            print(
                f"{name}: distance mean {np.mean(dist):.2f} mm, worst {np.max(dist):.2f} mm "
                f"({seeds} runs of {events} events, {sample} sampled; "
                f"{np.mean(secs):.2f} s/file)"
            )
        kept = 0
        for seed in range(seeds):
            path = _run(Path(tmp) / "nobeam.h5", SHEARED, events, seed=200 + seed, beam=False)
            kept += file_beam_axis(path, config).axis == NO_AXIS
        print(f"no beam: detector axis kept in {kept} of {seeds} runs")


def true_line(sim) -> tuple[float, float, float, float]:
    """The beam line of a simulation config in written coordinates: the spot offset plus
    the shear (length - z_true) tan(tilt) along the tilt azimuth, z_true = (z - offset) /
    scale."""
    d = sim.detector
    t = math.tan(math.radians(d.tilt_deg))
    c, s = math.cos(math.radians(d.tilt_azimuth_deg)), math.sin(math.radians(d.tilt_azimuth_deg))
    at0 = t * (d.length_mm + d.z_offset_mm / d.z_scale)  # shear at written z = 0
    slope = -t / d.z_scale
    x0, y0 = sim.beam.spot_offset_mm
    return (x0 + c * at0, c * slope, y0 + s * at0, s * slope)


def visible_beam_run(config_name: str, overrides: list[str], events: int, seed: int, out: Path):
    """Simulate with the beam-pad cut after the shear (see the module docstring)."""
    os.environ["NUMBA_CACHE_DIR"] = str(out / "numba")  # before numba compiles anything
    import attpc_engine.detector.transporter as transporter

    transporter.BEAM_PADS_ARRAY = np.array([-1], dtype=np.int64)
    from attpc_classify.config import load_config
    from data_prep.simulate import SimConfig, simulate

    sim = load_config(SimConfig, config_name, overrides)
    simulate(sim, events, out / "runs", seed=seed, events_per_file=events)
    return sim


def beam_leak(path: Path, axis) -> np.ndarray:
    """Per event, the beam points (simulation truth) 30 mm or more from the line ``axis``."""
    import h5py

    from data_prep.sim.physics import BEAM_POINT_LABEL

    with h5py.File(path) as f:
        g = f["cloud"]
        out = []
        for key in (k for k in g if k.startswith("cloud_")):
            pts = centre_on_beam(g[key][()][:, :4], axis)
            beam = g["labels_" + key.split("_", 1)[1]][()] == BEAM_POINT_LABEL
            out.append(int((beam & (np.hypot(pts[:, 0], pts[:, 1]) >= 30)).sum()))
    return np.array(out)


def simulated(config_name: str, overrides: list[str], events: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = visible_beam_run(config_name, overrides, events, seed, Path(tmp))
        path = next((Path(tmp) / "runs").glob("run_*.h5"))
        truth = true_line(sim)
        fit = file_beam_axis(path, ImageConfig())
        what = " ".join([config_name, *overrides])
        print(f"{what}, beam visible: true {np.round(truth, 4).tolist()}, fitted "
              f"{np.round(fit.axis, 4).tolist()} ({fit.note}): distance "
              f"{_distance(fit.axis, truth):.1f} mm")  # fmt: skip
        for name, axis in (("detector axis", NO_AXIS), ("fitted line", fit.axis)):
            leak = beam_leak(path, axis)
            print(f"  beam points >= 30 mm from the {name}: median {np.median(leak):.0f} per "
                  f"event, {np.mean(leak >= 40):.0%} of events >= 40")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300, help="events per hand-made run")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sample", type=int, default=SAMPLE_EVENTS, help="events the fit samples")
    ap.add_argument("--sim", help="simulation config: also measure on a visible-beam run")
    ap.add_argument("--sim-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a simulation config key (repeatable)")  # fmt: skip
    ap.add_argument("--sim-events", type=int, default=500)
    ap.add_argument("--sim-seed", type=int, default=5)
    ap.add_argument("runs", nargs="*", type=Path, help="run files: fit and print")
    args = ap.parse_args()
    if args.seeds:
        hand_made(args.events, args.seeds, args.sample)
    if args.sim:
        simulated(args.sim, args.sim_set, args.sim_events, args.sim_seed)
    for path in args.runs:
        fit = file_beam_axis(path, ImageConfig())
        print(f"{path}: {tuple(round(v, 4) for v in fit.axis)} ({fit.note})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
