"""charge_norm=quantile end to end: preprocess (training set, --reference), classify, adapt."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _formats import make_events, write_spyral

from attpc_classify.cli import main
from attpc_classify.predict import read_predictions
from data_prep.imagefile import read_images, read_info
from data_prep.images import QUANTILE_LEVELS

PREP = ["--size", "16", "--set", "voxel_grid=0", "--set", "dtype=float16",
        "--set", "charge_norm=quantile", "--quiet", "--workers", "1"]  # fmt: skip


def _hot(events, gain: float):
    return [dataclasses.replace(e, points=e.points * np.array([1, 1, 1, gain])) for e in events]


def test_quantile_norm_from_preprocess_to_classify(tmp_path, capsys):
    torch.set_num_threads(1)
    events = make_events(np.random.default_rng(11), 150, run=3)
    raw = write_spyral(tmp_path / "run_0003.h5", events)
    hot = write_spyral(tmp_path / "run_0004.h5", _hot(events, 2.5))
    img = tmp_path / "train.h5"
    assert main(["preprocess", str(raw), "--out", str(img), *PREP]) == 0
    cfg = read_info(img)["image_config"]
    # fewer events than the sample: the quantiles of every positive point charge
    want = np.quantile(np.concatenate([e.points[:, 3] for e in events]), QUANTILE_LEVELS)
    np.testing.assert_allclose(cfg.charge_quantiles, want)
    assert cfg.run_quantiles == cfg.charge_quantiles
    # the same events at 2.5 x the gain, mapped onto the training quantiles: same images
    img_hot = tmp_path / "hot.h5"
    assert main(["preprocess", str(hot), "--out", str(img_hot), *PREP,
                 "--reference", str(img)]) == 0  # fmt: skip
    hot_cfg = read_info(img_hot)["image_config"]
    np.testing.assert_allclose(hot_cfg.run_quantiles, 2.5 * want)
    np.testing.assert_allclose(read_images(img_hot).images.astype(float),
                               read_images(img).images.astype(float), atol=2e-3)  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", str(img), "--out", str(run), "model.width=4",
                 "model.depth=2", "optim.epochs=1", "optim.batch_size=16"]) == 0  # fmt: skip
    # classify maps each run (its point-cloud inputs) onto the model's quantiles
    for name, src in (("a", raw), ("b", hot)):
        assert main(["classify", str(run), str(src), "--out", str(tmp_path / f"{name}.csv"),
                     "--quiet", "--device", "cpu", "--precision", "fp32"]) == 0  # fmt: skip
    a, b = (read_predictions(tmp_path / f"{n}.csv") for n in "ab")
    np.testing.assert_allclose(a["p_proton"], b["p_proton"], atol=1e-3)
    # the image file made for the model classifies as its point clouds do
    assert main(["classify", str(run), str(img_hot), "--out", str(tmp_path / "c.csv"),
                 "--quiet", "--device", "cpu", "--precision", "fp32"]) == 0  # fmt: skip
    c = read_predictions(tmp_path / "c.csv")
    np.testing.assert_allclose(c["p_proton"], a["p_proton"], atol=1e-3)
    # adapt projects a point-cloud target run with that run's quantiles too
    from attpc_classify.adapt import target_inputs
    from attpc_classify.checkpoint import load_run

    got = target_inputs(load_run(run), [str(hot)], max_events=1000, seed=0)
    np.testing.assert_allclose(got.astype(float), read_images(img_hot).images.astype(float),
                               atol=2e-3)  # fmt: skip
    capsys.readouterr()
    # a file made without the reference does not fit the model: one line, exit 2
    own = tmp_path / "own.h5"
    assert main(["preprocess", str(hot), "--out", str(own), *PREP]) == 0
    assert main(["classify", str(run), str(own), "--out", str(tmp_path / "d.csv"),
                 "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "charge_quantiles" in err[0], err


def test_reference_needs_quantile_norm(tmp_path, capsys):
    events = make_events(np.random.default_rng(12), 20, run=5)
    raw = write_spyral(tmp_path / "run_0005.h5", events)
    img = tmp_path / "plain.h5"
    assert main(["preprocess", str(raw), "--out", str(img), "--size", "16",
                 "--set", "voxel_grid=0", "--quiet", "--workers", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["preprocess", str(raw), "--out", str(tmp_path / "x.h5"), *PREP,
                 "--reference", str(img)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reference" in err[0], err


@pytest.mark.parametrize("n, k", [(10, 3), (5, 9)])
def test_sample_positions_spans_files(n, k):
    from data_prep.quantiles import sample_positions

    got = sample_positions([n, 0, 7], k, seed=0)
    total = np.concatenate([got[0], got[1] + n, got[2] + n])
    want = np.sort(np.random.default_rng(0).choice(n + 7, min(k, n + 7), replace=False))
    np.testing.assert_array_equal(total, want)
