"""A small synthetic image file whose three classes a tiny model separates in seconds.

Written with the real `ImageWriter` from point clouds projected by the real
`project_arrays`, so tests exercise the same file layout as ``preprocess`` output.

Classes (ids as in `data_prep.events.CLASS_NAMES`):

* proton — one long, thin, low-charge track from a vertex on the beam axis;
* carbon — one short, dense, high-charge track from a vertex on the beam axis;
* other — 20-300 noise hits scattered uniformly over the detector volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.events import CLASS_NAMES
from data_prep.imagefile import ImageWriter
from data_prep.images import ImageConfig, project_arrays

#: a CPU-friendly default: two views of 32 x 32 pixels and a 20^3 voxel grid
SMALL_CONFIG = ImageConfig(views=("xy", "zy"), size=32, voxel_grid=20)


def _track(rng: np.random.Generator, length: float, n: int, charge: float) -> np.ndarray:
    """Points along a straight line from a vertex on the beam (z) axis, (n, 4)."""
    vertex = np.array([rng.normal(0, 5), rng.normal(0, 5), rng.uniform(200, 800)])
    theta = rng.uniform(0.3, 1.3)  # polar angle to the beam [rad]
    phi = rng.uniform(0, 2 * np.pi)  # azimuth about the beam [rad]
    direction = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    t = rng.uniform(0, length, size=n)
    xyz = vertex + t[:, None] * direction + rng.normal(0, 2.0, size=(n, 3))
    q = rng.exponential(charge, size=n)
    return np.column_stack([xyz, q])


def _noise(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(20, 300))
    xyz = rng.uniform([-250, -250, 50], [250, 250, 950], size=(n, 3))
    return np.column_stack([xyz, rng.exponential(50.0, size=n)])


def make_events(n_per_class: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """``n_per_class`` point clouds per class, shuffled; returns (points list, labels)."""
    clouds, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for _ in range(n_per_class):
            if label == 0:
                pts = _track(
                    rng, length=rng.uniform(180, 250), n=int(rng.integers(80, 150)), charge=60.0
                )
            elif label == 1:
                pts = _track(
                    rng, length=rng.uniform(30, 60), n=int(rng.integers(150, 300)), charge=400.0
                )
            else:
                pts = _noise(rng)
            clouds.append(pts)
            labels.append(label)
    order = rng.permutation(len(labels))
    return [clouds[i] for i in order], np.asarray(labels, dtype=np.int8)[order]


def make_image_file(
    path: str | Path,
    *,
    n_per_class: int = 60,
    seed: int = 0,
    config: ImageConfig = SMALL_CONFIG,
    run: int = 7,
    unknown: int = 0,
) -> Path:
    """Write ``3 * n_per_class`` (+ ``unknown`` label -1) synthetic events; return the path.

    Parameters
    ----------
    path
        Output image file (HDF5); written atomically by `ImageWriter`.
    n_per_class
        Events per class (proton, carbon, other).
    seed
        Seed of the `np.random.Generator`; same seed, same file contents.
    config
        Projection settings; voxels are written when ``config.voxel_grid > 0``.
    run
        Run number stored for every event.
    unknown
        Extra events with label -1 (drawn like "other"), as in unlabelled real data.
    """
    rng = np.random.default_rng(seed)
    clouds, labels = make_events(n_per_class, rng)
    if unknown:
        clouds += [_noise(rng) for _ in range(unknown)]
        labels = np.concatenate([labels, np.full(unknown, -1, dtype=np.int8)])
    counts = np.array([len(c) for c in clouds], dtype=np.int64)
    proj = project_arrays(np.concatenate(clouds, axis=0), counts, config)
    n = len(labels)
    path = Path(path)
    with ImageWriter(path, config, class_names=CLASS_NAMES) as writer:
        for start in range(0, n, 128):  # several appends, as preprocess does
            sl = slice(start, start + 128)
            writer.append(
                proj.images[sl],
                np.arange(n, dtype=np.int64)[sl],
                np.full(n, run, dtype=np.int32)[sl],
                labels[sl],
                voxels=None if proj.voxels is None else proj.voxels[sl],
                features=None if proj.features is None else proj.features[sl],
            )
        writer.commit(sources=["synthetic"], summary={"seed": seed, "n_per_class": n_per_class})
    return path


def train_tiny_cnn(train: Path, run: Path, *extra: str) -> Path:
    """Train a 3-class CNN (width 8, depth 2, 2 epochs) on ``train`` through the CLI."""
    from attpc_classify.cli import main  # torch-heavy: only when a test trains

    rc = main(
        ["train", "--data", str(train), "--task", "multiclass", "--out", str(run), "--quiet",
         "model.name=cnn", "model.width=8", "model.depth=2", "optim.epochs=2", *extra]
    )  # fmt: skip
    assert rc == 0
    return run
