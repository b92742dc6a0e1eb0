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

**Direction.** The same sample says which way the beam travels (`beam_direction`).
Tools store events in other frames: pytpc puts z = 0 at the micromegas with the beam
along -z, our simulation, Spyral and attpc-engine at the window with the beam along +z
(`data_prep.readers.pytpc`). A file read in the wrong frame turns every track around,
and a model trained on forward tracks then fails (the trees' proton F1 0.83 -> 0.30 on
a nominal run, docs/sim-to-real.md, "A run read in another frame"). In inverse
kinematics (a heavy beam on protons and carbon) every reaction product leaves the
vertex forward, so the tracks of a run vote: the largest off-axis track of each sampled
event (at most `DIRECTION_EVENTS`; the features' DBSCAN,
`data_prep.features.track_clusters`), oriented away from the beam line, goes along +z or
-z. A run where at most `MAX_FORWARD_SHARE` of at least
`MIN_DIRECTED_TRACKS` tracks go along +z travels along -z: its axis gets a fifth number,
-1, and `centre_on_beam` turns it into the simulation frame by a proper rotation (180
deg about x: y -> -y, z -> z_lo + z_hi - z, so every curl keeps its sense). Runs along
+z keep the four numbers they always had.

**The event's own line** (``ImageConfig.event_beam_line``, after the run's line). Each
ion of a run enters within the beam spot and diverges from the run's line by up to a few
degrees (e15503b: <= 2 deg; 2.5 deg over 1 m is 44 mm), so the reacting ion, its vertex
and the heavy residue that follows it can lie outside the 30 mm core about the run's
line, where the features read them as tracks beside the proton (docs/recommended-model.md,
"The event's own beam line"). `event_line` finds the line an event's ion leaves where it
shows: every point near the run's line proposes the line from the run's line at the
window through itself; the proposal with most points within `EVENT_LINE_RADIUS_MM` wins
and is refitted (x and y linear in z, least squares on its points, twice). It counts
when it holds `EVENT_LINE_MIN_POINTS` points over `EVENT_LINE_MIN_SPAN_MM` in z, leaves
the run's line by at most `EVENT_LINE_MAX_SLOPE` and passes within
`EVENT_LINE_MAX_START_MM` of it at the window (an ion of the readout window that came
earlier or later drifts its line along z, off that point); else the run's line stays.
`centre_on_event_lines` then measures each event's x, y from its own line.
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
#: a track votes on the beam's direction when it has this many points, its principal
#: axis is steeper than ~12 deg to the pad plane (|cos| to z >= MIN_TRACK_COS) and its
#: distance from the beam line grows along that axis (|correlation| >= MIN_TRACK_CORR)
MIN_TRACK_POINTS = 10
MIN_TRACK_COS = 0.2
MIN_TRACK_CORR = 0.5
#: a run turns around only on clear evidence: at least this many voting tracks, at most
#: this share of them along +z. Simulated runs in the simulation frame have 70-97 % of
#: their largest tracks forward, the same runs turned around 6-25 % (docs/sim-to-real.md)
MIN_DIRECTED_TRACKS = 20
MAX_FORWARD_SHARE = 0.3
#: events of the sample whose tracks vote (evenly spread over it): ~100 votes, and the
#: DBSCAN costs ~3 ms per event
DIRECTION_EVENTS = 200
#: the fifth number of an axis whose run travels along -z
BACKWARD = -1.0
#: ``event_beam_line`` (`event_line`): points within this of the run's line propose lines
EVENT_LINE_SEARCH_MM = 60.0
#: a point on a line: pad size near the axis (~5-10 mm) and the diffusion
EVENT_LINE_RADIUS_MM = 8.0
#: ~4 deg off the run's line at most: past e15503b's <= 2 deg and the randomised 2.5
EVENT_LINE_MAX_SLOPE = 0.07
#: the line passes this close to the run's line at the window (z = 0): the spot's spread
EVENT_LINE_MAX_START_MM = 15.0
EVENT_LINE_MIN_POINTS = 8
EVENT_LINE_MIN_SPAN_MM = 100.0
#: points this close to the window propose no line (their slope from it is ill-defined)
EVENT_LINE_MIN_Z_MM = 50.0


class FileAxis(NamedTuple):
    """A run file's fitted beam axis and how it was found (shown to the physicist)."""

    axis: tuple[float, ...]  # (x0, ax, y0, ay), and BACKWARD for a run along -z
    note: str


def line_xy(axis: Sequence[float], z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the line ``axis`` at depths ``z`` (in the file's own frame)."""
    x0, ax, y0, ay = axis[:4]
    return x0 + ax * z, y0 + ay * z


def backward(axis: Sequence[float]) -> bool:
    """True when ``axis`` says its run's beam travels along -z (a fifth number, -1)."""
    return len(axis) == 5 and axis[4] == BACKWARD


def centre_on_beam(
    points: np.ndarray, axis: Sequence[float], z_range: Sequence[float] = (0.0, 1000.0)
) -> np.ndarray:
    """A copy of ``points`` (x, y, z, ...) with x and y measured from the line ``axis``;
    for a run along -z (`backward`) then turned 180 deg about x, z mirrored in the
    middle of ``z_range`` (the image's z range), into the simulation frame."""
    out = np.array(points, dtype=np.float64)
    x, y = line_xy(axis, out[:, 2])
    out[:, 0] -= x
    out[:, 1] -= y
    if backward(axis):
        out[:, 1] = -out[:, 1]
        out[:, 2] = (z_range[0] + z_range[1]) - out[:, 2]
    return out


def event_line(xyz: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x0, ax, y0, ay)`` of one event's beam ion where it shows (module doc), ``xyz``
    measured from the run's line; None where none counts (the run's line stays)."""
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    cand = xyz[(r < EVENT_LINE_SEARCH_MM) & (xyz[:, 2] >= EVENT_LINE_MIN_Z_MM)]
    if len(cand) < EVENT_LINE_MIN_POINTS:
        return None
    slopes = cand[:, :2] / cand[:, 2:3]  # each point's line from the run's line at z = 0
    steep = np.hypot(slopes[:, 0], slopes[:, 1]) > EVENT_LINE_MAX_SLOPE
    # (proposals, points): distance of every candidate from every proposed line
    dx = cand[None, :, 0] - slopes[:, None, 0] * cand[None, :, 2]
    dy = cand[None, :, 1] - slopes[:, None, 1] * cand[None, :, 2]
    support = (np.hypot(dx, dy) <= EVENT_LINE_RADIUS_MM).sum(axis=1)
    support[steep] = 0
    best = int(np.argmax(support))
    if support[best] < EVENT_LINE_MIN_POINTS:
        return None
    line = (0.0, float(slopes[best, 0]), 0.0, float(slopes[best, 1]))
    for _ in range(2):  # refit on its points: the spot puts the ion off the run's line
        x, y = line_xy(line, cand[:, 2])
        on = np.hypot(cand[:, 0] - x, cand[:, 1] - y) <= EVENT_LINE_RADIUS_MM
        if on.sum() < EVENT_LINE_MIN_POINTS or np.ptp(cand[on, 2]) < EVENT_LINE_MIN_SPAN_MM:
            return None
        z, even = cand[on, 2], np.ones(int(on.sum()))
        line = (*fit_line(z, cand[on, 0], even), *fit_line(z, cand[on, 1], even))
    if np.hypot(line[1], line[3]) > EVENT_LINE_MAX_SLOPE:
        return None
    if np.hypot(line[0], line[2]) > EVENT_LINE_MAX_START_MM:
        return None
    return line


def centre_on_event_lines(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A copy of ``points`` (x, y, z, ..., measured from the run's line, ``counts`` per
    event) with each event's x, y measured from its own `event_line` where it has one."""
    out = np.array(points, dtype=np.float64)
    ends = np.cumsum(np.asarray(counts, dtype=np.int64))
    for start, stop in zip(ends - counts, ends, strict=True):
        line = event_line(out[start:stop, :3])
        if line is not None:
            x, y = line_xy(line, out[start:stop, 2])
            out[start:stop, 0] -= x
            out[start:stop, 1] -= y
    return out


def track_direction(xyz: np.ndarray) -> float:
    """+1 / -1: one track leaves the beam line along +z / -z; 0 when it does not say
    (too few points, near the pad plane, or no clear way out from the line). ``xyz``:
    the track's points measured from the beam line."""
    if len(xyz) < MIN_TRACK_POINTS:
        return 0.0
    centred = xyz - xyz.mean(axis=0)
    axis = np.linalg.eigh(centred.T @ centred)[1][:, 2]
    s = centred @ axis
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    if np.std(s) == 0 or np.std(r) == 0 or abs(axis[2]) < MIN_TRACK_COS:
        return 0.0
    corr = float(np.corrcoef(s, r)[0, 1])
    if abs(corr) < MIN_TRACK_CORR:
        return 0.0
    return float(np.sign(axis[2] * corr))  # the axis oriented so that r grows along it


def beam_direction(
    points: np.ndarray, counts: np.ndarray, axis: Sequence[float]
) -> tuple[float, str]:
    """``(+1 or BACKWARD, note)``: which way the beam of a run travels, from the largest
    off-axis track of each of its events (at most `DIRECTION_EVENTS` of them; points x,
    y, z, charge of many events, ``counts`` each, in the file's frame; ``axis`` its fitted
    line)."""
    from data_prep.features import largest_tracks, track_clusters

    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) > DIRECTION_EVENTS:  # an evenly spread subset of the events
        ends = np.cumsum(counts)
        keep = np.unique(np.linspace(0, len(counts) - 1, DIRECTION_EVENTS).astype(np.int64))
        rows = np.concatenate([np.arange(ends[i] - counts[i], ends[i]) for i in keep])
        points, counts = points[rows], counts[keep]
    pts = centre_on_beam(np.asarray(points[:, :4], dtype=np.float64), axis[:4])
    _, labels = track_clusters(pts, counts)
    ends = np.cumsum(counts)
    votes = []
    for start, stop in zip(ends - counts, ends, strict=True):
        ids = largest_tracks(labels[start:stop], 1)
        if len(ids):
            votes.append(track_direction(pts[start:stop][labels[start:stop] == ids[0], :3]))
    votes = np.array(votes)
    n = int(np.sum(votes != 0))
    forward = int(np.sum(votes > 0))
    if n < MIN_DIRECTED_TRACKS:
        return 1.0, f"beam taken along +z ({n} directed tracks, fewer than {MIN_DIRECTED_TRACKS})"
    if forward <= MAX_FORWARD_SHARE * n:
        return BACKWARD, (
            f"beam along -z ({forward} of {n} tracks forward): turned into the simulation "
            "frame (y -> -y, z mirrored)"
        )
    return 1.0, f"beam along +z ({forward} of {n} tracks forward)"


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
    `MAX_SLOPE`, and optionally a fifth, `BACKWARD`."""
    try:
        a = np.asarray(axis, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.full(1, np.nan)
    ok = a.shape in ((4,), (5,)) and bool(np.all(np.isfinite(a)))
    if not ok or max(abs(a[1]), abs(a[3])) >= MAX_SLOPE or (len(a) == 5 and a[4] != BACKWARD):
        raise InputError(
            f"run_beam_axis must be 4 finite numbers (x0, ax, y0, ay) with |ax|, |ay| < "
            f"{MAX_SLOPE}, and optionally {BACKWARD:g} (a run along -z), got {axis!r}"
        )
