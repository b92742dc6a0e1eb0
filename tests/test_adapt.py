"""``adapt``: AdaBN statistics against a direct calculation, pseudo-label selection by
hand, and the command end to end on image files written by the real writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _synthetic import make_image_file
from torch import nn

from attpc_classify.adapt import AdaptConfig, adabn, pseudo_labels
from attpc_classify.checkpoint import load_run
from attpc_classify.cli import main
from data_prep.imagefile import read_images


def test_adabn_running_stats_are_the_target_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    x = (torch.rand(64, 2, 8, 8) * 255).to(torch.uint8)
    adabn(model, x, batch_size=16)
    feats = model[0](x.float() / 255).detach()  # the BN input, computed directly
    bn = model[1]
    np.testing.assert_allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    # the CMA of per-batch unbiased variances (equal batches) = their mean
    per_batch = torch.stack([feats[i : i + 16].var((0, 2, 3), unbiased=True)
                             for i in range(0, 64, 16)])  # fmt: skip
    np.testing.assert_allclose(bn.running_var, per_batch.mean(0), rtol=1e-4)
    assert not model.training


def test_pseudo_labels_class_by_class():
    proba = np.array([[0.95, 0.03, 0.02], [0.80, 0.1, 0.1], [0.6, 0.3, 0.1],
                      [0.1, 0.85, 0.05], [0.05, 0.05, 0.9], [0.1, 0.1, 0.8]])  # fmt: skip
    idx, lab = pseudo_labels(proba, AdaptConfig(confidence=0.7, max_per_class=0.5))
    # proton: 3 predicted, cap floor(1.5) = 1 -> the 0.95 one; carbon: 1 of 1 (cap >= 1);
    # other: 2 predicted, cap 1 -> the 0.9 one
    assert idx.tolist() == [0, 3, 4] and lab.tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def run_and_target(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("adapt")
    train = make_image_file(d / "train.h5", n_per_class=40, seed=1)
    target = make_image_file(d / "target.h5", n_per_class=60, seed=2, unknown=20)
    run = d / "run"
    assert main(["train", "--quiet", "--data", str(train), "--out", str(run), "model.width=4",
                 "model.depth=2", "optim.epochs=2", "optim.batch_size=16"]) == 0  # fmt: skip
    return run, target


def test_adapt_command_writes_a_working_run(run_and_target, tmp_path, capsys):
    run, target = run_and_target
    out = tmp_path / "adapted"
    assert main(["adapt", str(run), "--data", str(target), "--out", str(out), "--rounds", "2"]) == 0
    text = capsys.readouterr().out
    assert "before" in text and "after AdaBN" in text and "round 1" in text
    report = json.loads((out / "adapt.json").read_text())
    assert report["n_target"] == 200
    for key in ("before", "adabn", "final"):
        assert sum(report["fractions"][key]) == pytest.approx(1.0)
    adapted = load_run(out)
    proba = adapted.predict_proba(read_images(target).images)
    frac = np.bincount(proba.argmax(1), minlength=3) / len(proba)
    np.testing.assert_allclose(frac, report["fractions"]["final"], atol=0.02)  # bf16 vs fp32


def test_adapt_refuses_bad_input_in_one_line(run_and_target, tmp_path, capsys):
    run, _ = run_and_target
    other = make_image_file(
        tmp_path / "other.h5",
        n_per_class=5,
        config=read_images(run_and_target[1]).config.__class__(size=16),
    )
    for data in (tmp_path / "missing.h5", other):
        assert main(["adapt", str(run), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error" in err[0], err


def test_adapt_takes_point_cloud_files_projected_like_the_run(tmp_path, capsys):
    from _formats import make_events, write_spyral

    from attpc_classify.adapt import target_inputs
    from data_prep.images import project

    torch.set_num_threads(1)
    events = make_events(np.random.default_rng(8), 140, run=9)
    raw = write_spyral(tmp_path / "run_0009.h5", events)
    img = tmp_path / "img.h5"
    assert (
        main(
            [
                "preprocess",
                str(raw),
                "--out",
                str(img),
                "--size",
                "16",
                "--set",
                "voxel_grid=0",
                "--set",
                "denoise=dbscan",
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", str(img), "--out", str(run), "model.width=4",
                 "model.depth=2", "optim.epochs=1", "optim.batch_size=16"]) == 0  # fmt: skip
    trained = load_run(run)
    got = target_inputs(trained, [str(raw)], max_events=100, seed=0)
    want = project(events, trained.info.image_config).images
    assert got.shape == (100, *want.shape[1:])
    pick = np.sort(np.random.default_rng(0).choice(len(events), 100, replace=False))
    np.testing.assert_array_equal(got, want[pick])
    # the same events as a pytpc file with another drift calibration: read with the
    # reader options classify takes (here 4.0 cm/us), they are the same target
    from _formats import write_pytpc

    from data_prep.readers import DriftCalibration

    slow = DriftCalibration(drift_velocity=4.0)
    (tmp_path / "pytpc").mkdir()
    pytpc = write_pytpc(tmp_path / "pytpc" / "run_0009.h5", events, calibration=slow)
    options = {"calibration": slow}
    np.testing.assert_array_equal(
        target_inputs(trained, [str(pytpc)], 100, 0, reader_options=options), got
    )
    capsys.readouterr()
    assert main(["adapt", str(run), "--data", str(raw), "--out", str(tmp_path / "a")]) == 0
    assert "after AdaBN" in capsys.readouterr().out
    assert main(["adapt", str(run), "--data", str(pytpc), "--out", str(tmp_path / "b"),
                 "--drift-velocity", "4.0", "--format", "pytpc"]) == 0  # fmt: skip
