"""Test sets with one randomised knob at one end of its range, the rest nominal.

    .venv/bin/python scripts/sim_extremes.py OUT_DIR [--events 600] [--seed 1]
        [--workers 2] [--ranges e15503b_randomized] [--dry-run]

For every knob with a range in the ``--ranges`` preset's ``randomize:`` section and for
each end of that range, simulates e15503b_nominal with only that knob pinned there
(``randomize.<knob>=[v, v]``) into ``OUT_DIR/<knob>_low`` and ``OUT_DIR/<knob>_high``;
for the electronics choices, every listed point formation (``point_formation_pad``...)
and the shortest and longest shaping time (``randomize.shaping_time_ns=[v]``).
A model evaluated on each directory shows which single difference hurts it (the
sim->real protocol of docs/simulation.md). ``--dry-run`` prints the equivalent
``attpc-classify simulate`` command lines instead.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from attpc_classify.config import load_config
from data_prep.sim.config import FAULT_KNOBS
from data_prep.simulate import SimConfig, simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ranges", default="e15503b_randomized")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    ranges = load_config(SimConfig, CONFIGS / f"{args.ranges}.yaml").randomize
    nominal = load_config(SimConfig, CONFIGS / "e15503b_nominal.yaml")
    ends = [(knob, end, (value, value))
            for knob in ranges.active
            for end, value in zip(("low", "high"), getattr(ranges, knob), strict=True)]  # fmt: skip
    # electronics choices (drawn per run file): every point formation, the extreme shaping times
    ends += [("point_formation", mode, (mode,)) for mode in ranges.point_formation]
    if ranges.shaping_time_ns:
        times = ranges.shaping_time_ns
        ends += [("shaping_time_ns", "low", (min(times),)),
                 ("shaping_time_ns", "high", (max(times),))]  # fmt: skip
    for knob, end, pin in ends:
        value = pin[0]
        out = args.out / f"{knob}_{end}"
        # a detector fault (hot pads, dead chips, gain spread) is drawn per run file
        faults = "file" if knob in FAULT_KNOBS else nominal.randomize.faults
        pinned = dataclasses.replace(nominal.randomize, faults=faults, **{knob: pin})
        if args.dry_run:
            extra = " --set randomize.faults=file" if faults == "file" else ""
            listed = ",".join(str(v) for v in pin)
            print(f"attpc-classify simulate --config e15503b_nominal --events {args.events} "
                  f"--seed {args.seed} --workers {args.workers} --out {out} "
                  f"--set 'randomize.{knob}=[{listed}]'{extra}")  # fmt: skip
            continue
        config = dataclasses.replace(nominal, name=f"e15503b_nominal {knob}={value}",
                                     randomize=pinned)  # fmt: skip
        summary = simulate(config, args.events, out, seed=args.seed, workers=args.workers)
        print(f"{out}: {summary.n_events} events, {summary.seconds:.0f} s")


if __name__ == "__main__":
    main()
