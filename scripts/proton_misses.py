"""Which simulated protons a model misses, by what the simulation's truth says of them.

    .venv/bin/python scripts/proton_misses.py PREDICTIONS.csv SIM_DIR [PREDICTIONS.csv SIM_DIR ...]
        [--z-scale 1.0]

PREDICTIONS.csv: `attpc-classify classify` of a run on the image file made from the run
files in SIM_DIR (rows matched by run and event). For every event whose class is proton,
from its per-point labels (docs/ARCHITECTURE.md: 2 = the light product, -2 = beam ions)
centred on the run file's fitted beam line as the features centre it
(`configs/prep/features.yaml`):

* turns: how many times the proton goes round its circle on the pad plane (a Kasa circle
  fit, the unwrapped angle about its centre from the first to the last point in z). A
  helix from the beam axis comes back to the axis every turn, where the beam core cuts it:
  a proton of more than one turn reaches the features as one cluster per turn;
* shown: its points >= 30 mm from the beam line (a reaction counts as seen from 10);
* pieces: the clusters of the features' DBSCAN (`data_prep.features.track_clusters`, on
  the run file's points before the structured-noise rules, z weighted by ``--z-scale``
  as the prep option ``cluster_z_scale`` weighs it) of >= 10 points whose majority is
  the proton's;
* beam ions that left the core: beam-ion points >= 30 mm from the beam line.

Printed: Markdown tables of protons and misses (called carbon or other) per bin, the sets
added together.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from data_prep.features import CORE_MM, track_clusters  # CORE_MM: "shown" outside it

ROOT = Path(__file__).resolve().parents[1]
TURN_BINS = ((0.0, 0.5, "< 0.5"), (0.5, 1.0, "0.5-1"), (1.0, 2.0, "1-2"), (2.0, np.inf, ">= 2"))
SHOWN_BINS = ((0, 20, "0-19"), (20, 40, "20-39"), (40, 80, "40-79"), (80, 10**9, ">= 80"))
PIECE_BINS = ((0, 2, "0-1"), (2, 3, "2"), (3, 4, "3"), (4, 10**9, ">= 4"))
BEAM_BINS = ((0, 1, "0"), (1, 20, "1-19"), (20, 10**9, ">= 20"))
MIN_PIECE_POINTS = 10


def turns(xyz: np.ndarray) -> float:
    """Turns of a track about its pad-plane circle (Kasa fit), from its z order."""
    if len(xyz) < 5:
        return 0.0
    x, y = xyz[:, 0], xyz[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    cx, cy, _ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)[0] / np.array([2.0, 2.0, 1.0])
    order = np.argsort(xyz[:, 2])
    phase = np.unwrap(np.arctan2(y[order] - cy, x[order] - cx))
    return float(abs(phase[-1] - phase[0]) / (2.0 * np.pi))


def event_rows(paths: Iterable[Path | str]) -> dict[tuple[int, int], np.void]:
    """Each event's row of the event tables of the run files ``paths``, by (run, event):
    its channel and the detector settings the simulation drew for it."""
    rows = {}
    for path in paths:
        with h5py.File(path, "r") as f:
            run = int(f.attrs["run"])
            for row in f["events"][()]:
                rows[run, int(row["event"])] = row
    return rows


def centred_events(sim: Path, keep: Callable[[np.void], bool]) -> Iterator[tuple]:
    """(run, event, event-table row, (N, 3) points centred on the run file's fitted beam
    line as the features centre them, (N,) per-point labels) of the events of the run
    files in ``sim`` whose row passes ``keep``."""
    for run, e, row, xyz, lab, _ in centred_events_with_axis(sim, keep):
        yield run, e, row, xyz, lab


def centred_events_with_axis(
    sim: Path, keep: Callable[[np.void], bool], n_files: int | None = None
) -> Iterator[tuple]:
    """`centred_events`, each also with its run file's fitted beam line (the axis the
    points were centred on, `data_prep.beamaxis`); only the first ``n_files`` run files."""
    import yaml

    from data_prep.beamaxis import centre_on_beam
    from data_prep.images import ImageConfig
    from data_prep.quantiles import file_beam_axis

    cfg = ImageConfig.from_dict(yaml.safe_load((ROOT / "configs/prep/features.yaml").read_text()))
    for path in sorted(sim.glob("run_*.h5"))[:n_files]:
        axis = file_beam_axis(path, cfg).axis
        with h5py.File(path) as f:
            run = int(f.attrs["run"])
            for row in f["events"][()]:
                if keep(row):
                    e = int(row["event"])
                    xyz = centre_on_beam(f["cloud"][f"cloud_{e}"][()][:, :3], axis)
                    yield run, e, row, xyz, f["cloud"][f"labels_{e}"][()], axis


def pieces(xyz: np.ndarray, lab: np.ndarray, z_scale: float = 1.0) -> int:
    """Clusters of the features' DBSCAN that are mostly the proton (>= 10 points each)."""
    points = np.column_stack([xyz, np.ones(len(xyz))])
    _, cluster = track_clusters(points, np.array([len(points)]), z_scale=z_scale)
    ids, sizes = np.unique(cluster[cluster >= 0], return_counts=True)
    return sum(
        int(np.mean(lab[cluster == c] == 2) > 0.5)
        for c, n in zip(ids, sizes, strict=True)
        if n >= MIN_PIECE_POINTS
    )


def protons(sim: Path, z_scale: float = 1.0) -> dict[tuple[int, int], tuple[float, int, int, int]]:
    """(run, event) -> (turns, points shown, pieces, beam-ion points out of the core)."""
    out = {}
    for run, e, _, xyz, lab in centred_events(sim, lambda row: int(row["label"]) == 0):
        far = np.hypot(xyz[:, 0], xyz[:, 1]) >= CORE_MM
        light = lab == 2
        beam_out = int((far & (lab == -2)).sum())
        out[(run, e)] = (
            turns(xyz[light]),
            int((far & light).sum()),
            pieces(xyz, lab, z_scale),
            beam_out,
        )
    return out


def table(
    title: str, bins, values: list[tuple[float, bool]], count: str = "protons", what: str = "missed"
) -> str:
    """Markdown table: per bin ``(low, high, name)`` of the value, how many ``values``
    fall in it and how many of those are flagged (``what``), with their share."""
    n, miss = Counter(), Counter()
    for v, missed in values:
        name = next(b[2] for b in bins if b[0] <= v < b[1])
        n[name] += 1
        miss[name] += missed
    rows = [f"| {title} | {count} | {what} |", "|---|---|---|"]
    for _, _, name in bins:
        share = f" ({miss[name] / n[name]:.0%})" if n[name] else ""
        rows.append(f"| {name} | {n[name]} | {miss[name]}{share} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="PREDICTIONS.csv SIM_DIR, repeated")
    ap.add_argument("--z-scale", type=float, default=1.0, help="z's weight in the clustering")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give PREDICTIONS.csv SIM_DIR pairs")
    rows: list[tuple[float, int, int, int, bool]] = []
    for pred_path, sim in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        with open(pred_path, newline="") as fh:
            call = {(int(r["run"]), int(r["event_id"])): r["label"] for r in csv.DictReader(fh)}
        for key, (t, shown, n_pieces, beam) in protons(Path(sim), args.z_scale).items():
            rows.append((t, shown, n_pieces, beam, call[key] != "proton"))
    print(f"{len(rows)} protons, {sum(r[-1] for r in rows)} missed\n")
    print(table("turns on the pad plane", TURN_BINS, [(r[0], r[-1]) for r in rows]) + "\n")
    print(table("points shown >= 30 mm", SHOWN_BINS, [(r[1], r[-1]) for r in rows]) + "\n")
    seen = [r for r in rows if r[1] >= 80]  # clearly seen protons only
    print(table("clusters of the proton (protons shown >= 80)", PIECE_BINS,
                [(r[2], r[-1]) for r in seen]) + "\n")  # fmt: skip
    for label, part in (
        ("< 3", [r for r in seen if r[2] < 3]),
        (">= 3", [r for r in seen if r[2] >= 3]),
    ):
        print(table(f"beam-ion points >= 30 mm (shown >= 80, {label} clusters)", BEAM_BINS,
                    [(r[3], r[-1]) for r in part]) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
