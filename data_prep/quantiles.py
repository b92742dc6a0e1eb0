"""Per-run values measured on a seeded sample of the run's events: the charge quantiles
for ``ImageConfig.charge_norm = "quantile"`` and each run file's beam axis for
``ImageConfig.beam_axis = "run"`` (`beam_axes`, fitted by `data_prep.beamaxis`).

A run's point-charge distribution (after the beam mask and denoising) is summarised by
its quantiles at `data_prep.images.QUANTILE_LEVELS`, computed on a seeded random sample
of at most `SAMPLE_EVENTS` events of the run. The training set's quantiles are stored in
the image file and so in the model (``charge_quantiles``); every run projected for the
model (``preprocess --reference``, ``classify``, ``adapt``) gets its own
(``run_quantiles``), and `data_prep.images.map_quantiles` moves the one onto the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from data_prep import beamaxis
from data_prep.beamaxis import FileAxis
from data_prep.errors import InputError
from data_prep.images import QUANTILE_LEVELS, ImageConfig, clean_points

#: events drawn from a run to estimate its quantiles (~1e5 points: the 1 % and 99 %
#: quantiles to a few per cent)
SAMPLE_EVENTS = 2000
SAMPLE_SEED = 0


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
) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y, z, charge) and per-event counts of a seeded uniform sample of at most
    ``n_events`` events of the open ``readers`` together (bad events are skipped); with
    ``axes``, each reader's points centred on its run's beam axis (`data_prep.beamaxis`;
    ``z_range``: the image's, about which a run along -z is turned)."""
    positions = sample_positions([len(r) for r in readers], n_events, seed)
    points, counts = [], []
    for k, (reader, pos) in enumerate(zip(readers, positions, strict=True)):
        for i in pos:
            for event in reader.iter_events(int(i), int(i) + 1, skip_bad=True):
                pts = event.points[:, :4]
                points.append(
                    pts if axes is None else beamaxis.centre_on_beam(pts, axes[k], z_range)
                )
                counts.append(len(event.points))
    if not counts:
        return np.empty((0, 4)), np.zeros(0, np.int64)
    return np.concatenate(points), np.array(counts, np.int64)


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
    try:
        shifts = None if axes is None else [axes[str(p)] for p in paths]
        points, counts = sample_points(readers, n_events, seed, shifts, config.z_range)
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
