"""How sharply the elastic invariant is measured: about the run's beam line, about the
track's own vertex (`tracks_v7`), and about the simulation's true vertex.

    .venv/bin/python scripts/vertex_helix.py SIM_DIR [SIM_DIR ...] [--files 30]

SIM_DIR: run files of `simulate --config e15503b_randomized` (each event's true vertex,
beam energy, pressure, tilt and z calibration in its table). For the elastic protons and
the fusion-evaporation events, the event's largest track as the recommended model's
features see it (points centred on the run file's fitted beam line; the features' DBSCAN
with the recipe's z weight, ``cluster_z_scale`` 0.5; before the structured-noise rules,
which remove noise hits, not track points) is read as a helix three ways:

* **run line**: through the run's beam line (`data_prep.features._helix`, tracks_v2-v6);
* **own vertex**: about the point of its free circle nearest that line
  (`data_prep.features.vertex_helix`, tracks_v7);
* **true vertex**: through the simulation's vertex, moved as the points were (the drift
  shear of the file's tilt, its z calibration, the run's fitted line): what no run knows.

Each track's log10 invariant R / (sin cos) is compared with the elastic line at the
beam's true energy at the vertex (`data_prep.features.elastic_invariant_mm`; the event's
beam energy and gas pressure, pycatima's energy loss through the simulation's gas), on
the first tracks at 27-63 degrees (cot 0.5-2, the charge unit's band). Printed: a Markdown
table of the elastic protons' residual (median, interquartile range, 10-90 % range) and
the share of fusion-evaporation first tracks inside the protons' 10-90 % range; before
it, how far the true vertex lies from the run's fitted line. ~10 s
per 1,000 events. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from proton_misses import centred_events_with_axis  # the features' centring, with its axis

from attpc_classify.config import load_config
from data_prep.beamaxis import line_xy
from data_prep.features import (
    BAND_COT,
    _helix,
    elastic_invariant_mm,
    largest_tracks,
    track_clusters,
    vertex_helix,
)
from data_prep.sim.physics import EventGenerator
from data_prep.simulate import SimConfig

CHANNELS = (b"p_elastic", b"fusion_evap")
RECIPE_Z_SCALE = 0.5  # the recommended command's --set cluster_z_scale=0.5
WAYS = ("run line", "own vertex", "true vertex")


def true_vertex(row: np.void, axis: tuple, generator: EventGenerator) -> np.ndarray:
    """The simulated vertex (x, y) where the features' centred points put it: sheared by
    the drift's tilt, at its z after the z calibration, minus the run's fitted line."""
    length = generator.config.detector.length_mm
    z = float(row["vertex_z"])
    xy = np.array([row["vertex_x"], row["vertex_y"]], dtype=float)
    if float(row["tilt_deg"]):
        xy += generator.shear_offset(np.array([length - z]), float(row["tilt_deg"]))[0]
    z_measured = float(row["z_scale"]) * z + float(row["z_offset_mm"])
    x, y = line_xy(axis, np.array([z_measured]))
    return xy - np.array([x[0], y[0]])


def elastic_line(row: np.void, generator: EventGenerator) -> float:
    """log10 of the elastic invariant at the beam's true energy at the event's vertex."""
    beam = generator.config.beam
    mass_u = generator.projectile.mass / 931.494
    a = round(mass_u)
    energy = (float(row["beam_energy_mev_u"]) - beam.window_loss_mev_u) * a
    gas = generator.gas(float(row["pressure_factor"]))
    depth_m = np.array([float(row["vertex_z"]) / 1e3])
    loss = float(gas.get_energy_loss(generator.projectile, energy, depth_m)[0])
    field = generator.config.detector.magnetic_field_t * float(row["field_factor"])
    return float(np.log10(elastic_invariant_mm((energy - loss) / a, field, mass_u)))


def first_tracks(sims: list[Path], n_files: int) -> list[tuple[bool, np.ndarray, float, float]]:
    """(elastic?, (cot, log10 invariant) per way, the elastic line, the true vertex's
    distance from the run's line [mm]) per kept event."""
    generator = EventGenerator(load_config(SimConfig, "e15503b_randomized", []))
    out = []
    for sim in sims:
        for _, _, row, xyz, _, axis in centred_events_with_axis(
            sim, lambda r: r["channel"] in CHANNELS, n_files
        ):
            points = np.column_stack([xyz, np.ones(len(xyz))])
            _, cluster = track_clusters(points, np.array([len(points)]), z_scale=RECIPE_Z_SCALE)
            first = largest_tracks(cluster, 1)
            if not len(first):
                continue
            track = xyz[cluster == first[0]]
            v = true_vertex(row, axis, generator)
            about_truth = track - np.array([v[0], v[1], 0.0])
            ways = np.array([_helix(track)[0][1:3], vertex_helix(track)[:2],
                             _helix(about_truth)[0][1:3]])  # fmt: skip
            out.append((row["channel"] == CHANNELS[0], ways, elastic_line(row, generator),
                        float(np.hypot(v[0], v[1]))))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sims", nargs="+", type=Path)
    ap.add_argument("--files", type=int, default=30, help="run files read per SIM_DIR")
    args = ap.parse_args()
    tracks = first_tracks(args.sims, args.files)
    elastic = np.array([t[0] for t in tracks])
    ways = np.stack([t[1] for t in tracks])
    line = np.array([t[2] for t in tracks])
    off = np.percentile([t[3] for t in tracks], [50, 90])
    print(
        f"the true vertex lies {off[0]:.1f} mm from the run's fitted line (median), "
        f"{off[1]:.1f} mm at the 90th percentile\n"
    )
    print("| helix read | elastic protons in the band | residual: median | interquartile "
          "range | 10-90 % range | fusion-evaporation first tracks inside it |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    summary = {}
    for k, way in enumerate(WAYS):
        cot, inv = ways[:, k, 0], ways[:, k, 1]
        band = (cot > BAND_COT[0]) & (cot < BAND_COT[1]) & np.isfinite(inv)
        residual = inv - line
        p10, q1, med, q3, p90 = np.percentile(residual[band & elastic], [10, 25, 50, 75, 90])
        fusion = residual[band & ~elastic]
        inside = float(np.mean((fusion > p10) & (fusion < p90))) if len(fusion) else np.nan
        print(f"| {way} | {int((band & elastic).sum())} | {med:+.3f} | {q3 - q1:.3f} | "
              f"{p90 - p10:.3f} | {inside:.1%} of {len(fusion)} |")  # fmt: skip
        summary[way] = {"iqr": round(q3 - q1, 4), "p10_p90": round(p90 - p10, 4),
                        "fusion_inside": round(inside, 4)}  # fmt: skip
    summary["vertex_off_line_mm"] = [round(float(v), 1) for v in off]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
