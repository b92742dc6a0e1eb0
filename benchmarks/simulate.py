"""Events per second of `data_prep.simulate.simulate`, per class, on 2 worker processes.

For each class the nominal preset is restricted to that class ("other" keeps its channel
mix) and ``--events`` events are simulated with ``workers=2`` into a temporary directory;
the rate includes process start-up, as a user sees it. A warm single-process figure per
channel (ms/event after the first event) shows where the time goes.

    .venv/bin/python benchmarks/simulate.py [--events 200] [--workers 2] [--seed 0]

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from data_prep.simulate import (
    CHANNEL_NAMES,
    ClassMixConfig,
    EventGenerator,
    SimConfig,
    event_rng,
    simulate,
)

ONLY = {
    "proton": dict(proton=1.0, carbon=0.0, other=0.0),
    "carbon": dict(proton=0.0, carbon=1.0, other=0.0),
    "other": dict(proton=0.0, carbon=0.0, other=1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="events per class")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-events", type=int, default=20, help="per channel, 1 process")
    args = parser.parse_args()

    nominal = SimConfig()
    figures: dict[str, object] = {
        "benchmark": "simulate",
        "preset": "e15503b_nominal",
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "events_per_class": args.events,
    }
    load_before = os.getloadavg()[0]
    # 4 files per worker keeps both workers busy to the end
    per_file = max(1, args.events // (4 * args.workers))
    print(f"simulate: {args.events} events per class, {args.workers} workers, {per_file}/file")
    print(f"{'class':<8} {'events/s':>9} {'wall s':>8} {'rejected':>9} {'mean points':>12}")
    for name, weights in [*ONLY.items(), ("mixed", {})]:
        mix = dataclasses.replace(nominal.mix, **weights) if weights else ClassMixConfig()
        config = dataclasses.replace(nominal, mix=mix)
        with tempfile.TemporaryDirectory() as tmp:
            n = args.events if weights else args.events * 3
            start = time.perf_counter()
            summary = simulate(
                config, n, Path(tmp), seed=args.seed, workers=args.workers, events_per_file=per_file
            )
            wall = time.perf_counter() - start
        rate = n / wall
        rejected = sum(summary.rejected.values())
        points = sum(summary.mean_points[c] * summary.classes[c] for c in summary.classes) / n
        figures[f"{name}_events_per_s"] = round(rate, 1)
        print(f"{name:<8} {rate:>9.1f} {wall:>8.1f} {rejected:>9} {points:>12.0f}")

    # warm, one process: what one event of each channel costs once numba is compiled
    generator = EventGenerator(nominal)
    generator.generate("p_elastic", event_rng(args.seed, 10**9))  # compile / load cache
    warm = {}
    for channel in CHANNEL_NAMES:
        start = time.perf_counter()
        for i in range(args.warm_events):
            generator.generate(channel, event_rng(args.seed, i))
        warm[channel] = round(1000 * (time.perf_counter() - start) / args.warm_events, 2)
    print("warm ms/event, 1 process: " + ", ".join(f"{k} {v}" for k, v in warm.items()))
    figures["warm_ms_per_event"] = warm
    figures["load_avg_1min"] = round(float(np.mean([load_before, os.getloadavg()[0]])), 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
