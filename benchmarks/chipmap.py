"""Learning a run's AGET chips (`data_prep.chipmap`, ``attpc-classify chips``): speed and
memory of its two steps on simulated events whose chips fire.

This simulates ``--events`` events of ``--preset`` (attpc-engine, seed 0; the stand-in's
chips fire 0.8 times per event as blocks of 64 consecutive pad ids), then times reading
them with the dense instants of each event (`learn_from_files`' loop) and `learn_chips`
on those instants, and on them repeated until `MAX_INSTANTS` is exceeded (the sampled
path, at the cap), with the peak of memory numpy and scipy allocate in each
(tracemalloc). A check that the answer is right rides along: the smallest share of a
learned chip's pads that lie in its most common block of 64 ids (1.0: every chip is one
of the simulation's; a pad that tracks crossed in most of a rare chip's fires can join
it).

    .venv/bin/python benchmarks/chipmap.py [--events 1000] [--preset e15503b_standin]

Last line: JSON (events/s of the read and the instants, seconds and peak MiB of the
learning at the run's instants and at the cap, chips learned, their smallest share).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from attpc_classify.config import load_config
from data_prep.chipmap import MAX_INSTANTS, ChipLearning, dense_instants, learn_chips
from data_prep.padplane import CHIP_PADS, pad_centres
from data_prep.readers import open_events
from data_prep.sim.config import SimConfig
from data_prep.simulate import simulate
from data_prep.structured import pad_ids


def instants_of(directory: Path, rules: ChipLearning) -> tuple[list[np.ndarray], int]:
    """Every dense instant of the run files in ``directory``, and the events read."""
    found, events = [], 0
    for path in sorted(directory.glob("*.h5")):
        with open_events(path) as reader:
            for event in reader.iter_events(0, len(reader)):
                events += 1
                found.extend(dense_instants(event.points[:, 2], pad_ids(event), rules))
    return found, events


def timed_learning(instants: list[np.ndarray], rules: ChipLearning) -> tuple:
    """Seconds, peak MiB and the result of one `learn_chips`."""
    tracemalloc.start()
    start = time.perf_counter()
    learned = learn_chips(instants, len(pad_centres()), rules)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, learned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--preset", default="e15503b_standin")
    args = ap.parse_args()
    rules = ChipLearning()
    config = load_config(SimConfig, args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        simulate(config, args.events, Path(tmp), seed=0, workers=2)
        start = time.perf_counter()
        instants, events = instants_of(Path(tmp), rules)
        read_rate = events / (time.perf_counter() - start)
    learn_chips(instants[:10], len(pad_centres()), rules)  # scipy's imports, not timed
    seconds, peak, learned = timed_learning(instants, rules)
    repeat = MAX_INSTANTS // max(len(instants), 1) + 1
    cap_seconds, cap_peak, _ = timed_learning(instants * repeat, rules)
    pure = min(
        (np.bincount(np.flatnonzero(learned.chip == c) // CHIP_PADS).max() /
         (learned.chip == c).sum() for c in range(learned.n_chips)),
        default=1.0,
    )  # fmt: skip
    print(f"{events} events, {len(instants)} dense instants, read at {read_rate:.0f} events/s; "
          f"learned {learned.n_chips} chips in {seconds:.2f} s (peak {peak:.0f} MiB), at the "
          f"{MAX_INSTANTS}-instant cap {cap_seconds:.2f} s (peak {cap_peak:.0f} MiB); "
          f"a chip's pads in its block: {pure:.0%} at least")  # fmt: skip
    print(json.dumps({
        "events": events, "instants": len(instants), "read_events_per_s": round(read_rate),
        "learn_s": round(seconds, 3), "learn_peak_mib": round(peak, 1),
        "cap_learn_s": round(cap_seconds, 3), "cap_peak_mib": round(cap_peak, 1),
        "chips": learned.n_chips, "min_share_in_block": round(float(pure), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
