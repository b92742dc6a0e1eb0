"""DBSCAN for a whole batch of point clouds at once (scikit-learn's definition).

Used to drop stray pad hits before projection (`data_prep.images`) and to find the
tracks whose features `data_prep.features` computes.
"""

from __future__ import annotations

import numpy as np


def dbscan_labels(
    points: np.ndarray, counts: np.ndarray, eps: float, min_samples: int
) -> np.ndarray:
    """(N,) DBSCAN cluster of every point (scikit-learn's definition), -1 for noise.

    A core point has at least ``min_samples`` points (itself included) within ``eps``;
    core points within ``eps`` of each other share a cluster; a border point joins the
    cluster of its nearest core point within ``eps``; the rest is noise. All events of
    the batch go into one KD-tree, each moved ``4 * eps`` beyond the previous one's
    extent along x, so no pair crosses events and cluster ids are unique in the batch.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xyz = np.asarray(points[:, :3], dtype=np.float64)
    labels = np.full(len(xyz), -1, dtype=np.int64)
    if xyz.shape[0] == 0:
        return labels
    event = np.repeat(np.arange(len(counts)), counts)
    span = float(np.ptp(xyz[:, 0])) + 4.0 * eps
    moved = xyz.copy()
    moved[:, 0] += event * span
    n_near = cKDTree(moved).query_ball_point(moved, eps, return_length=True)
    core = np.flatnonzero(n_near >= min_samples)
    if not len(core):
        return labels
    core_tree = cKDTree(moved[core])
    pairs = core_tree.query_pairs(eps, output_type="ndarray")
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
        shape=(len(core), len(core)),
    )
    _, component = connected_components(graph, directed=False)
    dist, nearest = core_tree.query(moved, k=1, distance_upper_bound=eps)
    reached = dist <= eps
    labels[reached] = component[nearest[reached]]
    labels[core] = component  # a core point is its own nearest core point anyway
    return labels


def dbscan_noise(
    points: np.ndarray, counts: np.ndarray, eps: float, min_samples: int
) -> np.ndarray:
    """(N,) True for the points DBSCAN (scikit-learn's definition) labels noise, per
    event (see `dbscan_labels`)."""
    return dbscan_labels(points, counts, eps, min_samples) < 0
