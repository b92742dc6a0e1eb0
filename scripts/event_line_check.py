"""What the event's own beam line (`event_beam_line`) moves, by the simulation's truth.

    .venv/bin/python scripts/event_line_check.py SIM_DIR [SIM_DIR ...] [--events 2000]

SIM_DIR: run files of `simulate` (per-point labels: -2 beam ions, the reacting ion and
the other ions of the readout window alike; 2 the light product; 3 the heavy residue).
For the first ``--events`` events of each, centred on the run file's fitted beam line as
the features centre them (`scripts/proton_misses.py`), `data_prep.beamaxis.event_line`
is asked for the event's own line. Printed, per SIM_DIR, as a Markdown table: the share
of events given a line of their own, and the points of beam ions, residues and light
products outside the features' 30 mm core about the run's line and about each event's
line (the run's where it has none); and, per run file, the share of events whose own
line leaves the run's by more than ``--wide`` deg (2.5: the randomised simulation's
widest beam cone), its range over the run files: asked whether detector health could
name a beam that diverges past the training's (docs/sim-to-real.md, "Detector health":
it could not). Diagnosis only; ~1 ms per event. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from proton_misses import centred_events  # the features' centring

from data_prep.beamaxis import event_line, line_xy
from data_prep.features import CORE_MM

KINDS = (("beam ions", -2), ("residues", 3), ("light products", 2))


def outside(sim: Path, n_events: int, wide_deg: float) -> dict:
    """Events, events with a line, per `KINDS` the points outside the core about the
    run's line and about the event's own, and the lowest and highest share over the run
    files of events whose line leaves the run's by more than ``wide_deg``."""
    out = {"events": 0, "lines": 0, **{k: [0, 0] for k, _ in KINDS}}
    per_run: dict[int, list[int]] = {}  # run -> [events, wide lines]
    for run, _, _, xyz, labels in centred_events(sim, lambda row: True):
        if out["events"] == n_events:
            break
        out["events"] += 1
        counts = per_run.setdefault(run, [0, 0])
        counts[0] += 1
        run_r = np.hypot(xyz[:, 0], xyz[:, 1])
        own_r = run_r
        line = event_line(xyz)
        if line is not None:
            out["lines"] += 1
            # (x0, ax, y0, ay): the slope's angle to the run's line (z along it)
            counts[1] += bool(np.degrees(np.arctan(np.hypot(line[1], line[3]))) > wide_deg)
            x, y = line_xy(line, xyz[:, 2])
            own_r = np.hypot(xyz[:, 0] - x, xyz[:, 1] - y)
        for kind, label in KINDS:
            mine = labels == label
            out[kind][0] += int((mine & (run_r >= CORE_MM)).sum())
            out[kind][1] += int((mine & (own_r >= CORE_MM)).sum())
    shares = [wide / n for n, wide in per_run.values()]
    out["wide_share"] = [min(shares, default=0.0), max(shares, default=0.0)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sims", type=Path, nargs="+")
    ap.add_argument("--events", type=int, default=2000, help="events per SIM_DIR, first ones")
    ap.add_argument("--wide", type=float, default=2.5, help="a wide ion line, deg (2.5)")
    args = ap.parse_args()
    head = " | ".join(f"{k} outside the core: run's line -> own" for k, _ in KINDS)
    wide = f"events with a line > {args.wide:g} deg, per run file"
    print(f"| simulation | events | with a line of their own | {head} | {wide} |")
    print("|---|---|---|" + "---|" * (len(KINDS) + 1))
    result = {}
    for sim in args.sims:
        r = result[sim.name] = outside(sim, args.events, args.wide)
        cells = " | ".join(f"{r[k][0]:,} -> {r[k][1]:,}" for k, _ in KINDS)
        low, high = r["wide_share"]
        print(
            f"| {sim.name} | {r['events']} | {r['lines'] / max(r['events'], 1):.0%} | {cells} "
            f"| {low:.2f}-{high:.2f} |"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
