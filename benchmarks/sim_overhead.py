"""The simulation's two shortcuts against the code they replace, side by side.

The same events (seed, channels, knobs) are made in one warm process, alternating per
round so that a busy machine slows both ways alike:
- reference: attpc-engine's own ``generate_trajectory`` (SciPy's Radau with its LU
  wrappers), ``generate_electrons`` and ``transport_track``, and Spyral's own
  ``GetTrace`` for the peaks of each pad's trace;
- ours: `data_prep.sim.ode` (same algorithm and arithmetic, less Python overhead),
  `data_prep.sim.transport` (pixels summed per pad before the dict, beam pads by table)
  and `data_prep.sim.points.spyral_peaks` (find_peaks' compiled steps in its order).
Both sets of events are checked to be identical, array for array (NaN where NaN). Times
are CPU seconds of this process.

    .venv/bin/python benchmarks/sim_overhead.py [--events 6] [--rounds 3]

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from attpc_classify.config import load_config
from data_prep.sim import ode, points
from data_prep.sim.channels import CHANNEL_NAMES
from data_prep.sim.config import SimConfig
from data_prep.sim.physics import EventGenerator
from data_prep.sim.randomize import draw_knobs
from data_prep.sim.runner import event_rng, knob_rng


def make(generator: EventGenerator, n: int) -> tuple[float, list]:
    """CPU seconds for ``n`` events of every channel, and the events."""
    cfg = generator.config
    events = []
    t0 = time.process_time()
    for channel in CHANNEL_NAMES:
        for i in range(n):
            knobs = draw_knobs(cfg, knob_rng(11, i, 0, "event"))
            events.append(generator.generate(channel, event_rng(11, i), knobs))
    return time.process_time() - t0, events


def arrays(event) -> list[np.ndarray]:
    """The event's arrays (points, labels, vertex: NaN for a noise event)."""
    values = [getattr(event, f.name) for f in dataclasses.fields(event)]
    return [v for v in values if isinstance(v, np.ndarray)]


def equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Exactly equal, NaN where NaN."""
    return a.shape == b.shape and bool(np.all((a == b) | ((a != a) & (b != b))))


def use(way: str) -> None:
    """Install the reference functions or ours."""
    reference = way == "reference"
    ode.use_functions("engine" if reference else "ours")
    points.spyral_peaks = points.gettrace_peaks if reference else SPYRAL_PEAKS


SPYRAL_PEAKS = points.spyral_peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="e15503b_randomized")
    parser.add_argument("--events", type=int, default=6, help="events per channel per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    generator = EventGenerator(load_config(SimConfig, args.preset))
    ways = ("reference", "ours")
    warm = draw_knobs(generator.config, knob_rng(0, 999, 0, "event"))
    for name in ways:  # numba and caches warm, both ways
        use(name)
        generator.generate("p_elastic", event_rng(0, 999), warm)
    seconds = {name: 0.0 for name in ways}
    made: dict[str, list] = {}
    for r in range(args.rounds):
        for name in ways if r % 2 == 0 else reversed(list(ways)):
            use(name)
            s, events = make(generator, args.events)
            seconds[name] += s
            made.setdefault(name, events)
    use("ours")
    same = all(
        all(equal(x, y) for x, y in zip(arrays(a), arrays(b), strict=True))
        for a, b in zip(made["reference"], made["ours"], strict=True)
    )
    n = args.rounds * args.events * len(CHANNEL_NAMES)
    per_event = {name: 1000.0 * s / n for name, s in seconds.items()}
    for name, ms in per_event.items():
        print(f"{name:>12}: {ms:6.1f} ms CPU per event ({n} events, {args.preset})")
    ratio = per_event["ours"] / per_event["reference"]
    print(f"identical events: {same}; ours takes {ratio:.2f}x the CPU time")
    print(json.dumps({
        "preset": args.preset, "events": n, "identical": same,
        "ms_per_event": {k: round(v, 1) for k, v in per_event.items()},
        "ratio": round(ratio, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
