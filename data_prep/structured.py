"""Structured-noise cleaning: hot pads, firing AGET chips and time-bunched bursts.

Rules a physicist can check by eye, blind to labels (docs/feature-model.md, "Structured
noise: simulated and cleaned"); each acts on a whole batch at once:

- **hot pads**: a pad that fires in more than ``hot_pad_fraction`` of a run's events is
  not following any track; the run's hot pads are found from the run itself
  (`find_hot_pads`, a seeded sample of its events) and every point on them is dropped;
- **chip fires**: an AGET chip (``chip_channels`` consecutive pad ids) with at least
  ``chip_min_pads`` points within ±``chip_window_mm`` in z fired as a whole: its points
  within twice that window of the fire's median z are dropped;
- **bursts**: a z slice of ±``burst_window_mm`` holding at least ``burst_min_points``
  points spread over the pad plane (rms distance from their centroid at least
  ``burst_spread_mm``): the points of that slice with no other point within
  ``burst_isolation_mm`` (3-D) are dropped; track points have neighbours and stay;
- **sparks**: a discharge fires a whole region of the pad plane at one time. In a z slab
  of `SPARK_SLAB_MM`, its points fill an area: at least ``spark_min_cells`` cells of a
  `SPARK_CELL_MM` grid on the pad plane are filled together with all eight cells around
  them ("inner" cells, the middle of a filled 60 mm square), where a track, even a band
  of turns curling at one depth, is too narrow (at most 1 in any slab of 17,500
  simulated events of every kind, and 4 or more in all 197 sparks of
  ``scripts/spark_check.py``: its ``--scan``). The points of the filled cells within two
  cells of an inner cell are dropped: the disk and its rim (docs/sim-to-real.md, "Events
  with a spark"). The rule goes first, so the others judge the event without the spark.

Pad ids come from the point clouds, from the column each reader names
(`data_prep.events.Event.pad_column`: 5 for Spyral and attpc-engine, 4 for pytpc);
formats without them (ATTPCROOT exports, ROOT trees) get the pad at each point's (x, y)
on the AT-TPC pad plane (`data_prep.padplane`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from data_prep.beamaxis import NO_AXIS, line_xy
from data_prep.cluster import isolated_points
from data_prep.padplane import pads_at

if TYPE_CHECKING:
    from data_prep.events import Event

#: Pads whose points lie within this radius of the beam axis are never called hot: the
#: beam ions pass next to them in every event (physics, not electronics); the features and
#: the robust images leave this core out anyway (data_prep.features.CORE_MM).
HOT_PAD_CORE_MM = 30.0
#: Events sampled per run to find its hot pads (seeded: the same sample every time).
HOT_PAD_SEED = 0x5EED_0407
#: Spark rule: the pad-plane grid [mm] (a few pads wide, so a track fills one or two
#: cells across) and the z slab [mm], taken twice, the second offset by half a slab, so
#: a spark spread over a few mm in z lies whole in one of them.
SPARK_CELL_MM = 20.0
SPARK_SLAB_MM = 25.0


@dataclass(frozen=True)
class StructuredNoiseRules:
    """Thresholds of the rules (`data_prep.images.ImageConfig` holds them)."""

    hot_pad_fraction: float = 0.5
    chip_channels: int = 64
    chip_min_pads: int = 48
    chip_window_mm: float = 12.0
    burst_window_mm: float = 12.5
    burst_min_points: int = 15
    burst_spread_mm: float = 120.0
    burst_isolation_mm: float = 20.0
    spark_min_cells: int = 4  # 0: no spark rule


def pad_ids(event: Event) -> np.ndarray:
    """(N,) the id the rules know each point's pad by (-1: none).

    The pad: its reader's `Event.pad_column`, else the pad at the point's (x, y)
    (`data_prep.padplane.pads_at`; -1 where no pad centre is that close). Never a fixed
    column: pytpc keeps its pad ids in column 4 and the neighbour counts in Spyral's pad
    column 5, which read as pad ids made every point of a pytpc run "hot" (all events
    called other). Where the run's electronics map is given (`Event.pad_order`), the id
    is the pad's place in the electronics, so that the chip rule's 64 consecutive ids
    are one real AGET chip."""
    points, column = event.points, event.pad_column
    if column >= 0 and points.ndim == 2 and points.shape[1] > column:
        pads = np.rint(points[:, column]).astype(np.int64)
    else:
        pads = pads_at(points[:, :2])
    order = event.pad_order
    if order is None:
        return pads
    known = (pads >= 0) & (pads < len(order))
    return np.where(known, order[np.where(known, pads, 0)], -1)


def hot_pads_from_events(pads_per_event: Iterable[np.ndarray], fraction: float) -> np.ndarray:
    """Sorted pad ids that fire in more than ``fraction`` of the given events (one run).

    A pad with several points in one event counts once for that event.
    """
    counts: dict[int, int] = {}
    n = 0
    for pads in pads_per_event:
        n += 1
        for pad in np.unique(pads[pads >= 0]).tolist():
            counts[pad] = counts.get(pad, 0) + 1
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.array(sorted(p for p, c in counts.items() if c > fraction * n), dtype=np.int64)


def sample_positions(n_events: int, n_sample: int, key: int) -> np.ndarray:
    """Sorted positions of at most ``n_sample`` of ``n_events`` events, seeded by ``key``
    (e.g. the file's index) so the same file always gives the same sample."""
    if n_events <= n_sample:
        return np.arange(n_events)
    rng = np.random.default_rng([HOT_PAD_SEED, key])
    return np.sort(rng.choice(n_events, size=n_sample, replace=False))


def consecutive_ranges(positions: np.ndarray) -> list[tuple[int, int]]:
    """Sorted positions as ``[first, last)`` runs of consecutive ones: a sample read a
    range at a time (a reader streams a range cheaply)."""
    positions = np.asarray(positions, dtype=np.int64)
    if not len(positions):
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    return [(int(p[0]), int(p[-1]) + 1) for p in np.split(positions, breaks)]


def find_hot_pads(
    reader: Any, fraction: float, n_sample: int, axis: Sequence[float] | None = None
) -> dict[int, np.ndarray]:
    """Hot pads of each run in an open reader's file, from a seeded sample of at most
    ``n_sample`` of its events (`sample_positions`, keyed on the file's event count, so
    preprocessing and classifying the same file find the same pads). Pads in the beam core
    (`HOT_PAD_CORE_MM` of the detector axis, or of the file's beam line ``axis``,
    `data_prep.beamaxis`) are left out; bad events are skipped; a file without pad ids
    gives no hot pads."""
    axis = axis or NO_AXIS
    positions = sample_positions(len(reader), n_sample, len(reader))
    by_run: dict[int, list[np.ndarray]] = {}
    for first, last in consecutive_ranges(positions):
        for event in reader.iter_events(first, last, skip_bad=True):
            pads = pad_ids(event)
            x, y = line_xy(axis, event.points[:, 2])
            core = np.hypot(event.points[:, 0] - x, event.points[:, 1] - y) < HOT_PAD_CORE_MM
            by_run.setdefault(int(event.run), []).append(pads[~core])
    return {run: hot_pads_from_events(pads, fraction) for run, pads in by_run.items()}


def window_counts(key: np.ndarray, half: float) -> np.ndarray:
    """For sorted ``key``: how many keys lie within ±half of each."""
    return np.searchsorted(key, key + half, "right") - np.searchsorted(key, key - half, "left")


def _group_key(group: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A sortable key (group first, then z) whose groups lie far apart: z spans < 1e5 mm."""
    return group.astype(np.float64) * 1e5 + (z - z.min() if len(z) else z)


def group_medians(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """``np.median`` of ``values`` in each group ``0 .. n_groups - 1`` (0 for an empty
    one), from one sort: a spark lights hundreds of chips, and a median per chip by mask
    was quadratic in them (20 s of a 100-event file)."""
    order = np.lexsort((values, group))
    ordered = values[order]
    start = np.searchsorted(group[order], np.arange(n_groups), "left")
    size = np.bincount(group, minlength=n_groups)
    has = size > 0
    out = np.zeros(n_groups)
    low = ordered[(start + (size - 1) // 2)[has]]
    high = ordered[(start + size // 2)[has]]
    out[has] = (low + high) / 2  # np.median's mean of the middle two; one value when odd
    return out


def _chip_fires(
    z: np.ndarray, pads: np.ndarray, event: np.ndarray, rules: StructuredNoiseRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The chip rule's groups: the points with a pad, each one's (event, chip) group,
    whether it has ``chip_min_pads`` points of its group within the window (the fire's
    core), the groups that fired (sorted) and the number of chip slots per event."""
    known = np.flatnonzero(pads >= 0)
    if not len(known):
        return known, known, np.zeros(0, dtype=bool), known, 1
    chip = pads[known] // rules.chip_channels
    slots = int(pads.max()) // rules.chip_channels + 1
    group = event[known] * slots + chip
    zk = z[known]
    order = np.lexsort((zk, group))
    counts = np.empty(len(known), dtype=np.int64)
    counts[order] = window_counts(_group_key(group[order], zk[order]), rules.chip_window_mm)
    core = counts >= rules.chip_min_pads
    return known, group, core, np.unique(group[core]), slots


def chip_fires(
    z: np.ndarray, pads: np.ndarray, counts: np.ndarray, rules: StructuredNoiseRules
) -> np.ndarray:
    """(B,) how many chips fired as a whole in each event (see module doc): the detector
    health count of `data_prep.health`."""
    counts = np.asarray(counts, dtype=np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    _, _, _, fired, slots = _chip_fires(np.asarray(z, np.float64), np.asarray(pads), event, rules)
    return np.bincount(fired // slots, minlength=len(counts)).astype(np.int64)


def chip_fire_mask(
    z: np.ndarray, pads: np.ndarray, event: np.ndarray, rules: StructuredNoiseRules
) -> np.ndarray:
    """(N,) True for points of an AGET chip that fired as a whole (see module doc)."""
    drop = np.zeros(len(z), dtype=bool)
    known, group, core, fired, _ = _chip_fires(z, pads, event, rules)
    if not len(fired):
        return drop
    zk = z[known]
    # the fire's z: the median of its core points
    inverse = np.searchsorted(fired, group[core])
    centre = group_medians(zk[core], inverse, len(fired))
    slot = np.minimum(np.searchsorted(fired, group), len(fired) - 1)
    in_fired = fired[slot] == group
    near = np.abs(zk - centre[slot]) <= 2 * rules.chip_window_mm
    drop[known[in_fired & near]] = True
    return drop


def burst_mask(
    xyz: np.ndarray, counts: np.ndarray, event: np.ndarray, rules: StructuredNoiseRules
) -> np.ndarray:
    """(N,) True for isolated points inside a dense, plane-wide z slice (see module doc)."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((xyz[:, 2], event))
    key = _group_key(event[order], xyz[order, 2])
    lo = np.searchsorted(key, key - rules.burst_window_mm, "left")
    hi = np.searchsorted(key, key + rules.burst_window_mm, "right")
    size = hi - lo
    # rms distance of the slice's points from their centroid, from running sums
    x, y = xyz[order, 0], xyz[order, 1]
    sums = [np.concatenate([[0.0], np.cumsum(v)]) for v in (x, y, x * x, y * y)]
    mean_x, mean_y, mean_xx, mean_yy = ((s[hi] - s[lo]) / size for s in sums)
    spread = np.sqrt(np.maximum(mean_xx - mean_x**2 + mean_yy - mean_y**2, 0.0))
    dense = np.zeros(n, dtype=bool)
    dense[order] = (size >= rules.burst_min_points) & (spread >= rules.burst_spread_mm)
    candidates = np.flatnonzero(dense)
    dense[candidates] = isolated_points(xyz, counts, rules.burst_isolation_mm, candidates)
    return dense


def _spark_grids(xyz: np.ndarray, event: np.ndarray) -> Iterable[tuple]:
    """Per slab binning (two, offset by half a slab): each point's cell key (one plane of
    keys per event and slab), the filled cells, which of them are inner (filled with the
    eight around them), the number of key planes per event and the grid's row width."""
    cell = np.floor(xyz[:, :2] / SPARK_CELL_MM).astype(np.int64)
    cell -= cell.min(axis=0)
    width = int(cell.max()) + 5  # a key two cells away never wraps into the next row
    ring = [dx * width + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    for offset in (0.0, SPARK_SLAB_MM / 2):
        slab = np.floor((xyz[:, 2] + offset) / SPARK_SLAB_MM).astype(np.int64)
        slab -= slab.min()
        n_slabs = int(slab.max()) + 1
        key = (event * n_slabs + slab) * width * width + (cell[:, 0] + 2) * width + cell[:, 1] + 2
        filled = np.unique(key)
        inner = np.all([np.isin(filled + d, filled, assume_unique=True) for d in ring], axis=0)
        yield key, filled, inner, n_slabs, width


def spark_cells(xyz: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) the most inner cells (see module doc) of any z slab of each event: what the
    spark rule compares with ``spark_min_cells`` (``scripts/spark_check.py --scan``)."""
    counts = np.asarray(counts, dtype=np.int64)
    best = np.zeros(len(counts), dtype=np.int64)
    if not len(xyz):
        return best
    event = np.repeat(np.arange(len(counts)), counts)
    for _, filled, inner, n_slabs, width in _spark_grids(xyz, event):
        planes, n = np.unique(filled[inner] // (width * width), return_counts=True)
        np.maximum.at(best, planes // n_slabs, n)
    return best


def spark_mask(xyz: np.ndarray, event: np.ndarray, rules: StructuredNoiseRules) -> np.ndarray:
    """(N,) True for the points of a spark (see module doc): in a z slab of an event with
    at least ``spark_min_cells`` grid cells filled together with the eight around them,
    the points of the filled cells within two cells of one."""
    drop = np.zeros(len(xyz), dtype=bool)
    if rules.spark_min_cells <= 0 or not len(xyz):
        return drop
    for key, filled, inner, _, width in _spark_grids(xyz, event):
        planes, per_plane = np.unique(filled[inner] // (width * width), return_counts=True)
        sparked = planes[per_plane >= rules.spark_min_cells]
        if not len(sparked):
            continue
        inner_cells = filled[inner & np.isin(filled // (width * width), sparked)]
        # the disk: its cells within two of an inner cell (its rim, where the grid cuts it)
        around = (dx * width + dy for dx in range(-2, 3) for dy in range(-2, 3))
        near = np.unique(np.concatenate([inner_cells + d for d in around]))
        drop |= np.isin(key, near)
    return drop


class NoiseParts(NamedTuple):
    """(N,) masks of the points each rule drops (`structured_noise_parts`)."""

    hot: np.ndarray
    spark: np.ndarray
    chip: np.ndarray
    burst: np.ndarray

    @property
    def any(self) -> np.ndarray:
        return self.hot | self.spark | self.chip | self.burst


def structured_noise_parts(
    points: np.ndarray,
    counts: np.ndarray,
    pads: np.ndarray,
    hot: np.ndarray,
    rules: StructuredNoiseRules,
    spark: np.ndarray | None = None,
) -> NoiseParts:
    """What each rule drops (`structured_noise_mask` is their union; the health report
    counts them apart). A spark goes first: the chip and burst rules then see the event
    without it (its thousands of points made their medians and the burst rule's DBSCAN
    slow, and judge nothing)."""
    counts = np.asarray(counts, dtype=np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    pads = np.asarray(pads)
    spark = spark_mask(xyz, event, rules) if spark is None else np.asarray(spark, dtype=bool)
    hot = np.asarray(hot, dtype=bool)
    if not spark.any():  # the usual batch: no copies
        chip = chip_fire_mask(xyz[:, 2], pads, event, rules)
        return NoiseParts(hot, spark, chip, burst_mask(xyz, counts, event, rules))
    rest = np.flatnonzero(~spark)
    left = np.bincount(event[rest], minlength=len(counts))
    chip, burst = np.zeros(len(xyz), dtype=bool), np.zeros(len(xyz), dtype=bool)
    chip[rest] = chip_fire_mask(xyz[rest, 2], pads[rest], event[rest], rules)
    burst[rest] = burst_mask(xyz[rest], left, event[rest], rules)
    return NoiseParts(hot, spark, chip, burst)


def structured_noise_mask(
    points: np.ndarray,
    counts: np.ndarray,
    pads: np.ndarray,
    hot: np.ndarray,
    rules: StructuredNoiseRules,
    spark: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) True for the points the rules call structured noise.

    ``pads`` are the points' pad ids (-1: unknown), ``hot`` is True for points on a pad
    of their run's hot-pad list; ``spark``: `spark_mask` of these points where the caller
    has it already (to count the events with a spark). Each event is judged on its own
    points only (`structured_noise_parts`).
    """
    return structured_noise_parts(points, counts, pads, hot, rules, spark).any
