"""Detector health of a run file, and where it lies outside a reference.

Before a model's calls on a run are trusted, a physicist asks whether the run looks like
what the model was trained on. `file_health` measures, on a seeded sample of one run
file's events, the numbers that say how the detector ran -- each from a rule a
physicist can check by eye, blind to labels:

- **points and charge**: points per event, the point charge's median and 99th
  percentile, the share of points at the 12-bit ADC's full scale (`ADC_FULL_SCALE`), the
  depth z of the points (1st and 99th percentile) and the share outside the image's
  ``z_range`` (a drift window or calibration off);
- **beam**: the run file's fitted beam line (`data_prep.beamaxis`), its angle to the
  detector axis, its offset at mid-drift and its direction;
- **electronics**: the hot pads (`data_prep.structured.find_hot_pads`); the dead pads,
  pads that never fire while the pads at their radius fire often (`dead_pads`); the
  chips that fire whole per event by the chip rule's grouping (64 consecutive ids, or
  the run's electronics map) and by the chips the run teaches (`data_prep.chipmap`),
  the dense instants no chip of the rule's grouping explains (chips wired otherwise,
  when many), the events in which the burst rule drops points, those with a spark,
  and the share of points the structured-noise rules drop;
- **charge unit**: the run file's unit from its elastic-proton band
  (`data_prep.quantiles.file_charge_unit`) and the band tracks per event found;
- **beam core's edge**: of the events with a point 10-30 mm beyond the features' beam
  core (``track_core_mm``), the share with a point in the 10 mm ring just outside it
  (`core_numbers`): near 1 wherever those pads read, since every track leaves the beam
  through the ring; low on a detector blind past the core, whose track starts the
  features then miss.

`outside` compares each number with its range over reference files (e.g. the simulated
run files a model was trained on; the chips learned per event only against files of
about the same length, `LENGTH_BOUND`): a number outside says the run differs from the
reference there, not that the model fails -- docs/sim-to-real.md, "Detector health",
says which differences the recommended model was measured to stand. Ours: the idea is a
run-quality summary of the kind every experiment keeps; no paper or code is followed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.beamaxis import FileAxis
from data_prep.images import ImageConfig
from data_prep.quantiles import ChargeUnit
from data_prep.structured import StructuredNoiseRules

#: the AGET's 12-bit ADC full scale: a point at or above it is saturated
ADC_FULL_SCALE = 4095.0
#: events sampled per file (seeded): the hot pads and the charge unit use their own
#: samples, of `data_prep.structured` and `data_prep.quantiles`, as preprocessing does
SAMPLE_EVENTS = 1000
SAMPLE_SEED = 0
#: A pad is judged dead when it holds no point of the sample while the pads around the
#: beam at its radius (`RING_MM` rings, the median pad of the ring) hold at least
#: `DEAD_MIN_EXPECTED` events' points: a live pad is silent there with a chance below
#: e^-10 if it fired as often as its ring (the ring's median, not a neighbour's count,
#: so a dead chip's block of silent pads does not hide itself).
RING_MM = 10.0
DEAD_MIN_EXPECTED = 10.0
#: The ring just outside the features' beam core (``ImageConfig.track_core_mm``) where a
#: track leaving the beam is first read, and the band beyond it that says a track passed
#: (`core_numbers`): 10 mm holds two rings of the small inner pads, so a live ring is
#: seen in nearly every such event (0.95-1.00 in the randomised training files; 5 mm
#: rings read 0.85-0.99, too noisy to tell a blind ring from chance)
CORE_EDGE_MM = 10.0
BEYOND_MM = 20.0

#: the report kept in a trained run's directory: the reference its runs are checked
#: against (``attpc-classify health --model``, ``classify``, the Spyral phase)
MODEL_REFERENCE = "health.json"

#: numbers that grow with the events a file holds (a chip is learned from 3 whole fires
#: in one file: 100-event files learn few): judged only against reference files measured
#: on about as many events, within a factor `LENGTH_FACTOR`
LENGTH_BOUND = ("learned_fires_per_event",)
LENGTH_FACTOR = 2.0

#: the numbers `outside` compares, with their units (for the table)
METRICS: dict[str, str] = {
    "points_per_event": "median points per event",
    "empty_fraction": "share of events without a point",
    "charge_median": "median point charge [ADC]",
    "charge_p99": "99th percentile point charge [ADC]",
    "saturated_fraction": "share of points at the ADC's full scale",
    "z_p01": "1st percentile z [mm]",
    "z_p99": "99th percentile z [mm]",
    "outside_z_fraction": "share of points outside z_range",
    "beam_angle_deg": "beam line's angle to the detector axis [deg]",
    "beam_offset_mm": "beam line's distance from the axis at mid-drift [mm]",
    "beam_backward": "beam along -z (1: the file's frame is turned about)",
    "hot_pads": "hot pads",
    "dead_fraction": "share of the pads judged that are dead",
    "chip_fires_per_event": "chips firing whole per event (the rule's chips)",
    "learned_fires_per_event": "chips firing whole per event (chips learned from the file)",
    "unexplained_dense_per_event": "dense instants per event no chip of the rule explains",
    "burst_fraction": "share of events in which the burst rule drops points",
    "spark_fraction": "share of events with a spark",
    "rules_fraction": "share of points the structured-noise rules drop",
    "charge_unit": "charge unit [ADC/mm]",
    "band_tracks_per_event": "elastic-proton band tracks per event",
    "core_edge_seen": "share of events seen beyond the beam core seen at its edge",
}


@dataclass(frozen=True)
class FileHealth:
    """What `file_health` measured on one run file (NaN: not measured)."""

    path: str
    events: int  # events in the file
    sampled: int  # readable events measured
    bad: int  # events of the sample that could not be read
    points_per_event: float
    empty_fraction: float
    charge_median: float
    charge_p99: float
    saturated_fraction: float
    z_p01: float
    z_p99: float
    outside_z_fraction: float
    beam_angle_deg: float
    beam_offset_mm: float
    beam_backward: bool
    beam_note: str
    hot_pads: int
    hot_pad_ids: tuple[int, ...]
    dead_pads: int
    judged_pads: int  # pads whose ring fires often enough to judge them dead or alive
    dead_fraction: float  # dead_pads / judged_pads: comparable between sample sizes
    chip_fires_per_event: float
    learned_chips: int  # -1: not learned (the file is read with an electronics map)
    learned_fires_per_event: float
    unexplained_dense_per_event: float
    burst_fraction: float
    spark_fraction: float
    rules_fraction: float
    charge_unit: float
    band_tracks_per_event: float
    # NaN in reports written before it was measured: not judged against them
    core_edge_seen: float = math.nan

    def to_json(self) -> dict[str, Any]:
        """A JSON object (NaN as null: JSON has no NaN)."""
        out = asdict(self)
        out["hot_pad_ids"] = list(self.hot_pad_ids)
        return {k: None if isinstance(v, float) and v != v else v for k, v in out.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileHealth:
        """The inverse of `to_json` (null back to NaN)."""
        names = {f.name for f in fields(cls)}
        values = {k: (math.nan if v is None else v) for k, v in data.items() if k in names}
        values["hot_pad_ids"] = tuple(data.get("hot_pad_ids") or ())
        return cls(**values)


@dataclass(frozen=True)
class Known:
    """What a caller measured on the files already, by ``str(path)``, with the config the
    report uses: their charge units and fitted beam lines (``classify`` has both)."""

    units: dict[str, ChargeUnit] = field(default_factory=dict)
    axes: dict[str, FileAxis] = field(default_factory=dict)

    def of(self, paths: Sequence[str | Path]) -> Known:
        """The entries of ``paths``, keyed as given (matched on the resolved path)."""

        def pick(found: dict) -> dict:
            by_file = {Path(k).resolve(): v for k, v in found.items()}
            return {str(p): by_file[Path(p).resolve()] for p in paths
                    if Path(p).resolve() in by_file}  # fmt: skip

        return Known(pick(self.units), pick(self.axes))


def _nan_quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def _share(mask: np.ndarray) -> float:
    """The share of True in ``mask`` (NaN when empty)."""
    return float(np.mean(mask)) if len(mask) else math.nan


def dead_pads(
    pad_events: np.ndarray, centres: np.ndarray, core_mm: float
) -> tuple[np.ndarray, int]:
    """Pads that never fired while their ring fires often (see `RING_MM`), and how many
    pads could be judged. ``pad_events``: (n_pads,) events in which each pad held a
    point; ``centres``: (n_pads, 2) the pads' centres about the beam line; pads within
    ``core_mm`` of the beam are not judged (the beam, not the electronics, fills them)."""
    radius = np.hypot(centres[:, 0], centres[:, 1])
    ring = np.floor(radius / RING_MM).astype(np.int64)
    expected = np.zeros(len(radius))
    for r in np.unique(ring):
        members = ring == r
        expected[members] = np.median(pad_events[members])
    judged = (expected >= DEAD_MIN_EXPECTED) & (radius >= core_mm)
    return np.flatnonzero(judged & (pad_events == 0)), int(judged.sum())


def _read_sample(reader: Any, n_events: int, seed: int) -> tuple[list, int]:
    """The sampled events of an open reader (bad ones skipped) and how many were bad."""
    from data_prep.quantiles import sample_positions
    from data_prep.structured import consecutive_ranges

    events, bad = [], 0
    for first, last in consecutive_ranges(sample_positions([len(reader)], n_events, seed)[0]):
        got = list(reader.iter_events(first, last, skip_bad=True))
        bad += (last - first) - len(got)
        events.extend(got)
    return events, bad


def _mid_drift(z_range: Sequence[float]) -> float:
    """The middle of the drift, where the beam line is read (a tilt moves it least)."""
    return 0.5 * (z_range[0] + z_range[1])


def _beam(axis: Sequence[float], z_range: Sequence[float]) -> dict[str, float]:
    """The line's angle to the detector axis [deg] and its distance from it at
    mid-drift (where a tilt moves it least)."""
    from data_prep.beamaxis import line_xy

    _, ax, _, ay = axis[:4]
    return {
        "beam_angle_deg": math.degrees(math.atan(math.hypot(ax, ay))),
        "beam_offset_mm": math.hypot(*line_xy(axis, _mid_drift(z_range))),
        "beam_backward": len(axis) == 5,
    }


def point_numbers(points: np.ndarray, counts: np.ndarray, z_range: Sequence[float]) -> dict:
    """Points per event, charge and depth of the points (x, y, z, charge) as stored."""
    charge, z = points[:, 3], points[:, 2]
    positive = charge[charge > 0]
    return {
        "points_per_event": float(np.median(counts)),
        "empty_fraction": float(np.mean(counts == 0)),
        "charge_median": _nan_quantile(positive, 0.5),
        "charge_p99": _nan_quantile(positive, 0.99),
        "saturated_fraction": _share(charge >= ADC_FULL_SCALE),
        "z_p01": _nan_quantile(z, 0.01),
        "z_p99": _nan_quantile(z, 0.99),
        "outside_z_fraction": _share((z < z_range[0]) | (z >= z_range[1])),
    }


def core_numbers(centred: np.ndarray, counts: np.ndarray, core_mm: float) -> dict:
    """Of the events with a point `CORE_EDGE_MM` to `CORE_EDGE_MM` + `BEYOND_MM` beyond
    the beam core (``centred``: the points about the beam line; ``counts``: per event),
    the share with a point in the ring ``[core_mm, core_mm + CORE_EDGE_MM)`` (NaN when
    no event reaches the band)."""
    event = np.repeat(np.arange(len(counts)), counts)
    radius = np.hypot(centred[:, 0], centred[:, 1])
    edge = (radius >= core_mm) & (radius < core_mm + CORE_EDGE_MM)
    band = (radius >= core_mm + CORE_EDGE_MM) & (radius < core_mm + CORE_EDGE_MM + BEYOND_MM)
    at_edge = np.bincount(event[edge], minlength=len(counts)) > 0
    in_band = np.bincount(event[band], minlength=len(counts)) > 0
    return {"core_edge_seen": _share(at_edge[in_band])}


def noise_numbers(
    points: np.ndarray, counts: np.ndarray, pads: np.ndarray, on_hot: np.ndarray,
    rules: StructuredNoiseRules,
) -> dict:  # fmt: skip
    """The structured-noise rules on the sample (points centred on the beam, as
    preprocessing applies them): chips firing whole per event, the events in which the
    burst rule drops points, those with a spark, the share of points dropped."""
    from data_prep.structured import chip_fires, structured_noise_parts

    event = np.repeat(np.arange(len(counts)), counts)
    parts = structured_noise_parts(points, counts, pads, on_hot, rules)
    # the chip rule judges the events without their sparks, as in the mask
    rest = ~parts.spark
    left = np.bincount(event[rest], minlength=len(counts))
    fires = chip_fires(points[rest, 2], pads[rest], left, rules)
    return {
        "chip_fires_per_event": float(fires.mean()),
        "burst_fraction": _share(np.bincount(event[parts.burst], minlength=len(counts)) > 0),
        "spark_fraction": _share(np.bincount(event[parts.spark], minlength=len(counts)) > 0),
        "rules_fraction": _share(parts.any),
    }


def pad_numbers(events: Sequence, axis: Sequence[float], z_range: Sequence[float]) -> dict:
    """Dead pads (`dead_pads`) by the pads' places on the pad plane (never the
    electronics order), about the beam line at mid-drift."""
    from data_prep.beamaxis import line_xy
    from data_prep.padplane import pad_centres
    from data_prep.structured import HOT_PAD_CORE_MM, pad_ids

    centres = pad_centres()
    pad_events = np.zeros(len(centres), dtype=np.int64)
    for e in events:
        pads = pad_ids(replace(e, pad_order=None))
        pad_events[np.unique(pads[pads >= 0])] += 1
    line = np.array(line_xy(axis, _mid_drift(z_range)))
    dead, judged = dead_pads(pad_events, centres - line, HOT_PAD_CORE_MM)
    # more events judge more pads: the share, not the count, compares files of any length
    share = len(dead) / judged if judged else math.nan
    return {"dead_pads": len(dead), "judged_pads": judged, "dead_fraction": share}


def dense_numbers(events: Sequence, rules: StructuredNoiseRules, learn: bool = True) -> dict:
    """The events' dense instants (`data_prep.chipmap.dense_instants`: at least
    ``chip_min_pads`` distinct pads within the chip window of z) per event that no chip
    of the rule's grouping explains (fewer than ``chip_min_pads`` of their pads in one
    chip: tracks along the pad plane, or chips wired otherwise than the rule groups
    them), and with ``learn`` the chips they teach (`data_prep.chipmap.learn_chips`) and
    those chips' whole fires per event."""
    from data_prep.chipmap import ChipLearning, dense_instants, learn_chips
    from data_prep.padplane import pad_centres
    from data_prep.structured import pad_ids

    learning = ChipLearning(min_pads=rules.chip_min_pads, window_mm=rules.chip_window_mm)
    instants = [s for e in events for s in dense_instants(e.points[:, 2], pad_ids(e), learning)]
    explained = sum(
        int(np.bincount(s // rules.chip_channels).max() >= rules.chip_min_pads) for s in instants
    )
    out: dict[str, Any] = {"unexplained_dense_per_event": (len(instants) - explained) / len(events)}
    if learn:
        found = learn_chips(instants, len(pad_centres()), learning)
        chips = replace(found, events=len(events))
        out |= {"learned_chips": chips.n_chips, "learned_fires_per_event": chips.fires_per_event}
    return out


def file_health(
    path: str | Path,
    config: ImageConfig,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = SAMPLE_EVENTS,
    seed: int = SAMPLE_SEED,
    unit: ChargeUnit | None = None,
    axis: FileAxis | None = None,
) -> FileHealth:
    """The health of one run file (see module doc), measured on a seeded sample of at
    most ``n_events`` of its events with ``config``'s rules, z range and band.
    ``unit``, ``axis``: the file's charge unit and fitted beam line where the caller
    measured them already, with the same config (``classify`` does: the features of the
    unit's sample are the report's costliest part); a unit pooled from other files is
    not the file's own (NaN here)."""
    from data_prep.beamaxis import centre_on_beam
    from data_prep.errors import InputError
    from data_prep.images import event_pads
    from data_prep.quantiles import file_beam_axis, file_charge_unit
    from data_prep.readers import detect_format, open_events
    from data_prep.structured import find_hot_pads

    if (detect_format(path) if format == "auto" else format) == "images":
        raise InputError("health is measured on point clouds, not an image file", path=path)
    options = dict(reader_options or {})
    options.setdefault("charge", config.charge_column)
    rules = config.rules
    found = axis or file_beam_axis(path, config, format=format, reader_options=reader_options)
    axis = found.axis
    with open_events(path, format=format, **options) as reader:
        n_file = len(reader)
        hot = find_hot_pads(reader, rules.hot_pad_fraction, config.hot_pad_sample, axis)
        events, bad = _read_sample(reader, n_events, seed)
    if not events:
        raise InputError("no readable event to measure", path=path)
    counts = np.array([e.n_points for e in events], dtype=np.int64)
    raw = np.concatenate([e.points[:, :4] for e in events])
    pads, on_hot = event_pads(events, hot)
    centred = centre_on_beam(raw, axis, config.z_range)
    values: dict[str, Any] = {
        **point_numbers(raw, counts, config.z_range),
        **_beam(axis, config.z_range),
        **noise_numbers(centred, counts, pads, on_hot, rules),
        **pad_numbers(events, axis, config.z_range),
        **core_numbers(centred, counts, config.track_core_mm),
        "learned_chips": -1,
        "learned_fires_per_event": math.nan,
        "charge_unit": math.nan,
        "band_tracks_per_event": math.nan,
    }
    # a run read with its map needs no learning
    values.update(dense_numbers(events, rules, learn=not options.get("pad_electronics")))
    if config.charge_calibration != "none" and config.features != "none":
        if unit is None:
            unit = file_charge_unit(path, config, axis=axis, format=format,
                                    reader_options=reader_options)  # fmt: skip
        values["charge_unit"] = math.nan if unit.pooled else unit.unit
        values["band_tracks_per_event"] = unit.tracks / max(unit.events, 1)
    hot_ids = sorted({int(p) for run_pads in hot.values() for p in run_pads})
    return FileHealth(
        path=str(path), events=n_file, sampled=len(events), bad=bad, beam_note=found.note,
        hot_pads=len(hot_ids), hot_pad_ids=tuple(hot_ids), **values,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Against a reference: the files a model was trained on
# --------------------------------------------------------------------------------------


def reference_ranges(reference: Sequence[FileHealth]) -> dict[str, tuple[float, float]]:
    """Per metric of `METRICS`, its smallest and largest value over the reference files
    (metrics no reference file measured are left out), and under ``"sampled"`` the
    events the reference files were measured on."""
    ranges = {}
    for name in (*METRICS, "sampled"):
        values = np.array([getattr(h, name) for h in reference], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values):
            ranges[name] = (float(values.min()), float(values.max()))
    return ranges


def like_length(health: FileHealth, ranges: dict[str, tuple[float, float]]) -> bool:
    """Whether ``health`` was measured on about as many events as the reference files
    (within `LENGTH_FACTOR`): the `LENGTH_BOUND` numbers are judged only then."""
    low, high = ranges.get("sampled", (0.0, math.inf))
    return low / LENGTH_FACTOR <= health.sampled <= high * LENGTH_FACTOR


def outside(
    health: FileHealth, ranges: dict[str, tuple[float, float]]
) -> list[tuple[str, float, float, float]]:
    """``(metric, value, low, high)`` for each metric of ``health`` outside the
    reference's range (a metric not measured on either side is not judged, nor a
    `LENGTH_BOUND` one of a file not of the reference files' length)."""
    found = []
    for name in METRICS:
        if name not in ranges or (name in LENGTH_BOUND and not like_length(health, ranges)):
            continue
        low, high = ranges[name]
        value = float(getattr(health, name))
        if value == value and not low <= value <= high:
            found.append((name, value, low, high))
    return found


def write_health(
    path: str | Path, healths: Sequence[FileHealth], config: ImageConfig,
    reference: Sequence[FileHealth] = (),
) -> None:  # fmt: skip
    """The report as JSON, atomically: each file's numbers, the config measured with,
    and with a reference its files, ranges and each file's numbers outside them."""
    import json

    from data_prep.atomic import atomic_path

    ranges = reference_ranges(reference) if reference else {}
    report = {
        "image_config": config.to_dict(),
        "files": [h.to_json() for h in healths],
        "reference": {
            "files": [h.to_json() for h in reference],
            "ranges": {k: list(v) for k, v in ranges.items()},
            "outside": {h.path: [list(o) for o in outside(h, ranges)] for h in healths},
        },
    }
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1) + "\n")


def read_health(path: str | Path) -> list[FileHealth]:
    """The files' numbers of a report `write_health` wrote (to serve as a reference)."""
    import json

    from data_prep.errors import InputError

    try:
        report = json.loads(Path(path).read_text())
        return [FileHealth.from_json(f) for f in report["files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"not a health report ({err})", path=path) from None


def _health_of(path: str, config: ImageConfig, format: str, reader_options: dict | None,
               n_events: int, known: Known) -> FileHealth:  # fmt: skip
    """`file_health` of one path: a task of `data_prep.tasks.run_tasks`."""
    return file_health(path, config, format=format, reader_options=reader_options,
                       n_events=n_events, unit=known.units.get(path),
                       axis=known.axes.get(path))  # fmt: skip


def measure_files(
    paths: Sequence[str | Path],
    config: ImageConfig,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = SAMPLE_EVENTS,
    executor: Executor | None = None,
    known: Known | None = None,
) -> list[FileHealth]:
    """`file_health` of each file, in order, on ``executor``'s workers when given
    (``known``: the files' charge units and beam lines already measured)."""
    files = [str(p) for p in paths]
    known = known or Known()
    if executor is None or len(files) < 2:
        return [_health_of(f, config, format, reader_options, n_events, known) for f in files]
    from data_prep.tasks import run_tasks

    found: dict[str, FileHealth] = {}

    def done(path: str, health: FileHealth) -> None:
        found[path] = health

    run_tasks(executor, _health_of, files, config, format, reader_options, n_events, known,
              on_result=done)  # fmt: skip
    return [found[f] for f in files]


def _number(value: float, extra: int = 0) -> str:
    """A metric's value in a few characters (NaN: -), with ``extra`` more digits."""
    if value != value:
        return "-"
    short = f"{value:.{3 + extra}g}"
    # 999.7 rounds to "1e+03": fixed point, as for 1,000 and above
    return short if abs(value) < 1000 and "e+" not in short else f"{value:,.{extra}f}"


def _apart(value: float, low: float, high: float) -> tuple[str, str, str]:
    """``value``, ``low``, ``high`` with the fewest digits that print ``value`` apart
    from the bound it crossed (1,006 outside 1,005-1,005 reads as a contradiction)."""
    bound = low if value < low else high
    for extra in range(4):
        if _number(value, extra) != _number(bound, extra):
            break
    return _number(value, extra), _number(low, extra), _number(high, extra)


def health_table(
    healths: Sequence[FileHealth], ranges: dict[str, tuple[float, float]], show: int = 10
) -> str:
    """For the physicist: per metric, its median and range over the files, the
    reference's range and how many files lie outside it; then each file's numbers
    outside (at most ``show`` files)."""
    lines = [f"{'metric':<60} {'files: median (min-max)':<26} {'reference':<16} outside"]
    for name, what in METRICS.items():
        values = np.array([getattr(h, name) for h in healths], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if not len(finite):
            continue
        here = f"{_number(np.median(finite))} ({_number(finite.min())}-{_number(finite.max())})"
        low, high = ranges.get(name, (math.nan, math.nan))
        ref = f"{_number(low)}-{_number(high)}" if name in ranges else ""
        n_out = sum(1 for h in healths for o in outside(h, ranges) if o[0] == name)
        row = f"{what:<60} {here:<26} {ref:<16} {n_out if name in ranges else ''}"
        lines.append(row.rstrip())
    flagged = [(h, outside(h, ranges)) for h in healths]
    flagged = [(h, o) for h, o in flagged if o]
    lines += [outside_line(h, found) for h, found in flagged[:show]]
    unlike = [h for h in healths if ranges and not like_length(h, ranges)]
    if unlike:
        lo, hi = ranges["sampled"]
        lines.append(
            f"{', '.join(LENGTH_BOUND)} not judged for {len(unlike)} file(s) of another length "
            f"than the reference files ({lo:,.0f}-{hi:,.0f} events sampled; "
            f"{unlike[0].path}: {unlike[0].sampled:,})"
        )
    if len(flagged) > show:
        lines.append(f"... and {len(flagged) - show} more file(s) outside the reference")
    return "\n".join(lines)


def outside_items(found: Sequence[tuple[str, float, float, float]]) -> str:
    """``name value (low-high)`` of each number outside the reference, joined."""
    items = []
    for name, v, lo, hi in found:
        value, low, high = _apart(v, lo, hi)
        items.append(f"{name} {value} ({low}-{high})")
    return ", ".join(items)


def outside_line(health: FileHealth, found: Sequence[tuple[str, float, float, float]]) -> str:
    """One line for the physicist: the file and its numbers outside the reference."""
    if not found:
        return f"{health.path}: inside the reference's ranges"
    return f"{health.path}: outside the reference: {outside_items(found)}"


def check_files(
    paths: Sequence[str | Path],
    config: ImageConfig,
    reference: str | Path,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = SAMPLE_EVENTS,
    known: Known | None = None,
    executor: Executor | None = None,
) -> list[tuple[FileHealth, list[tuple[str, float, float, float]]]]:
    """Each file's health and its numbers outside the ranges of the report
    ``reference`` (`write_health`'s JSON; ``known``, ``executor`` as for
    `measure_files`)."""
    ranges = reference_ranges(read_health(reference))
    healths = measure_files(paths, config, format=format, reader_options=reader_options,
                            n_events=n_events, known=known, executor=executor)  # fmt: skip
    return [(h, outside(h, ranges)) for h in healths]


def health_beside(output: str | Path) -> Path:
    """Where the Spyral phase writes a run's health report: beside its predictions,
    ``<stem>_health.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_health.json")


def not_measured(path: str | Path, err: Exception) -> str:
    """One line for a file whose health could not be measured where runs are classified:
    the calls are written already, so the report must not take them down. A bad file
    says why (`InputError`); anything else is named as the error it is (a bug to
    report)."""
    from data_prep.errors import InputError

    if isinstance(err, InputError):
        return str(err)
    return f"{path}: {type(err).__name__}: {err} (please report it)"
