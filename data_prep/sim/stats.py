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
#: mm: points this close to the beam axis count as beam-axis points (beam pads reach 19.7)
AXIS_RADIUS_MM = 30.0
#: mm: a point with no other point this close is an isolated (stray) hit
ISOLATION_MM = 15.0


def cloud_measures(points: np.ndarray) -> dict[str, float]:
    """Label-free measures of one point cloud, for simulated and real data alike.

    ``n_points``; ``points_per_pad`` (points per distinct pad position x, y);
    ``median_charge`` (amplitude, column 3); ``axis_points`` (within `AXIS_RADIUS_MM`
    of the axis); ``isolated`` (no other point within `ISOLATION_MM` in 3-D).
    """
    from scipy.spatial import cKDTree

    n = len(points)
    if n == 0:
        return {"n_points": 0, "points_per_pad": 0.0, "median_charge": 0.0,
                "axis_points": 0, "isolated": 0}  # fmt: skip
    pads = len(np.unique(np.round(points[:, :2], 2), axis=0))
    pairs = cKDTree(points[:, :3]).query(points[:, :3], k=min(2, n))[0]
    nearest = pairs[:, 1] if n > 1 else np.full(n, np.inf)
    return {
        "n_points": n,
        "points_per_pad": n / pads,
        "median_charge": float(np.median(points[:, 3])),
        "axis_points": int(np.sum(np.hypot(points[:, 0], points[:, 1]) < AXIS_RADIUS_MM)),
        "isolated": int(np.sum(nearest > ISOLATION_MM)),
    }


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
                stats.update(cloud_measures(points))
                stats["n_noise"] = int(row["n_noise"])
                stats["n_beam"] = int(row["n_beam"]) if "n_beam" in row.dtype.names else 0
                stats["track_points"] = int(np.sum(labels == EJECTILE)) or float("nan")
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
            "median_track_points": med("track_points"),
            "median_points": med("n_points"),
            "median_points_per_pad": med("points_per_pad"),
            "median_charge": med("median_charge"),
            "median_axis_points": med("axis_points"),
            "median_isolated": med("isolated"),
            "mean_beam_points": float(np.mean([s["n_beam"] for s in items])),
        }
    return out
