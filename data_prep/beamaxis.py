"""The run's beam axis for ``ImageConfig.beam_axis = "run"``: fitted per run file.

In a real run the beam line is not the detector axis: the E-B angle shears every point
by (drift length) x tan(angle) along one azimuth, and the beam spot can sit off centre.
Both are properties of the run (fields, beam tune), so the line is measured from the
run itself, blind to labels: over many events the beam points pile up along one line,
while reaction tracks and noise spread out. The line is ``x = x0 + ax z``,
``y = y0 + ay z`` (mm, mm/mm), stored as ``(x0, ax, y0, ay)``; `centre_on_beam` moves
every point so that the line becomes the axis (the beam mask, the features' beam core
and the images are then centred on the beam).

The fit (`fit_beam_axis`) starts from the detector axis and refines the line with a
shrinking search radius (`RADII_MM`): in each of `N_SLICES` z slices, the charge-weighted
median x and y of the points within the radius of the current line; then a weighted
least-squares line through those medians (weight: points in the slice). Only points of
events with a few points near the line count (a beam ion leaves a line in its event, a
hot pad a point), and at the last radius only slices where the points stand out of
their surroundings. A run without a visible beam (too few such slices) gets `NO_AXIS`,
the detector axis, as before this option. Pure numpy; `data_prep.quantiles.beam_axes` fits each file
of a run from a seeded sample of its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from data_prep.errors import InputError

#: (x0, ax, y0, ay) of the detector axis
NO_AXIS: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
#: search radii around the current line, widest first (mm); each is applied twice
RADII_MM: tuple[float, ...] = (120.0, 80.0, 40.0, 20.0)
PASSES_PER_RADIUS = 2
N_SLICES = 20
#: a slice needs this many points near the line to give a median
MIN_SLICE_POINTS = 20
#: ... and, at the last radius r, this many times the points that the ring from r to 3r
#: around the line puts in a disc of radius r: a line of beam points, not a spread of
#: track and noise points that happens to be there
MIN_CONTRAST = 3.0
#: and the line needs this many such slices
MIN_SLICES = 5
#: only points of events with at least this many points near the line count: a beam ion
#: leaves a line of points in its event, a hot pad (one pad firing in every event, at
#: any z) one point, so a hot pad near the axis does not pass for a beam
MIN_EVENT_POINTS = 3
#: the largest slope (mm per mm of z) a beam line may have; `ImageConfig` enforces it
MAX_SLOPE = 0.3
#: events sampled per file (seeded; `data_prep.quantiles.file_beam_axis` reads them)
SAMPLE_EVENTS = 500
SAMPLE_SEED = 0


class FileAxis(NamedTuple):
    """A run file's fitted beam axis and how it was found (shown to the physicist)."""

    axis: tuple[float, float, float, float]
    note: str


def line_xy(axis: Sequence[float], z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the line ``axis`` at depths ``z``."""
    x0, ax, y0, ay = axis
    return x0 + ax * z, y0 + ay * z


def centre_on_beam(points: np.ndarray, axis: Sequence[float]) -> np.ndarray:
    """A copy of ``points`` (x, y, z, ...) with x and y measured from the line ``axis``."""
    out = np.array(points, dtype=np.float64)
    x, y = line_xy(axis, out[:, 2])
    out[:, 0] -= x
    out[:, 1] -= y
    return out


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which half of the total weight lies below (weights > 0)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def slice_medians(
    points: np.ndarray,
    event: np.ndarray,
    axis: Sequence[float],
    radius: float,
    z_range: Sequence[float],
    contrast: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per z slice with at least `MIN_SLICE_POINTS` points within ``radius`` of the line
    from events with `MIN_EVENT_POINTS` such points (``event``: each point's event), and
    ``contrast`` times the points the ring from ``radius`` to 3 ``radius`` puts in a disc
    of that radius: the slice's median z, charge-weighted median x and y, and its number
    of points."""
    x, y = line_xy(axis, points[:, 2])
    r = np.hypot(points[:, 0] - x, points[:, 1] - y)
    near = r < radius
    near &= np.bincount(event[near], minlength=event.max() + 1)[event] >= MIN_EVENT_POINTS
    edges = np.linspace(z_range[0], z_range[1], N_SLICES + 1)
    which = np.digitize(points[:, 2], edges) - 1
    # ring points per slice, scaled to the disc's area (the ring's is 8 times larger)
    ring = np.bincount(which[(r >= radius) & (r < 3 * radius) & (which >= 0)], minlength=N_SLICES)
    rows = []
    for k in range(N_SLICES):
        s = points[near & (which == k)]
        if len(s) >= MIN_SLICE_POINTS and len(s) >= contrast * ring[k] / 8.0:
            w = s[:, 3]
            rows.append(
                (np.median(s[:, 2]), weighted_median(s[:, 0], w), weighted_median(s[:, 1], w),
                 len(s))
            )  # fmt: skip
    if not rows:
        return np.empty(0), np.empty(0), np.empty(0), np.empty(0)
    z, mx, my, n = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
    return z, mx, my, n


def fit_line(z: np.ndarray, v: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """``(v0, slope)`` of ``v = v0 + slope z`` by least squares, residuals weighted by
    ``weights`` (squared residual x weight)."""
    w = weights / weights.sum()
    zm, vm = np.sum(w * z), np.sum(w * v)
    var = np.sum(w * (z - zm) ** 2)
    slope = np.sum(w * (z - zm) * (v - vm)) / var if var > 0 else 0.0
    return float(vm - slope * zm), float(slope)


def fit_beam_axis(
    points: np.ndarray, counts: np.ndarray, z_range: Sequence[float] = (0.0, 1000.0)
) -> tuple[tuple[float, float, float, float], str]:
    """The beam line ``(x0, ax, y0, ay)`` that the points (x, y, z, charge) of many events
    (``counts`` points each, in order) pile up along, and a word on how it was found.
    `NO_AXIS` when too few z slices hold points near the line, or the fitted slope is
    beyond `MAX_SLOPE`."""
    pts = np.asarray(points[:, :4], dtype=np.float64)
    event = np.repeat(np.arange(len(counts)), counts)
    positive = pts[:, 3] > 0  # the charge weights the medians
    pts, event = pts[positive], event[positive]
    if not len(pts):
        return NO_AXIS, "no point of positive charge: detector axis"
    axis = NO_AXIS
    for radius in RADII_MM:
        for _ in range(PASSES_PER_RADIUS):
            # the last radius keeps only slices where the beam stands out of its ring
            contrast = MIN_CONTRAST if radius == RADII_MM[-1] else 0.0
            z, mx, my, n = slice_medians(pts, event, axis, radius, z_range, contrast)
            if len(z) < MIN_SLICES:
                dense = f", {contrast:g} x their surroundings" if contrast else ""
                return NO_AXIS, (
                    f"no visible beam ({len(z)} of {N_SLICES} z slices hold >= "
                    f"{MIN_SLICE_POINTS} points within {radius:g} mm of the line{dense}): "
                    "detector axis"
                )
            x0, ax = fit_line(z, mx, n)
            y0, ay = fit_line(z, my, n)
            axis = (x0, ax, y0, ay)
    if max(abs(axis[1]), abs(axis[3])) >= MAX_SLOPE:
        return NO_AXIS, f"fitted slope beyond {MAX_SLOPE} mm/mm: detector axis"
    return axis, f"fitted on {len(z)} z slices"


def check_axis(axis: Sequence[float]) -> None:
    """One-line `InputError` unless ``axis`` is 4 finite numbers with slopes below
    `MAX_SLOPE`."""
    try:
        a = np.asarray(axis, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.full(1, np.nan)
    if a.shape != (4,) or not np.all(np.isfinite(a)) or max(abs(a[1]), abs(a[3])) >= MAX_SLOPE:
        raise InputError(
            f"run_beam_axis must be 4 finite numbers (x0, ax, y0, ay) with |ax|, |ay| < "
            f"{MAX_SLOPE}, got {axis!r}"
        )
