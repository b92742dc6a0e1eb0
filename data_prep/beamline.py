"""Beam ions as straight lines near the axis: find them per event and mark their points.

Every AT-TPC event carries beam: the reacting ion from the window to the vertex, and in
a busy readout window other ions that cross the whole chamber. A fixed cylinder about
the detector axis (``ImageConfig.beam_mask_mm``) removes the ions that stay on the axis;
one that enters off centre, diverges (2.5 deg over 1 m is 44 mm) or is scattered by a few
degrees on the way leaves that cylinder and looks like a track. Real analyses find the
beam line and the vertex on it instead. Here, event by event:

1. candidates: the points within ``search_mm`` of the detector axis;
2. RANSAC: lines through pairs of candidates (a fixed-seed draw per event, so an event's
   answer never depends on its batch) whose direction is within ``max_angle_deg`` of z;
   the one with most candidates within ``radius_mm`` wins; a least-squares fit of x(z),
   y(z) to the candidates within half that radius of it refines it (twice);
3. it is beam if the refined line is still within ``max_angle_deg`` of z, has at least
   ``min_points`` inliers and they span at least ``min_length_mm`` in z;
4. every point of the event within ``radius_mm`` of the line *between its first and last
   inlier in z* is marked (so the line stops at the vertex: a track leaving the vertex
   forward is not cut beyond it); the marked points leave the candidates and the search
   repeats, up to ``max_lines`` ions. With ``stop_at_vertex`` the line also stops at the
   first track that leaves it (`_vertex_z`): the reacting ion ends at the vertex, and a
   forward product along it (a heavy residual, a recoil at a few degrees) is kept; an
   extra ion passing the vertex is then cut there too.

A track leaving the vertex at more than ``max_angle_deg`` to z is never a line here
(tested by hand in tests/test_beamline.py); one within it and near the axis is, as it
is for the fixed cylinder.
"""

from __future__ import annotations

import numpy as np

#: lines tried per ion and event (pairs of candidates); 256 pairs of a beam of >= 20 %
#: of the candidates miss it with probability (1 - 0.04) ** 256 < 1e-4
TRIALS = 256


def beam_line_points(
    points: np.ndarray,
    counts: np.ndarray,
    *,
    search_mm: float,
    radius_mm: float,
    max_angle_deg: float,
    min_points: int,
    min_length_mm: float,
    max_lines: int,
    max_start_mm: float = np.inf,
    stop_at_vertex: bool = False,
) -> np.ndarray:
    """(N,) True for the points on a fitted beam line of their event (see module doc).

    ``points``: ``(sum(counts), 3+)`` x, y, z [mm] (further columns ignored); ``counts``:
    points per event, in order.
    """
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    beam = np.zeros(len(xyz), dtype=bool)
    near = np.hypot(xyz[:, 0], xyz[:, 1]) < search_mm
    tan_max = np.tan(np.deg2rad(max_angle_deg))
    ends = np.cumsum(counts)
    for start, stop in zip(ends - counts, ends, strict=True):
        if near[start:stop].sum() < min_points:
            continue
        beam[start:stop] = _event_lines(
            xyz[start:stop], near[start:stop], radius_mm, tan_max, min_points,
            min_length_mm, max_lines, max_start_mm, stop_at_vertex,
        )  # fmt: skip
    return beam


def _event_lines(
    xyz: np.ndarray,
    near: np.ndarray,
    radius: float,
    tan_max: float,
    min_points: int,
    min_length: float,
    max_lines: int,
    max_start: float,
    stop_at_vertex: bool,
) -> np.ndarray:
    rng = np.random.default_rng(0)  # per event: the answer does not depend on the batch
    beam = np.zeros(len(xyz), dtype=bool)
    for _ in range(max_lines):
        cand = np.flatnonzero(near & ~beam)
        if len(cand) < min_points:
            break
        line = _ransac(xyz[cand], rng, radius, tan_max, min_points)
        if line is None:
            break
        # refine: x(z), y(z) by least squares on the candidates within half the radius
        # (twice): a track leaving the vertex has few points there and barely pulls
        origin, direction = line
        for _ in range(2):
            inl = cand[_distance(xyz[cand], origin, direction) <= 0.5 * radius]
            if len(inl) < 2 or np.ptp(xyz[inl, 2]) == 0:
                break
            z = xyz[inl, 2]
            design = np.column_stack([np.ones_like(z), z])
            (x0, y0), (ax, ay) = np.linalg.lstsq(design, xyz[inl, :2], rcond=None)[0]
            origin = np.array([x0, y0, 0.0])
            direction = np.array([ax, ay, 1.0]) / np.sqrt(1.0 + ax * ax + ay * ay)
        if direction[2] < np.cos(np.arctan(tan_max)):
            break
        inl = cand[_distance(xyz[cand], origin, direction) <= radius]
        z = xyz[inl, 2]
        if len(inl) < min_points or np.ptp(z) < min_length or z.min() > max_start:
            break
        # the segment of the line the ion covers (its first to last inlier in z), widened
        # by the radius: a point beyond the vertex is not beam
        lo, hi = z.min() - radius, z.max() + radius
        dist = _distance(xyz, origin, direction)
        on = (dist <= radius) & (xyz[:, 2] >= lo) & (xyz[:, 2] <= hi)
        if stop_at_vertex:
            on &= xyz[:, 2] <= _vertex_z(xyz[:, 2], dist, on | beam, radius) + radius
        beam |= on
    return beam


def _vertex_z(z: np.ndarray, dist: np.ndarray, taken: np.ndarray, radius: float) -> float:
    """z of the first track leaving the line: the smallest z at which three points off it
    (``taken`` False) but within 3 radii of it lie within 2 radii of z of each other (a
    track's start, not a stray hit); +inf when there is none. Products move downstream
    (+z) from the vertex, so everything on the line beyond it is not the reacting ion."""
    zs = np.sort(z[~taken & (dist <= 3.0 * radius)])
    if len(zs) < 3:
        return np.inf
    starts = np.flatnonzero(zs[2:] - zs[:-2] <= 2.0 * radius)
    return float(zs[starts[0]]) if len(starts) else np.inf


def _ransac(
    pts: np.ndarray, rng: np.random.Generator, radius: float, tan_max: float, min_points: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The line (origin, unit direction) through a pair of ``pts`` within the angle cut
    with the most points within ``radius``; None when no pair passes the cut."""
    i = rng.integers(0, len(pts), TRIALS)
    j = rng.integers(0, len(pts), TRIALS)
    d = pts[j] - pts[i]
    dz = np.abs(d[:, 2])
    ok = (dz > 0) & (np.hypot(d[:, 0], d[:, 1]) <= tan_max * dz)
    if not ok.any():
        return None
    origins = pts[i[ok]]
    dirs = d[ok] / np.linalg.norm(d[ok], axis=1, keepdims=True)
    # (T, M) distances of every point to every trial line: |(p - o) x u|
    rel = pts[None, :, :] - origins[:, None, :]
    cross = np.cross(rel, dirs[:, None, :])
    n_in = (np.einsum("tmk,tmk->tm", cross, cross) <= radius * radius).sum(axis=1)
    best = int(np.argmax(n_in))
    if n_in[best] < min_points:
        return None
    return origins[best], dirs[best]


def _distance(pts: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Distance of each point to the line through ``origin`` along unit ``direction``."""
    return np.linalg.norm(np.cross(pts - origin, direction), axis=1)
