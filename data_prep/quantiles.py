"""Per-run values measured on a seeded sample of the run's events: the charge quantiles
for ``ImageConfig.charge_norm = "quantile"``, each run file's beam axis for
``ImageConfig.beam_axis = "run"`` (`beam_axes`, fitted by `data_prep.beamaxis`) and each
run file's charge unit for ``ImageConfig.charge_calibration = "proton_band"``
(`charge_units`, `data_prep.features.band_unit`).

A run's point-charge distribution (after the beam mask and denoising) is summarised by
its quantiles at `data_prep.images.QUANTILE_LEVELS`, computed on a seeded random sample
of at most `SAMPLE_EVENTS` events of the run. The training set's quantiles are stored in
the image file and so in the model (``charge_quantiles``); every run projected for the
model (``preprocess --reference``, ``classify``, ``adapt``) gets its own
(``run_quantiles``), and `data_prep.images.map_quantiles` moves the one onto the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from data_prep import beamaxis
from data_prep.beamaxis import FileAxis
from data_prep.errors import InputError
from data_prep.images import QUANTILE_LEVELS, ImageConfig, clean_points

#: events drawn from a run to estimate its quantiles (~1e5 points: the 1 % and 99 %
#: quantiles to a few per cent)
SAMPLE_EVENTS = 2000
SAMPLE_SEED = 0
#: events of a run file whose features find its elastic-proton band (~15 % of e15503b's
#: events have a first track there: ~300 tracks, the median to ~2 %)
UNIT_EVENTS = 2000
UNIT_BATCH = 256  # events featured at once


def charge_quantiles(points: np.ndarray, counts: np.ndarray, config: ImageConfig) -> np.ndarray:
    """Quantiles (at `QUANTILE_LEVELS`) of the positive point charges left after the
    config's beam mask and denoising -- the points the images are made of."""
    pts, _ = clean_points(points, counts, config, normalise=False)
    charge = pts[:, 3][pts[:, 3] > 0]
    if charge.size == 0:
        raise InputError("charge_norm=quantile: the run has no point of positive charge")
    return np.quantile(charge, QUANTILE_LEVELS)


def sample_positions(lengths: Sequence[int], n_events: int, seed: int) -> list[np.ndarray]:
    """Per file, the sorted positions of a seeded uniform sample of at most ``n_events``
    events of all files together."""
    total = int(sum(lengths))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, min(n_events, total), replace=False)) if total else []
    pick = np.asarray(pick, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return [pick[(pick >= s) & (pick < s + n)] - s for s, n in zip(starts, lengths, strict=True)]


def sample_points(
    readers: Sequence,
    n_events: int,
    seed: int,
    axes: Sequence[Sequence[float]] | None = None,
    z_range: Sequence[float] = (0.0, 1000.0),
    rules: ImageConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y, z, charge) and per-event counts of a seeded uniform sample of at most
    ``n_events`` events of the open ``readers`` together (bad events are skipped); with
    ``axes``, each reader's points centred on its run's beam axis (`data_prep.beamaxis`;
    ``z_range``: the image's, about which a run along -z is turned); with ``rules`` (a
    config with ``structured_noise="rules"``), without what its structured-noise rules
    drop, each file's own hot pads found as `preprocess` finds them."""
    from data_prep.images import event_pads, remove_structured_noise
    from data_prep.structured import find_hot_pads

    positions = sample_positions([len(r) for r in readers], n_events, seed)
    points, counts = [], []
    for k, (reader, pos) in enumerate(zip(readers, positions, strict=True)):
        events = [e for i in pos for e in reader.iter_events(int(i), int(i) + 1, skip_bad=True)]
        if not events:
            continue
        axis = None if axes is None else axes[k]
        pts = [e.points[:, :4] if axis is None else beamaxis.centre_on_beam(e.points[:, :4],
               axis, z_range) for e in events]  # fmt: skip
        n = np.array([len(e.points) for e in events], np.int64)
        pts = np.concatenate(pts)
        if rules is not None:
            hot = find_hot_pads(reader, rules.hot_pad_fraction, rules.hot_pad_sample, axis)
            pads, on_hot = event_pads(events, hot)
            pts, n = remove_structured_noise(pts, n, rules, pads, on_hot)
        points.append(pts)
        counts.append(n)
    if not counts:
        return np.empty((0, 4)), np.zeros(0, np.int64)
    return np.concatenate(points), np.concatenate(counts)


def run_quantiles(
    paths: Sequence[str | Path],
    config: ImageConfig,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = SAMPLE_EVENTS,
    seed: int = SAMPLE_SEED,
    axes: dict[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """Charge quantiles of the run made of the point-cloud files ``paths`` (one sample
    across all of them; bad events are skipped). ``axes``: each file's beam axis (by
    ``str(path)``) for ``beam_axis=run``."""
    from data_prep.readers import open_events

    options = dict(reader_options or {})
    options.setdefault("charge", config.charge_column)
    readers = [open_events(p, format=format, **options) for p in paths]
    # the points the images are made of: the structured noise gone first, as in `project`
    rules = config if config.structured_noise == "rules" and config.quantiles_after_rules else None
    try:
        shifts = None if axes is None else [axes[str(p)] for p in paths]
        points, counts = sample_points(readers, n_events, seed, shifts, config.z_range, rules)
    finally:
        for r in readers:
            r.close()
    if not len(counts):
        raise InputError("charge_norm=quantile: no readable event in the run", path=paths[0])
    return charge_quantiles(points, counts, config)


def for_run(
    config: ImageConfig,
    paths: Sequence[str | Path],
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    axes: dict[str, Sequence[float]] | None = None,
) -> ImageConfig:
    """``config`` ready to project the run ``paths``: its ``run_quantiles`` set; where the
    config has no reference yet (preprocessing a training set), the run is the reference.
    ``axes``: each file's beam axis (`beam_axes`) for ``beam_axis=run``.
    Any other ``charge_norm`` returns ``config`` unchanged."""
    if config.charge_norm != "quantile" or not paths:
        return config
    found = run_quantiles(
        paths, config, format=format, reader_options=reader_options, axes=axes or None
    )
    q = tuple(float(v) for v in found)
    return replace(config, run_quantiles=q, charge_quantiles=config.charge_quantiles or q)


def file_beam_axis(
    path: str | Path,
    config: ImageConfig,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = beamaxis.SAMPLE_EVENTS,
    seed: int = beamaxis.SAMPLE_SEED,
) -> FileAxis:
    """`data_prep.beamaxis.fit_beam_axis` and `~data_prep.beamaxis.beam_direction` on a
    seeded sample of at most ``n_events`` events of one run file (bad events are
    skipped)."""
    from data_prep.readers import open_events

    options = dict(reader_options or {})
    options.setdefault("charge", config.charge_column)
    with open_events(path, format=format, **options) as reader:
        points, counts = sample_points([reader], n_events, seed)
    if not len(counts):
        return FileAxis(beamaxis.NO_AXIS, "no readable event: detector axis")
    axis, note = beamaxis.fit_beam_axis(points, counts, config.z_range)
    direction, which_way = beamaxis.beam_direction(points, counts, axis)
    if direction == beamaxis.BACKWARD:
        axis = (*axis, beamaxis.BACKWARD)
    return FileAxis(axis, f"{note}; {which_way}")


def beam_axes(
    config: ImageConfig,
    paths: Sequence[str | Path],
    *,
    format: str = "auto",
    reader_options: dict | None = None,
) -> dict[str, FileAxis]:
    """Per file (keyed by ``str(path)``), its fitted beam axis and how it was found; empty
    unless ``config.beam_axis == "run"``."""
    if config.beam_axis != "run":
        return {}
    return {
        str(p): file_beam_axis(p, config, format=format, reader_options=reader_options)
        for p in paths
    }


class ChargeUnit(NamedTuple):
    """A run file's charge unit (`data_prep.features.band_unit`; NaN: none found), the
    band tracks that set it and the events sampled (shown to the physicist), the band
    tracks' log10 ADC per mm (for `pool_units`), and, for a file with too few band tracks
    of its own, how many files' band tracks were pooled for its unit (0: its own)."""

    unit: float
    tracks: int
    events: int
    band: tuple[float, ...] = ()
    pooled: int = 0

    @property
    def note(self) -> str:
        if self.unit != self.unit:  # NaN
            return (f"no charge unit: {self.tracks} band tracks in {self.events} events; "
                    "its charges in run units are missing")  # fmt: skip
        if self.pooled:
            return (f"{self.unit:.4g} ADC/mm, the unit of the {self.pooled} files' band tracks "
                    f"pooled ({self.tracks} of its own in {self.events} events)")  # fmt: skip
        return f"{self.unit:.4g} ADC/mm from {self.tracks} band tracks in {self.events} events"


def file_charge_unit(
    path: str | Path,
    config: ImageConfig,
    *,
    axis: Sequence[float] = (),
    format: str = "auto",
    reader_options: dict | None = None,
    n_events: int = UNIT_EVENTS,
    seed: int = SAMPLE_SEED,
) -> ChargeUnit:
    """The charge unit of one run file from the features of a seeded sample of at most
    ``n_events`` of its events (all of a smaller file; bad events skipped), computed as
    the model's features are: centred on the file's beam ``axis``, its own hot pads."""
    from data_prep.features import band_values, median_unit
    from data_prep.images import project
    from data_prep.readers import open_events
    from data_prep.structured import consecutive_ranges, find_hot_pads

    options = dict(reader_options or {})
    options.setdefault("charge", config.charge_column)
    # the run columns at unit 1 are log10 ADC (`band_unit` reads them so)
    cfg = replace(config.features_only(), run_beam_axis=tuple(axis), run_charge_unit=1.0)
    features = []
    n = 0
    with open_events(path, format=format, **options) as reader:
        hot = None
        if cfg.structured_noise != "none":  # as preprocess and classify find them
            hot = find_hot_pads(reader, cfg.hot_pad_fraction, cfg.hot_pad_sample, axis or None)
        batch = []
        for first, last in consecutive_ranges(sample_positions([len(reader)], n_events, seed)[0]):
            for event in reader.iter_events(first, last, skip_bad=True):
                batch.append(event)
                if len(batch) == UNIT_BATCH:
                    features.append(project(batch, cfg, hot).features)
                    n, batch = n + len(batch), []
        if batch:
            features.append(project(batch, cfg, hot).features)
            n += len(batch)
    if not features:
        return ChargeUnit(float("nan"), 0, 0)
    band = band_values(np.concatenate(features), cfg.features, cfg.calibration_cot,
                       cfg.calibration_log10_invariant)  # fmt: skip
    unit, tracks = median_unit(band, cfg.calibration_min_tracks)  # as `band_unit`
    return ChargeUnit(unit, tracks, n, tuple(band.tolist()))


def _unit_of(file: tuple[str, tuple[float, ...]], config: ImageConfig, format: str,
             reader_options: dict | None) -> ChargeUnit:  # fmt: skip
    """`file_charge_unit` of ``(path, beam axis)``: a task of `data_prep.tasks.run_tasks`."""
    path, axis = file
    return file_charge_unit(path, config, axis=axis, format=format,
                            reader_options=reader_options)  # fmt: skip


def charge_units(
    config: ImageConfig,
    paths: Sequence[str | Path],
    *,
    axes: dict[str, Sequence[float]] | None = None,
    format: str = "auto",
    reader_options: dict | None = None,
    executor: Executor | None = None,
) -> dict[str, ChargeUnit]:
    """Per file (keyed by ``str(path)``, in order), its charge unit (`file_charge_unit`;
    ``axes``: each file's beam axis for ``beam_axis=run``), on ``executor``'s workers
    when given, a file with too few band tracks given the files' pooled unit
    (`pool_units`); empty unless ``config.charge_calibration`` is set."""
    if config.charge_calibration == "none":
        return {}
    files = [(str(p), tuple((axes or {}).get(str(p), ()))) for p in paths]
    found: dict[str, ChargeUnit] = {}
    if executor is None or len(files) < 2:
        for file in files:
            found[file[0]] = _unit_of(file, config, format, reader_options)
        return pool_units(found, config)
    from data_prep.tasks import run_tasks

    def done(file: tuple[str, tuple[float, ...]], unit: ChargeUnit) -> None:
        found[file[0]] = unit

    run_tasks(executor, _unit_of, files, config, format, reader_options, on_result=done)
    return pool_units({p: found[p] for p, _ in files}, config)


def pool_units(units: dict[str, ChargeUnit], config: ImageConfig) -> dict[str, ChargeUnit]:
    """``units`` with every file that has none (fewer band tracks than
    ``calibration_min_tracks``) given the unit of all the files' band tracks together,
    when ``calibration_fallback`` is "pooled" and they reach that number: short files of
    one run then read in its unit. (Files of runs with other gains get a compromise: one
    unit for all of them cost 0.03 proton F1 on the randomised test, against 0.05 with
    none; docs/sim-to-real.md, "A run's charge unit".)"""
    missing = {p for p, u in units.items() if u.unit != u.unit}
    if config.calibration_fallback != "pooled" or not missing:
        return units
    from data_prep.features import median_unit

    band = np.array([v for u in units.values() for v in u.band], dtype=np.float64)
    unit, _ = median_unit(band, config.calibration_min_tracks)
    if unit != unit:  # the pool is short of band tracks too
        return units
    return {p: u._replace(unit=unit, pooled=len(units)) if p in missing else u
            for p, u in units.items()}  # fmt: skip


def units_json(units: dict[str, ChargeUnit]) -> dict[str, float | None]:
    """Each file's charge unit as JSON has it (null: none; JSON has no NaN), as the image
    file's ``charge_units`` attribute and the classify summary record them."""
    return {p: u.unit if u.unit == u.unit else None for p, u in units.items()}


def charge_unit_summary(units: dict[str, ChargeUnit], show: int = 10) -> str:
    """For the physicist: the run files' own charge units in a line, then each file that
    has none of its own (at most ``show``): read in the files' pooled unit, or without
    one (their charges in run units are NaN, and a model then reads them as missing)."""
    found = [u for u in units.values() if u.unit == u.unit and not u.pooled]
    lines = []
    if found:
        values = np.array([u.unit for u in found])
        tracks = int(np.median([u.tracks for u in found]))
        lines.append(
            f"charge unit of {len(found)} of {len(units)} file(s): median {np.median(values):.4g} "
            f"ADC/mm ({values.min():.4g}-{values.max():.4g}), median {tracks} band tracks"
        )
    missing = [(p, u) for p, u in units.items() if u.unit != u.unit or u.pooled]
    lines += [f"charge unit of {p}: {u.note}" for p, u in missing[:show]]
    if len(missing) > show:
        lines.append(f"... and {len(missing) - show} more file(s) without a charge unit "
                     "of their own")  # fmt: skip
    return "\n".join(lines)
