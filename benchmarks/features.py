"""The physics features' cost per feature set, side by side in one run.

`data_prep.features.event_features` on the same events for each named-track set:
``tracks_v3`` (the recipe before the 13th session), ``tracks_v6`` (the demo's before it),
``tracks_v7`` and ``tracks_v8`` (each named track's helix also read about its own vertex,
`data_prep.features.vertex_helix`: a free circle fit per track). The events are
`benchmarks/preprocess.py`'s synthetic clouds (1-2 helices from a vertex on the beam axis
plus noise, ~500 points), or with ``--data`` the first ``--events`` of point-cloud files
(simulated run files, say). Rates are the best of ``--repeats`` interleaved rounds on
one thread (the machine's cores are shared); ``v7_over_v3`` is the time ratio.

    .venv/bin/python benchmarks/features.py [--events 1500] [--repeats 3] [--data RUN.h5 ...]

Last line: JSON of the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from preprocess import track_events

from data_prep.features import event_features

SETS = ("tracks_v3", "tracks_v6", "tracks_v7", "tracks_v8")


def clouds(data: list[Path], n: int) -> list[np.ndarray]:
    """``n`` point clouds: from the files ``data`` (any format `open_events` reads), in
    order, or synthetic."""
    if not data:
        return track_events(np.random.default_rng(0), n, 500)
    from data_prep.readers.formats import open_events

    out: list[np.ndarray] = []
    for path in data:
        with open_events(path) as reader:
            for event in reader.iter_events():
                out.append(np.asarray(event.points, dtype=np.float64))
                if len(out) == n:
                    return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, nargs="*", default=[],
                    help="point-cloud files instead of synthetic events")  # fmt: skip
    args = ap.parse_args()
    events = clouds(args.data, args.events)
    points = np.concatenate([e[:, :4] for e in events])
    counts = np.array([len(e) for e in events])
    best = dict.fromkeys(SETS, np.inf)
    for _ in range(args.repeats):
        for name in SETS:  # interleaved: a slow spell of the machine hits every set alike
            start = time.perf_counter()
            event_features(points, counts, name)
            best[name] = min(best[name], time.perf_counter() - start)
    figures = {f"{name}_events_per_s": round(len(events) / best[name], 1) for name in SETS}
    figures["v7_over_v3"] = round(best["tracks_v7"] / best["tracks_v3"], 3)
    figures["v8_over_v6"] = round(best["tracks_v8"] / best["tracks_v6"], 3)
    figures["events"] = len(events)
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
