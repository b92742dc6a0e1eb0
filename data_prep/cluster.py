"""DBSCAN for a whole batch of point clouds at once (scikit-learn's definition).

Used to drop stray pad hits before projection (`data_prep.images`) and to find the
tracks whose features `data_prep.features` computes.
"""

from __future__ import annotations

import numpy as np


def _separated(points: np.ndarray, counts: np.ndarray, eps: float) -> np.ndarray:
    """(N, 3) float64 positions with each event moved ``4 * eps`` beyond the previous
    one's extent along x, so one KD-tree holds the batch and no pair crosses events."""
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    event = np.repeat(np.arange(len(counts)), counts)
    span = float(np.ptp(xyz[:, 0])) + 4.0 * eps if len(xyz) else 0.0
    moved = xyz.copy()
    moved[:, 0] += event * span
    return moved


def _core(moved: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, float]:
    """(N,) True for core points (``min_samples`` points, itself included, within
    ``eps``) and the KD-tree bound that makes a query's strict ``<`` scikit-learn's ``<=``.

    The ``min_samples``-th nearest point within ``eps``: a k-nearest query, ~1.5x cheaper
    than counting every neighbour of a dense track."""
    from scipy.spatial import cKDTree

    bound = float(np.nextafter(eps, np.inf))
    if len(moved) < min_samples:
        return np.zeros(len(moved), dtype=bool), bound
    dist, _ = cKDTree(moved).query(moved, k=min_samples, distance_upper_bound=bound)
    return dist.reshape(len(moved), -1)[:, -1] <= eps, bound


def dbscan_labels(
    points: np.ndarray, counts: np.ndarray, eps: float, min_samples: int
) -> np.ndarray:
    """(N,) DBSCAN cluster of every point (scikit-learn's definition), -1 for noise.

    A core point has at least ``min_samples`` points (itself included) within ``eps``;
    core points within ``eps`` of each other share a cluster; a border point joins the
    cluster of its nearest core point within ``eps``; the rest is noise. Cluster ids are
    unique in the batch (`_separated`).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    labels = np.full(len(points), -1, dtype=np.int64)
    moved = _separated(points, counts, eps)
    core_mask, bound = _core(moved, eps, min_samples)
    core = np.flatnonzero(core_mask)
    if not len(core):
        return labels
    core_tree = cKDTree(moved[core])
    pairs = core_tree.query_pairs(eps, output_type="ndarray")
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
        shape=(len(core), len(core)),
    )
    _, component = connected_components(graph, directed=False)
    dist, nearest = core_tree.query(moved, k=1, distance_upper_bound=bound)
    reached = dist <= eps
    labels[reached] = component[nearest[reached]]
    labels[core] = component  # a core point is its own nearest core point anyway
    return labels


def dbscan_noise(
    points: np.ndarray, counts: np.ndarray, eps: float, min_samples: int
) -> np.ndarray:
    """(N,) True for the points DBSCAN (scikit-learn's definition) labels noise, per
    event: not core, and no core point within ``eps``. Cheaper than `dbscan_labels`
    (no cluster graph): only the non-core points look for a core one."""
    from scipy.spatial import cKDTree

    moved = _separated(points, counts, eps)
    core, bound = _core(moved, eps, min_samples)
    if not core.any():
        return np.ones(len(moved), dtype=bool)
    noise = ~core
    near, _ = cKDTree(moved[core]).query(moved[noise], k=1, distance_upper_bound=bound)
    noise[noise] = ~(near <= eps)
    return noise


def isolated_points(
    points: np.ndarray, counts: np.ndarray, eps: float, which: np.ndarray
) -> np.ndarray:
    """(len(which),) True where the points at indices ``which`` have no other point of
    their event within ``eps`` (inclusive, as scikit-learn counts it): DBSCAN noise at
    ``min_samples=2``, asked of a few points only -- the burst rule's question, ~5x
    cheaper than `dbscan_labels` of the whole batch."""
    from scipy.spatial import cKDTree

    which = np.asarray(which, dtype=np.int64)
    if not len(which):
        return np.zeros(0, dtype=bool)
    moved = _separated(points, counts, eps)
    bound = float(np.nextafter(eps, np.inf))  # the tree's strict < as scikit-learn's <=
    dist, _ = cKDTree(moved).query(moved[which], k=2, distance_upper_bound=bound)
    return ~(dist[:, 1] <= eps)
