"""The structured-noise rules on simulated events: the burst rule's isolation question
asked of its candidate points only, against a DBSCAN of the whole batch (the rule before).

The burst rule drops the points of a dense, plane-wide z slice that have no other point
within ``burst_isolation_mm``: DBSCAN noise at ``min_samples=2``. It used to label every
point of the batch with `data_prep.cluster.dbscan_labels` (a KD-tree pair search and a
cluster graph over all track points) to answer that for the slice's points; now
`data_prep.cluster.isolated_points` asks a KD-tree for the second-nearest neighbour of
those points alone. This simulates ``--events`` events of ``--preset`` (attpc-engine,
seed 0; bursts, hot pads and chip fires on), then times `structured_noise_mask` on
batches of 256 (what `preprocess` projects at once) both ways, interleaved over
``--repeats`` rounds, and checks that both drop the same points.

    .venv/bin/python benchmarks/structured_noise.py [--events 1000] [--repeats 3]

Last line: JSON (events/s of the rules each way, best of the rounds, and the speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from attpc_classify.config import load_config
from data_prep import structured
from data_prep.cluster import dbscan_labels
from data_prep.images import ImageConfig, event_pads
from data_prep.readers import open_events
from data_prep.sim.config import SimConfig
from data_prep.simulate import simulate

BATCH = 256


def whole_batch_dbscan(points, counts, eps, which):
    """The rule before: DBSCAN labels of the whole batch, then the candidates' noise."""
    return (dbscan_labels(points, counts, eps, 2) < 0)[which]


def batches(directory: Path, config: ImageConfig) -> list[tuple]:
    """(points, counts, pads, on_hot) per batch of ``BATCH`` events, hot pads per file."""
    out = []
    for path in sorted(directory.glob("*.h5")):
        with open_events(path) as reader:
            hot = structured.find_hot_pads(reader, config.hot_pad_fraction, config.hot_pad_sample)
            events = list(reader.iter_events(0, len(reader)))
        for i in range(0, len(events), BATCH):
            chunk = events[i : i + BATCH]
            pads, on_hot = event_pads(chunk, hot)
            counts = np.array([len(e.points) for e in chunk], np.int64)
            out.append((np.concatenate([e.points[:, :4] for e in chunk]), counts, pads, on_hot))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="e15503b_randomized")
    args = ap.parse_args()
    config = ImageConfig(structured_noise="rules")
    with tempfile.TemporaryDirectory() as tmp:
        simulate(load_config(SimConfig, args.preset), args.events, Path(tmp), seed=0,
                 events_per_file=min(args.events, 500))  # fmt: skip
        work = batches(Path(tmp), config)
    n_events = sum(len(b[1]) for b in work)
    ours = structured.isolated_points
    times: dict[str, list[float]] = {"candidates_only": [], "whole_batch_dbscan": []}
    masks: dict[str, list[np.ndarray]] = {}
    try:
        for _ in range(args.repeats):
            for name, fn in (("candidates_only", ours), ("whole_batch_dbscan", whole_batch_dbscan)):
                structured.isolated_points = fn
                t = time.perf_counter()
                masks[name] = [structured.structured_noise_mask(*b, config.rules) for b in work]
                times[name].append(time.perf_counter() - t)
    finally:
        structured.isolated_points = ours
    same = all(np.array_equal(a, b) for a, b in zip(*masks.values(), strict=True))
    assert same, "the two ways dropped different points"
    dropped = int(sum(m.sum() for m in masks["candidates_only"]))
    rate = {k: n_events / min(v) for k, v in times.items()}
    print(f"{n_events} events ({args.preset}), {dropped:,} points dropped either way: "
          + ", ".join(f"{k} {v:,.0f} events/s" for k, v in rate.items()))  # fmt: skip
    print(json.dumps({"events": n_events, "preset": args.preset, "points_dropped": dropped,
                      "events_per_s": {k: round(v, 1) for k, v in rate.items()},
                      "speedup": round(rate["candidates_only"] / rate["whole_batch_dbscan"], 2),
                      "same_mask": same, "load_avg": round(os.getloadavg()[0], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
