"""The demo pipeline at a tiny size: real simulation, preprocessing, training, report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from attpc_classify.cli import main
from attpc_classify.demo import DemoConfig, DemoModel, run_demo
from attpc_classify.predict import read_predictions
from data_prep.errors import InputError
from data_prep.imagefile import read_images


def _tiny(**changes) -> DemoConfig:
    settings = dict(
        sim_config="tiny",  # balanced classes: 24 events hold all three
        events=24,
        events_per_file=8,
        test_files=1,
        workers=1,
        size=32,
        models={
            "cnn": DemoModel("cnn_small", ("model.width=4", "model.depth=2")),
            "gbt": DemoModel("gbt", ("model.max_iter=20",)),
        },
        tasks=("multiclass",),
        epochs=1,
        batch_size=8,
        n_boot=50,
    )
    settings.update(changes)
    return DemoConfig(**settings)


@pytest.mark.heavy
def test_tiny_demo_writes_report_runs_and_reuses_stages(tmp_path, caplog):
    out = tmp_path / "demo"
    with caplog.at_level(logging.INFO, logger="attpc_classify"):
        result = run_demo(out, _tiny())
    lines = caplog.messages
    report = result.report.read_text()
    assert result.report == out / "report.md"
    assert set(result.runs) == {"cnn_multiclass", "gbt_multiclass"}
    metrics = json.loads((out / "runs/cnn_multiclass/eval/test/metrics.json").read_text())
    assert metrics["n_labelled"] == 8 and set(metrics["tasks"]) == {"multiclass", "binary"}
    assert "| cnn_multiclass | 3-class |" in report and "| gbt_multiclass | 3-class |" in report
    # the trees are fitted once: no epochs or batches on their train command line
    gbt_train = next(line for line in report.splitlines() if "--config gbt " in line)
    assert "optim.epochs" not in gbt_train and "seed=0" in gbt_train
    assert "--set structured_noise=rules" in report and "--set features=tracks_v6" in report
    assert "--set cluster_z_scale=0.5" in report
    assert "attpc-classify simulate --config tiny --events 24" in report
    assert "Errors of `cnn_multiclass` per simulated channel" in report
    assert sum(r["n"] for r in metrics["by_channel"]["binary"].values()) == 8
    assert (out / "compare.png").exists() and (out / "compare.csv").exists()
    predictions = read_predictions(out / "predictions.csv")
    assert list(predictions) == ["run", "event_id", "label", "p_proton", "p_carbon", "p_other"]
    assert len(predictions["event_id"]) == 8  # the raw test run file, classified
    assert any(line.startswith("[1/6] simulate") for line in lines)
    # each run keeps its training files' health, the reference classify checks against
    health = json.loads((out / "runs/gbt_multiclass/health.json").read_text())
    assert [Path(f["path"]).name for f in health["files"]] == ["run_0000.h5", "run_0001.h5"]
    assert "Its detector health (`attpc-classify health`" in report
    assert "attpc-classify health " in report and "--out " + str(out / "runs") in report

    # the demo's trees classify a raw run file (features computed on the fly, structured
    # noise found in the run itself) as they do the preprocessed test file; the binary
    # proton F1 that evaluate reported is scikit-learn's on those calls
    raw = out / "sim" / "run_0002.h5"
    assert main(["classify", str(out / "runs/gbt_multiclass"), str(raw), "--out",
                 str(tmp_path / "gbt.csv"), "--quiet"]) == 0  # fmt: skip
    assert main(["classify", str(out / "runs/gbt_multiclass"), str(out / "data/test.h5"),
                 "--out", str(tmp_path / "gbt_images.csv"), "--quiet"]) == 0  # fmt: skip
    on_raw, on_images = (
        read_predictions(tmp_path / "gbt.csv"),
        read_predictions(tmp_path / "gbt_images.csv"),
    )
    np.testing.assert_array_equal(on_raw["event_id"], on_images["event_id"])
    np.testing.assert_array_equal(on_raw["label"], on_images["label"])
    truth = read_images(out / "data/test.h5")
    assert truth.event_id.tolist() == on_raw["event_id"].tolist()
    is_proton = np.asarray(truth.class_names)[truth.label] == "proton"
    gbt_metrics = json.loads((out / "runs/gbt_multiclass/eval/test/metrics.json").read_text())
    expected = f1_score(is_proton, on_raw["label"] == "proton", zero_division=0)
    reported = gbt_metrics["tasks"]["binary"]["per_class"]["proton"]["f1"]["value"] or 0.0
    assert reported == pytest.approx(expected, abs=1e-6)

    # same data settings, one more task: earlier stages reused, only the new models
    # trained, side by side in two worker processes, and every run evaluated side by side:
    # the 3-class CNN's evaluation the same as the one made in this process
    again = run_demo(out, _tiny(tasks=("multiclass", "binary"), workers=2))
    side_by_side = json.loads((out / "runs/cnn_multiclass/eval/test/metrics.json").read_text())
    speed = "inference_events_per_s"  # a wall-clock rate, the one entry that may differ
    assert {k: v for k, v in side_by_side.items() if k != speed} == {
        k: v for k, v in metrics.items() if k != speed
    }
    assert {"simulate", "preprocess", "train cnn_multiclass", "train gbt_multiclass"} <= set(
        again.reused
    )
    assert "train cnn_binary" not in again.reused
    assert (out / "runs/cnn_binary/model.safetensors").exists()
    assert (out / "runs/gbt_binary/model.safetensors").exists()
    assert "| cnn_binary | binary |" in again.report.read_text()


def test_a_demo_model_trains_on_its_own_tasks_of_the_demos():
    vit = DemoModel("vit_tiny", tasks=("multiclass",))
    assert vit.tasks_in(("multiclass", "binary")) == ("multiclass",)
    assert vit.tasks_in(("binary",)) == ("binary",)  # none of its own: the demo's
    assert DemoModel("cnn_small").tasks_in(("multiclass", "binary")) == ("multiclass", "binary")


def test_the_report_says_how_much_each_family_validates_on(tmp_path):
    """A model's share: its last ``data.val_fraction`` override, else its preset's, else
    the training default (0.2)."""
    from attpc_classify.demo import _validation_text

    preset = tmp_path / "mine.yaml"
    preset.write_text("model:\n  name: gbt\ndata:\n  val_fraction: 0.3\n")
    models = {
        "cnn": DemoModel("cnn_small"),  # the shipped preset sets none
        "gbt": DemoModel("gbt", ("data.val_fraction=0.5", "data.val_fraction=0.1")),
        "mine": DemoModel(str(preset)),
    }
    text = _validation_text(DemoConfig(models=models))
    assert text == "share of it validates each run: 20% for cnn; 10% for gbt; 30% for mine"
    one = DemoConfig(models={"cnn": DemoModel("cnn_small")})
    assert _validation_text(one) == "20% of it validates each run"


def test_demo_refuses_a_foreign_directory_and_bad_settings(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    assert main(["demo", "--out", str(foreign), "--quiet"]) == 2
    assert "not a demo output directory" in capsys.readouterr().err
    assert (foreign / "thesis.tex").exists()
    assert main(["demo", "--out", str(tmp_path / "d"), "--models", "resnet"]) == 2
    with pytest.raises(InputError, match="test_files"):
        _tiny(test_files=3)
