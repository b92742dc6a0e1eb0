"""``export RUN --onnx`` and ``classify --engine onnxruntime`` against the torch engine.

A small CNN run (random convolutions, a head fitted by logistic regression; written by
the real `save_model`) is exported with its calibration sample drawn from synthetic events
projected with the demo's input recipe (DBSCAN denoise, beam mask, sum + occupancy
channels); other clouds are written as a Spyral file by the real writer, so both engines
read and project real point clouds. The reference is torch fp32 on the same run: ONNX
Runtime fp32 must give its probabilities within `FP32_TOLERANCE`; int8 within
`INT8_TOLERANCE`, hence the same label wherever torch's decision is further than that
from the boundary (computed here by hand).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _formats import write_spyral
from _synthetic import make_events, make_image_file

from attpc_classify.checkpoint import read_json, save_model, set_decision
from attpc_classify.cli import main
from attpc_classify.models import create_model
from attpc_classify.ortengine import FP32_TOLERANCE, INT8_TOLERANCE
from attpc_classify.predict import read_predictions
from data_prep.events import CLASS_NAMES, Event
from data_prep.images import ImageConfig

#: configs/prep/robust.yaml at 32 x 32, beam mask 10 mm (the synthetic tracks start on the
#: axis); DBSCAN leaves the scattered "other" events blank (label empty)
ROBUST = ImageConfig(
    views=("xy", "zy"), size=32, voxel_grid=0, denoise="dbscan", denoise_eps_mm=20.0,
    denoise_min_samples=4, beam_mask_mm=10.0, charge_norm="event", charge_reference=100.0,
    pixel_values=("sum", "occupancy"),
)  # fmt: skip
P = ["p_proton", "p_carbon", "p_other"]


def make_run(run: Path, train: Path, config: ImageConfig, *, seed: int = 0) -> Path:
    """A run directory (the real writer, `save_model`) of a CNN with random convolutions
    and a head fitted by scikit-learn's logistic regression on ``train``'s pooled
    features: a real classifier in seconds, with probabilities spread over (0, 1)."""
    from sklearn.linear_model import LogisticRegression

    from attpc_classify.data import as_float

    torch.manual_seed(seed)
    args = {"in_chans": config.n_channels, "num_classes": 3, "width": 8, "depth": 2,
            "dropout": 0.0, "global_pool": "avg"}  # fmt: skip
    model = create_model("cnn", args).eval()
    with h5py.File(train, "r") as f:
        x, y = as_float(torch.from_numpy(f["images"][:])), f["label"][:]
    with torch.no_grad():
        feats = model.pool(model.features(x)).numpy().astype(np.float64)
        # standardised features (sparse images vary little), folded back into the head
        mean, scale = feats.mean(axis=0), feats.std(axis=0) + 1e-12
        fit = LogisticRegression(C=1.0, max_iter=5000).fit((feats - mean) / scale, y)
        weight = fit.coef_ / scale
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(fit.intercept_ - weight @ mean))
    meta = {
        "model": {"name": "cnn", "args": args},
        "image_config": config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "output_names": list(CLASS_NAMES),
        "task": "multiclass",
        "input": "images",
        "metrics": {},
        "epoch": 0,
        "git_sha": "test",
    }
    run.mkdir(parents=True)
    save_model(run, model, meta)
    return run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run with an fp32 + static int8 export, and a Spyral file of 90 other events."""
    root = tmp_path_factory.mktemp("onnx")
    train = make_image_file(root / "train.h5", n_per_class=40, seed=0, config=ROBUST)
    run = make_run(root / "runs" / "cnn", train, ROBUST)
    assert main(["export", str(run), "--onnx", "--int8", "static", "--calibration",
                 str(train)]) == 0  # fmt: skip
    clouds, labels = make_events(30, np.random.default_rng(5))
    events = [Event(run=9, event_id=i, points=p, label=int(lab))
              for i, (p, lab) in enumerate(zip(clouds, labels, strict=True))]  # fmt: skip
    spyral = write_spyral(root / "run_0009.h5", events)
    return {"root": root, "run": run, "spyral": spyral, "train": train}


def _classify(run, inputs, out, *args: str) -> dict[str, np.ndarray]:
    assert main(["classify", str(run), *map(str, inputs), "--out", str(out), "--quiet",
                 *args]) == 0  # fmt: skip
    return read_predictions(out)


def test_export_writes_models_preprocessing_and_decision(exported):
    meta = read_json(exported["run"] / "onnx" / "onnx.json")
    run_meta = read_json(exported["run"] / "model.json")
    assert meta["image_config"] == run_meta["image_config"] == ROBUST.to_dict()
    assert meta["output_names"] == ["proton", "carbon", "other"]
    assert meta["weights_sha256"] == run_meta["sha256"]
    assert set(meta["files"]) == {"fp32", "int8"} and meta["files"]["int8"]["mode"] == "static"
    calib = meta["files"]["int8"]["calibration"]
    assert calib["n_events"] == 120 and calib["file"].endswith("train.h5")  # all 120 < 512
    assert meta["graph"]["input_shape"] == [None, 4, 32, 32]


def test_onnxruntime_fp32_gives_torch_probabilities(exported, tmp_path):
    run, spyral = exported["run"], exported["spyral"]
    torch_p = _classify(run, [spyral], tmp_path / "t.csv", "--precision", "fp32")
    ort_p = _classify(run, [spyral], tmp_path / "o.h5", "--engine", "onnxruntime",
                      "--onnx-model", "fp32")  # fmt: skip
    assert list(ort_p) == list(torch_p) == ["run", "event_id", "label", *P]
    with h5py.File(tmp_path / "o.h5", "r") as f:
        assert f.attrs["engine"] == "onnxruntime:fp32"
    np.testing.assert_array_equal(ort_p["event_id"], np.arange(90))
    np.testing.assert_array_equal(ort_p["label"], torch_p["label"])
    got, want = np.stack([ort_p[c] for c in P], 1), np.stack([torch_p[c] for c in P], 1)
    live = ~np.isnan(want).any(axis=1)
    assert live.sum() >= 55  # protons and carbons keep points through mask and DBSCAN
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # the same blank events
    # the CSV holds 6 decimals: tolerance + half a unit of the last one
    assert np.abs(got[live] - want[live]).max() <= FP32_TOLERANCE + 5e-7


def _decision_margin(p: np.ndarray, threshold: float | None) -> np.ndarray:
    """How far torch's p is from changing its label: |p_proton - t| for a threshold,
    half the gap between the two most probable classes for argmax."""
    if threshold is not None:
        return np.abs(p[:, 0] - threshold)
    top = np.sort(p, axis=1)
    return (top[:, -1] - top[:, -2]) / 2


@pytest.mark.parametrize("threshold", [None, 0.4])
def test_int8_labels_agree_except_within_tolerance_of_the_boundary(exported, tmp_path, threshold):
    run = exported["run"]
    if threshold is not None:  # a copy of the run with a proton threshold, exported again
        run = shutil.copytree(run, tmp_path / "thr", ignore=shutil.ignore_patterns("onnx"))
        set_decision(run, {"proton_threshold": threshold})
        assert main(["export", str(run), "--onnx", "--int8", "static", "--calibration",
                     str(exported["train"])]) == 0  # fmt: skip
    spyral = exported["spyral"]
    torch_p = _classify(run, [spyral], tmp_path / "t.csv", "--precision", "fp32")
    int8_p = _classify(run, [spyral], tmp_path / "i.csv", "--engine", "onnxruntime")  # auto
    want, got = np.stack([torch_p[c] for c in P], 1), np.stack([int8_p[c] for c in P], 1)
    live = ~np.isnan(want).any(axis=1)
    assert np.abs(got[live] - want[live]).max() <= INT8_TOLERANCE
    clear = live & (_decision_margin(np.nan_to_num(want), threshold) >= INT8_TOLERANCE)
    assert clear.sum() >= 40
    np.testing.assert_array_equal(int8_p["label"][clear], torch_p["label"][clear])
    if threshold is not None:  # the threshold, not argmax, made the labels
        called = torch_p["label"][live] == "proton"
        np.testing.assert_array_equal(called, want[live, 0] >= threshold)


def test_export_directory_alone_and_worker_processes_give_the_same_table(exported, tmp_path):
    run, spyral = exported["run"], exported["spyral"]
    alone = shutil.copytree(run / "onnx", tmp_path / "portable")  # no run beside it
    args = ("--engine", "onnxruntime", "--onnx-model", "fp32")
    _classify(run, [spyral], tmp_path / "a.csv", *args)
    _classify(alone, [spyral], tmp_path / "b.csv", *args, "--workers", "2",
              "--events-per-task", "20")  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_bad_or_missing_export_is_one_line_and_exit_2(exported, tmp_path, capsys):
    run, spyral = exported["run"], exported["spyral"]
    bare = shutil.copytree(run, tmp_path / "bare", ignore=shutil.ignore_patterns("onnx"))
    corrupt = shutil.copytree(run, tmp_path / "corrupt")
    (corrupt / "onnx" / "model.int8.onnx").write_bytes(b"\x08\x07garbage")
    stale = shutil.copytree(run, tmp_path / "stale")
    set_decision(stale, {"proton_threshold": 0.3})  # the run changed after its export
    fp32_only = shutil.copytree(run, tmp_path / "fp32only", ignore=shutil.ignore_patterns("onnx"))
    assert main(["export", str(fp32_only), "--onnx", "--out", str(tmp_path / "x")]) == 0
    assert "checks skipped" in capsys.readouterr().out  # no config.yaml: no sample to check on
    capsys.readouterr()
    ort = ["--engine", "onnxruntime"]
    cases = [
        (["classify", str(bare), str(spyral), *ort], "no ONNX export"),
        (["classify", str(corrupt), str(spyral), *ort], "model.int8.onnx: does not match"),
        (["classify", str(stale), str(spyral), *ort], "export again"),
        (["classify", str(tmp_path / "x"), str(spyral), *ort, "--onnx-model", "int8"],
         "no int8 model"),
        (["classify", str(run), str(spyral), *ort, "--precision", "bf16"], "torch option"),
        (["classify", str(run), str(spyral), *ort, "--device", "cuda"], "use --engine torch"),
        (["export", str(run)], "give --onnx"),
        (["export", str(bare), "--onnx", "--int8", "static"], "give one with --calibration"),
        (["export", str(bare), "--onnx", "--int8", "static", "--calibration",
          str(tmp_path / "gone.h5")], "gone.h5"),
    ]  # fmt: skip
    for argv, needle in cases:
        out = tmp_path / "p.csv"
        if argv[0] == "classify":
            argv = [*argv, "--out", str(out), "--quiet"]
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
        assert not out.exists()
