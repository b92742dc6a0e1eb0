"""A run file's detector health (`data_prep.health`, ``attpc-classify health``): how long
it takes and how much memory, whole and without its most costly part, the charge unit.

This simulates ``--events`` events of ``--preset`` into one run file (attpc-engine, seed
0; a real run file holds thousands of events, the simulation's files 100), then measures
its health with the README's recommended preprocessing, side by side: the whole report
(`file_health`, every event sampled up to its 1,000), the same without the charge unit
(``charge_calibration: none``: no features computed), and the sampled events' reading
alone. Each is run ``--repeats`` times, the best time kept; the peak of memory that
Python and numpy allocate (tracemalloc) is taken on one extra run of each.

    .venv/bin/python benchmarks/health.py [--events 1000] [--preset e15503b_standin]

Last line: JSON (events, seconds and events/s of each, peak MiB).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from attpc_classify.config import load_config
from data_prep.health import SAMPLE_EVENTS, SAMPLE_SEED, _read_sample, file_health
from data_prep.images import ImageConfig
from data_prep.readers import open_events
from data_prep.sim.config import SimConfig
from data_prep.simulate import simulate

RECIPE = ["features=tracks_v7", "cluster_z_scale=0.5", "charge_calibration=proton_band"]


def read_only(path: Path) -> None:
    """The sampled events read, as `file_health` reads them."""
    with open_events(path) as reader:
        _read_sample(reader, SAMPLE_EVENTS, SAMPLE_SEED)


def timed(step, repeats: int) -> tuple[float, float]:
    """Best seconds of ``repeats`` calls of ``step()``, and the peak MiB of one more."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--preset", default="e15503b_standin")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    recipe = load_config(ImageConfig, "features", RECIPE)
    no_unit = replace(recipe, charge_calibration="none")
    with tempfile.TemporaryDirectory() as tmp:
        sim = load_config(SimConfig, args.preset)
        simulate(sim, args.events, Path(tmp), seed=0, events_per_file=args.events, workers=2)
        [path] = sorted(Path(tmp).glob("*.h5"))
        steps = {
            "read": lambda: read_only(path),
            "health_without_unit": lambda: file_health(path, no_unit),
            "health": lambda: file_health(path, recipe),
        }
        result: dict[str, float | int | str] = {"events": args.events, "preset": args.preset}
        for name, step in steps.items():
            seconds, peak = timed(step, args.repeats)
            result[f"{name}_s"] = round(seconds, 3)
            result[f"{name}_events_per_s"] = round(args.events / seconds)
            result[f"{name}_peak_mib"] = round(peak, 1)
            print(f"{name}: {seconds:.2f} s ({args.events / seconds:,.0f} events/s), "
                  f"peak {peak:.0f} MiB", flush=True)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
