"""Per-class point-cloud statistics of simulated run files (docs and physics tests).

The *track* of an event is its light ejectile (per-point label 2: the proton, the 12C
recoil, the alpha), measured from the reaction vertex stored in ``/events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from data_prep.events import CLASS_NAMES

EJECTILE = 2  # attpc-engine nucleus index of the ejectile


def track_stats(points: np.ndarray, point_labels: np.ndarray, vertex: np.ndarray) -> dict:
    """Length, density and charge of the ejectile track of one event.

    Returns
    -------
    dict
        ``length_mm`` (farthest ejectile point from the vertex), ``points_per_mm``
        (ejectile points per mm of that length), ``charge_per_mm`` (summed amplitude per
        mm, ADC/mm), ``amplitude`` (median ADC); NaN when the event has no ejectile points
        (noise-only).
    """
    track = points[point_labels == EJECTILE]
    if len(track) == 0 or not np.all(np.isfinite(vertex)):
        nan = float("nan")
        return {"length_mm": nan, "points_per_mm": nan, "charge_per_mm": nan, "amplitude": nan}
    # farthest point, not path length: a spiral's path is longer, so this understates
    # protons, which only strengthens "protons are long"
    length = max(float(np.max(np.linalg.norm(track[:, :3] - vertex, axis=1))), 1.0)
    return {
        "length_mm": length,
        "points_per_mm": len(track) / length,
        "charge_per_mm": float(track[:, 3].sum()) / length,
        "amplitude": float(np.median(track[:, 3])),
    }


def class_statistics(paths: Iterable[str | Path]) -> dict[str, dict[str, float]]:
    """Per class: events, mean points and noise hits, median track length, density, charge.

    Parameters
    ----------
    paths
        Run files written by `data_prep.simulate.simulate`.
    """
    rows: dict[str, list[dict]] = {name: [] for name in CLASS_NAMES}
    for path in paths:
        with h5py.File(path, "r") as f:
            for row in f["events"][()]:
                n = int(row["event"])
                points = f[f"cloud/cloud_{n}"][()]
                labels = f[f"cloud/labels_{n}"][()]
                vertex = np.array([row["vertex_x"], row["vertex_y"], row["vertex_z"]], float)
                stats = track_stats(points, labels, vertex)
                stats["n_points"] = len(points)
                stats["n_noise"] = int(row["n_noise"])
                rows[CLASS_NAMES[int(row["label"])]].append(stats)
    out = {}
    for name, items in rows.items():
        if not items:
            continue

        def med(key: str, items=items) -> float:
            values = np.array([s[key] for s in items], dtype=float)
            values = values[np.isfinite(values)]
            return float(np.median(values)) if len(values) else float("nan")

        out[name] = {
            "events": len(items),
            "mean_points": float(np.mean([s["n_points"] for s in items])),
            "mean_noise_hits": float(np.mean([s["n_noise"] for s in items])),
            "median_track_mm": med("length_mm"),
            "median_points_per_mm": med("points_per_mm"),
            "median_charge_per_mm": med("charge_per_mm"),
            "median_amplitude_adc": med("amplitude"),
        }
    return out
