"""What an event's largest tracks are, by a simulation's per-point truth (tracks_v3).

The feature model describes the largest off-axis tracks (`data_prep.features`); a track
model learns what each of them is (docs/sim-to-real.md, "Naming the tracks by what they
are"). Its labels come from the simulator: every point of our run files carries the
attpc-engine nucleus index it came from (``labels_<n>``; the file's
``noise_point_label`` and ``beam_point_label`` attributes mark noise and beam ions), and
a track is named by the majority of its points (`KINDS`). The points go through the
features' own steps (the run's beam axis, structured-noise rules, the features' DBSCAN),
so the tracks are the ones the features describe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from data_prep.errors import InputError
from data_prep.events import Event
from data_prep.features import N_NAMED, joined_clusters, largest_tracks, track_clusters
from data_prep.imagefile import image_sources, source_path
from data_prep.sim.physics import PILEUP_OFFSET
from data_prep.sim.stats import EJECTILE

#: what a track can be; "other": the majority of its points is none of the first four
KINDS = ("light product", "heavy product", "beam ions", "noise", "other")
#: attpc-engine's nucleus order: target, projectile, ejectile (the light product), residue
RESIDUE = EJECTILE + 1
NO_TRACK = -1


def cluster_kinds(
    truth: np.ndarray, labels: np.ndarray, noise: int, beam: int, n: int = N_NAMED
) -> np.ndarray:
    """``(n,)`` int8: the `KINDS` index of one event's ``n`` largest clusters (largest
    first, `largest_tracks`), `NO_TRACK` past the last. ``truth``: each point's nucleus
    index; ``labels``: its cluster id (-1 none).

    The second reaction of a pile-up carries its nuclei's indices plus `PILEUP_OFFSET`;
    its proton is a light product all the same. Both reactions are drawn alike, so which
    one came second shows in no track: naming its tracks "other" asked the track model
    for a coin toss (docs/sim-to-real.md, "Both reactions of a pile-up named alike")."""
    out = np.full(n, NO_TRACK, dtype=np.int8)
    second = (truth >= PILEUP_OFFSET) & (truth != noise) & (truth != beam)
    truth = np.where(second, truth % PILEUP_OFFSET, truth)
    for k, c in enumerate(largest_tracks(labels, n)):
        t = truth[labels == c]
        votes = [np.sum(t == EJECTILE), np.sum(t == RESIDUE), np.sum(t == beam),
                 np.sum(t == noise)]  # fmt: skip
        out[k] = int(np.argmax(votes)) if max(votes) > 0 else len(KINDS) - 1
    return out


def truth_tracks(
    path: Path, config, axis: tuple | None = None, chunk: int = 256
) -> Iterator[tuple[Event, np.ndarray, np.ndarray, int, int]]:
    """Every event of one simulated run file as the features see it: ``(event, points,
    cluster labels, noise label, beam label)``, ``points`` ``(N, 5)`` with the per-point
    truth (nucleus index) as the fifth column, after the features' own steps (``axis``:
    the file's beam axis, structured-noise rules, `track_clusters`).

    The steps run on ``chunk`` events at once, as `preprocess` runs them: each step
    treats every event on its own, so an event's points and clusters are those of a
    chunk of one (tests/test_tracktruth.py); cluster ids are unique within the chunk.
    One event at a time, the steps' own overhead had been most of a training's naming.

    Raises `InputError` naming the file when it carries no per-point truth."""
    from data_prep.readers import open_events
    from data_prep.structured import find_hot_pads

    with h5py.File(path, "r") as f:
        if "noise_point_label" not in f.attrs:
            raise InputError("no per-point truth (a run file of `attpc-classify simulate` "
                             "has it)", path=path)  # fmt: skip
        noise, beam = int(f.attrs["noise_point_label"]), int(f.attrs["beam_point_label"])
    cfg = replace(config, run_beam_axis=tuple(axis)) if axis else config
    with open_events(path, charge=config.charge_column) as reader:
        hot = None
        if config.structured_noise != "none":
            hot = find_hot_pads(reader, config.hot_pad_fraction, config.hot_pad_sample,
                                cfg.run_beam_axis)  # fmt: skip
        events: list[Event] = []
        for event in reader.iter_events(skip_bad=True):
            if event.point_labels is None:
                raise InputError("no per-point truth", path=path, event=event.event_id)
            events.append(event)
            if len(events) == chunk:
                yield from _chunk_tracks(events, cfg, hot, noise, beam)
                events = []
        yield from _chunk_tracks(events, cfg, hot, noise, beam)


def _chunk_tracks(
    events: list[Event], cfg, hot: dict | None, noise: int, beam: int
) -> Iterator[tuple[Event, np.ndarray, np.ndarray, int, int]]:
    """`truth_tracks` of a few events: the features' steps run once on all of them."""
    from data_prep.images import centred_points, event_pads, remove_structured_noise

    if not events:
        return
    # the truth travels as a fifth column through the features' steps
    pts = np.concatenate([np.column_stack([e.points[:, :4], e.point_labels]) for e in events])
    counts = np.array([len(e.points) for e in events], dtype=np.int64)
    if cfg.beam_axis == "run":
        pts = centred_points(pts, cfg, counts)
    if hot is not None:
        pads, on_hot = event_pads(events, hot)
        pts, counts = remove_structured_noise(pts, counts, cfg, pads, on_hot)
    beam_pts = cfg.beam_points(pts[:, :4], counts)
    _, labels = track_clusters(pts, counts, beam_pts, cfg.cluster_z_scale, cfg.track_core_mm)
    labels, _ = joined_clusters(pts, counts, labels, cfg.cluster_join)  # as the features
    ends = np.cumsum(counts)
    for event, start, stop in zip(events, ends - counts, ends, strict=True):
        yield event, pts[start:stop], labels[start:stop], noise, beam


def image_file_track_kinds(images) -> np.ndarray:
    """``(B, N_NAMED)`` int8 kinds of the tracks of every event of ``images`` (an
    `data_prep.imagefile.ImageSet` with features), from the run files it was made from.

    Raises `InputError` naming the file when a source is gone, carries no per-point
    truth, or lacks an event."""
    sources, wanted = image_sources(images, "naming tracks")
    out = np.full((len(images), N_NAMED), NO_TRACK, dtype=np.int8)
    found = np.zeros(len(images), dtype=bool)
    axes = images.attrs.get("beam_axes") or {}
    for source in sources:
        path = source_path(str(source), images.path)
        if not path.exists():
            raise InputError("source run file of the image file not found (naming tracks "
                             "re-reads the point clouds and their truth)", path=path)  # fmt: skip
        for event, pts, labels, noise, beam in truth_tracks(path, images.config,
                                                            axes.get(str(source))):  # fmt: skip
            i = wanted.get((int(event.run), int(event.event_id)))
            if i is not None:
                out[i] = cluster_kinds(pts[:, 4], labels, noise, beam)
                found[i] = True
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        raise InputError(f"event {images.event_id[i]} of run {images.run[i]} is in none of "
                         "the source run files", path=images.path)  # fmt: skip
    return out
