"""Detector augmentation on point clouds: each draw against a hand calculation, and a
training run that re-reads the run files behind a real preprocessed image file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _formats import make_events, write_spyral

from attpc_classify.augment import augment_points, augmented_images, load_points
from attpc_classify.checkpoint import read_json
from attpc_classify.cli import main
from attpc_classify.train_config import DetectorAugment
from data_prep.errors import InputError
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig, project

NONE = DetectorAugment(rotate=False, z_scale=0, z_shift_mm=0, gain=(1, 1), threshold_quantile=0,
                       dead_pad_fraction=0, noise_hits=0, probability=1.0)  # fmt: skip


def _batch(seed: int = 0, n: int = 5):
    events = make_events(np.random.default_rng(seed), n)
    counts = np.array([e.n_points for e in events])
    return events, np.concatenate([e.points[:, :4] for e in events]), counts


def test_each_draw_against_its_definition():
    _, pts, counts = _batch()
    cfg = ImageConfig()
    same, c = augment_points(pts, counts, NONE, cfg, np.random.default_rng(0))
    np.testing.assert_array_equal(same, pts)
    np.testing.assert_array_equal(c, counts)
    # rotation: radius, z and charge kept, azimuth changes
    rot, _ = augment_points(pts, counts, NONE.__class__(**{**NONE.__dict__, "rotate": True}),
                            cfg, np.random.default_rng(1))  # fmt: skip
    np.testing.assert_allclose(np.hypot(rot[:, 0], rot[:, 1]), np.hypot(pts[:, 0], pts[:, 1]))
    np.testing.assert_array_equal(rot[:, 2:], pts[:, 2:])
    assert not np.allclose(rot[:, 0], pts[:, 0])
    # gain: one factor per event within the range
    g = DetectorAugment(**{**NONE.__dict__, "gain": (0.3, 3.0)})
    out, _ = augment_points(pts, counts, g, cfg, np.random.default_rng(2))
    ratio = out[:, 3] / pts[:, 3]
    for part in np.split(ratio, np.cumsum(counts)[:-1]):
        assert np.ptp(part) < 1e-9 and 0.3 <= part[0] <= 3.0
    # noise hits: only added, inside the pad plane radius and the drift window
    nz = DetectorAugment(**{**NONE.__dict__, "noise_hits": 50})
    out, c = augment_points(pts, counts, nz, cfg, np.random.default_rng(3))
    assert (c >= counts).all() and (c - counts).max() <= 50 and (c > counts).any()
    ends = np.cumsum(c)
    added = np.concatenate([out[e - k : e] for e, k in zip(ends, c - counts, strict=True) if k])
    assert np.hypot(added[:, 0], added[:, 1]).max() <= 275 and added[:, 2].max() < 1000
    # threshold and dead pads only remove points
    cut = DetectorAugment(**{**NONE.__dict__, "threshold_quantile": 0.5, "dead_pad_fraction": 0.5})
    _, c = augment_points(pts, counts, cut, cfg, np.random.default_rng(4))
    assert (c <= counts).all() and c.sum() < counts.sum()


def test_same_seed_same_images_and_probability_zero_is_the_plain_projection(tmp_path):
    events, pts, counts = _batch(5, 8)
    from attpc_classify.augment import PointBank

    bank = PointBank(pts.astype(np.float32), counts, np.concatenate([[0], np.cumsum(counts)[:-1]]))
    cfg = ImageConfig(size=16, voxel_grid=0)
    idx = np.array([3, 0, 5])
    a = augmented_images(bank, idx, DetectorAugment(), cfg, np.random.default_rng(7))
    b = augmented_images(bank, idx, DetectorAugment(), cfg, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    off = DetectorAugment(probability=0.0)
    plain = augmented_images(bank, idx, off, cfg, np.random.default_rng(7))
    want = project([events[i] for i in idx], cfg).images
    np.testing.assert_array_equal(plain, want)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("aug")
    events = make_events(np.random.default_rng(3), 48, run=4)
    write_spyral(d / "run_0004.h5", events)
    out = d / "img.h5"
    assert main(["preprocess", str(d / "run_0004.h5"), "--out", str(out), "--size", "16",
                 "--set", "voxel_grid=0", "--set", "denoise=dbscan", "--quiet",
                 "--workers", "1"]) == 0  # fmt: skip
    return out


def test_points_come_back_in_image_file_order(image_file):
    images = read_images(image_file)
    bank = load_points(images)
    cfg = images.config
    off = DetectorAugment(probability=0.0)
    for idx in (np.arange(len(images)), np.array([7, 2, 30])):
        got = augmented_images(bank, idx, off, cfg, np.random.default_rng(0))
        np.testing.assert_array_equal(got, images.images[idx])


def test_train_with_detector_augmentation_and_missing_sources(image_file, tmp_path, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    args = ["train", "--quiet", "--data", str(image_file), "--out", str(run), "model.width=4",
            "model.depth=2", "optim.epochs=1", "optim.batch_size=16",
            "data.detector_augment=true"]  # fmt: skip
    assert main(args) == 0
    assert read_json(run / "model.json")["image_config"]["denoise"] == "dbscan"
    moved = tmp_path / "moved.h5"
    moved.write_bytes(image_file.read_bytes())
    (image_file.parent / "run_0004.h5").rename(tmp_path / "elsewhere.h5")
    try:
        capsys.readouterr()
        assert main([*args[:3], str(moved), "--out", str(tmp_path / "r2"), *args[6:]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "run_0004.h5" in err[0], err
    finally:
        (tmp_path / "elsewhere.h5").rename(image_file.parent / "run_0004.h5")
    with pytest.raises(InputError):
        DetectorAugment(gain=(2.0, 1.0))
