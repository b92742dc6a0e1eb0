"""Detector augmentations on point clouds, re-projected on the fly while training.

An image cannot be rotated by an arbitrary angle about the beam axis, stretched along
z, or given extra noise hits that then meet the same denoising as real ones without
resampling and guessing; the point cloud can, exactly. So when ``data.detector_augment``
is on, `fit` keeps the training events' point clouds in memory (re-read from the run
files the image file names in its ``sources``), draws a random detector per event and
projects the batch with the run's own `ImageConfig` (`data_prep.images.project_arrays`:
beam mask, denoising, charge normalisation, pixel values) -- the images the model sees
are made exactly as `classify` will make them from a real run.

Every draw comes from a ``numpy.random.Generator`` seeded by (seed, epoch), so a run is
reproducible and a resumed run draws what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from attpc_classify.train_config import DetectorAugment
from data_prep.errors import InputError
from data_prep.imagefile import ImageSet, image_sources, source_path
from data_prep.images import (
    ImageConfig,
    centred_points,
    event_pads,
    project_arrays,
    remove_structured_noise,
)
from data_prep.structured import find_hot_pads


@dataclass
class PointBank:
    """The point clouds (x, y, z, charge) of an `ImageSet`'s events, in its order."""

    points: np.ndarray  # (sum(counts), 4) float32
    counts: np.ndarray  # (N,) int64
    starts: np.ndarray  # (N,) int64

    def gather(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated points and counts of the events at ``index``."""
        counts = self.counts[index]
        rows = np.concatenate(
            [np.arange(s, s + c) for s, c in zip(self.starts[index], counts, strict=True)]
        ) if len(index) else np.zeros(0, np.int64)  # fmt: skip
        return self.points[rows], counts


def load_points(images: ImageSet) -> PointBank:
    """Read the point clouds behind ``images`` from the run files in its ``sources``.

    Raises `InputError` naming the file when a source is gone or an event is missing.
    """
    from data_prep.readers import open_events

    sources, wanted = image_sources(images, "data.detector_augment")
    found: list[np.ndarray | None] = [None] * len(images)
    axes = images.attrs.get("beam_axes") or {}
    for source in sources:
        axis = axes.get(str(source))  # beam_axis=run: the file's line, as preprocess fitted
        if images.config.beam_axis == "run" and axis is None:
            raise InputError(f"the image file records no beam axis for its source {source}",
                             path=images.path)  # fmt: skip
        path = source_path(str(source), images.path)
        if not path.exists():
            raise InputError("source run file of the image file not found (detector "
                             "augmentation re-reads the point clouds)", path=path)  # fmt: skip
        config = images.config
        if axis is not None:  # the file's line, for `centred_points` as project_arrays uses it
            config = replace(config, run_beam_axis=tuple(axis))
        with open_events(path, charge=config.charge_column) as reader:
            hot = None
            if config.structured_noise != "none":
                # structured noise goes once, here, as preprocess removed it: the bank
                # keeps no pad ids for the rules that need them
                hot = find_hot_pads(reader, config.hot_pad_fraction, config.hot_pad_sample, axis)
            for event in reader.iter_events(skip_bad=True):
                i = wanted.get((int(event.run), int(event.event_id)))
                if i is not None:
                    # centred on the beam first of all, as project_arrays does
                    n = np.array([len(event.points)])
                    points = (
                        event.points if axis is None else centred_points(event.points, config, n)
                    )
                    if hot is not None:
                        pads, on_hot = event_pads([event], hot)
                        points, _ = remove_structured_noise(points, n, config, pads, on_hot)
                    found[i] = np.asarray(points[:, :4], dtype=np.float32)
    missing = [i for i, p in enumerate(found) if p is None]
    if missing:
        i = missing[0]
        raise InputError(
            f"{len(missing)} events are not in the source run files, e.g. run "
            f"{images.run[i]} event {images.event_id[i]}",
            path=images.path,
        )
    counts = np.array([len(p) for p in found], dtype=np.int64)
    return PointBank(
        points=np.concatenate(found) if found else np.zeros((0, 4), np.float32),
        counts=counts,
        starts=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
    )


def augment_points(
    points: np.ndarray,
    counts: np.ndarray,
    aug: DetectorAugment,
    config: ImageConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One random detector per event: rotate, stretch/shift z, gain, threshold, dead pads,
    noise hits. Returns new (points, counts); events keep their order."""
    out_pts, out_counts = [], []
    start = 0
    (x0, x1), (y0, y1), (z0, z1) = config.x_range, config.y_range, config.z_range
    radius = min(-x0, x1, -y0, y1)
    for n in counts:
        p = np.array(points[start : start + n], dtype=np.float64)
        start += n
        if rng.random() >= aug.probability or n == 0:
            out_pts.append(p)
            out_counts.append(len(p))
            continue
        if aug.rotate:
            a = rng.uniform(0, 2 * np.pi)
            c, s = np.cos(a), np.sin(a)
            p[:, 0], p[:, 1] = c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]
        p[:, 2] = p[:, 2] * rng.uniform(1 - aug.z_scale, 1 + aug.z_scale)
        p[:, 2] += rng.uniform(-aug.z_shift_mm, aug.z_shift_mm)
        p[:, 3] *= np.exp(rng.uniform(np.log(aug.gain[0]), np.log(aug.gain[1])))
        q = rng.uniform(0, aug.threshold_quantile)
        if q > 0 and len(p) > 1:
            p = p[p[:, 3] >= np.quantile(p[:, 3], q)]
        frac = rng.uniform(0, aug.dead_pad_fraction)
        if frac > 0 and len(p):
            cell = np.floor(p[:, :2] / 8.0).astype(np.int64)
            key = (cell[:, 0] * 1_000_003 + cell[:, 1]) * 2_654_435_761 + rng.integers(1 << 30)
            p = p[(key % 1000) >= frac * 1000]  # a random fraction of cells, per event
        k = int(rng.integers(0, aug.noise_hits + 1)) if aug.noise_hits else 0
        if k:
            r = radius * np.sqrt(rng.random(k))
            phi = rng.uniform(0, 2 * np.pi, k)
            median = float(np.median(p[:, 3])) if len(p) else 100.0
            noise = np.column_stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(z0, z1, k),
                                     median * rng.uniform(*aug.noise_charge, k)])  # fmt: skip
            p = np.vstack([p, noise])
        out_pts.append(p)
        out_counts.append(len(p))
    pts = np.concatenate(out_pts) if out_pts else np.zeros((0, 4))
    return pts, np.asarray(out_counts, dtype=np.int64)


def augmented_images(
    bank: PointBank,
    index: np.ndarray,
    aug: DetectorAugment,
    config: ImageConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Images ``(B, C, S, S)`` in ``config.dtype`` of the events at ``index``, each seen
    through its own random detector."""
    points, counts = bank.gather(np.asarray(index))
    points, counts = augment_points(points, counts, aug, config, rng)
    if config.beam_axis == "run":  # the bank's points are centred on their beam already
        config = replace(config, beam_axis="none", run_beam_axis=())
    # only the images are wanted: no features (nor a run's charge unit for them)
    config = replace(config, features="none", charge_calibration="none")
    return project_arrays(points, counts, config).images
