"""The decision rule (argmax or a validation-chosen proton threshold) and that training,
evaluation and classification all apply the one recorded in the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _synthetic import make_image_file

from attpc_classify.checkpoint import load_run, read_json, write_model_json
from attpc_classify.cli import main
from attpc_classify.decision import choose_proton_threshold, decide
from attpc_classify.predict import read_predictions

NAMES = ("proton", "carbon", "other")


def test_decide_argmax_and_threshold() -> None:
    proba = np.array([[0.6, 0.3, 0.1], [0.45, 0.1, 0.45], [0.2, 0.5, 0.3], [0.8, 0.05, 0.15]])
    np.testing.assert_array_equal(decide(proba, NAMES), [0, 0, 1, 0])
    # threshold 0.7: only the last is proton; the others get their best non-proton class
    np.testing.assert_array_equal(decide(proba, NAMES, 0.7), [1, 2, 1, 0])
    # a low threshold calls proton even where it is not the most probable class
    np.testing.assert_array_equal(decide(proba, NAMES, 0.2), [0, 0, 0, 0])
    assert decide(np.zeros((0, 3)), NAMES, 0.7).shape == (0,)


def test_threshold_maximises_f1_on_the_given_events() -> None:
    rng = np.random.default_rng(0)
    is_proton = rng.random(2000) < 0.3
    # protons score high; a tail of non-protons reaches 0.5-0.75, where argmax errs
    p = np.where(is_proton, rng.uniform(0.8, 1.0, 2000), rng.uniform(0.0, 0.75, 2000))
    chosen = choose_proton_threshold(p, is_proton)
    assert 0.75 <= chosen["proton_threshold"] <= 0.8
    assert chosen["proton_f1"] == 1.0 > chosen["proton_f1_at_0.5"]
    assert chosen["n_events"] == 2000


def test_val_f1_threshold_recorded_and_applied_everywhere(tmp_path, capsys) -> None:
    train = make_image_file(tmp_path / "train.h5", n_per_class=40, seed=0)
    test = make_image_file(tmp_path / "test.h5", n_per_class=20, seed=1)
    run = tmp_path / "run"
    argv = ["train", "--data", str(train), "--out", str(run), "--quiet", "model.name=cnn",
            "model.width=4", "model.depth=2", "optim.epochs=2",
            "proton_threshold=val_f1"]  # fmt: skip
    assert main(argv) == 0
    assert "proton threshold" in capsys.readouterr().out
    decision = load_run(run).info.decision
    assert decision["rule"] == "proton_threshold" and decision["chosen_on"] == "validation"
    assert decision["n_events"] == 24  # the stratified 20 % of 120 events

    # force a threshold no argmax would give, so the rule is visible in every output
    meta = read_json(run / "model.json")
    write_model_json(run, meta | {"decision": decision | {"proton_threshold": 0.99}})
    assert main(["evaluate", str(run), "--data", str(test), "--n-boot", "0", "--no-figures",
                 "--quiet"]) == 0  # fmt: skip
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert metrics["decision"]["proton_threshold"] == 0.99
    assert metrics["tasks"]["multiclass"]["per_class"]["proton"]["recall"]["value"] == 0.0
    out = tmp_path / "pred.csv"
    assert main(["classify", str(run), str(test), "--out", str(out), "--quiet"]) == 0
    got = read_predictions(out)
    assert "proton" not in set(got["label"].tolist())  # no p(proton) reaches 0.99
    assert (got["p_proton"] < 0.99).all()

    # a mangled threshold is a one-line error, not a traceback
    write_model_json(run, meta | {"decision": {"proton_threshold": "high"}})
    assert main(["classify", str(run), str(test), "--out", str(out), "--quiet"]) == 2
    assert "model.json" in capsys.readouterr().err


def test_resuming_a_finished_tree_run_adds_the_threshold_without_refitting(
    tmp_path, monkeypatch
) -> None:
    from _synthetic import SMALL_CONFIG

    from attpc_classify import engine
    from attpc_classify.checkpoint import file_sha256
    from data_prep.images import ImageConfig

    config = ImageConfig.from_dict({**SMALL_CONFIG.to_dict(), "voxel_grid": 0,
                                    "features": "tracks_v1"})  # fmt: skip
    data = make_image_file(tmp_path / "train.h5", n_per_class=40, config=config)
    run, direct = tmp_path / "run", tmp_path / "direct"

    def fit(out: Path, *extra: str) -> list[str]:
        return ["train", "--config", "configs/train/gbt.yaml", "--data", str(data),
                "--out", str(out), "--quiet", "model.max_iter=20", "model.max_leaf_nodes=7",
                *extra]  # fmt: skip

    assert main(fit(run)) == 0
    assert load_run(run).info.decision is None  # argmax
    weights = file_sha256(run / "model.safetensors")

    def refit(*args, **kwargs):
        raise AssertionError("a finished fit was refitted")

    real_fit = engine._fit_sklearn
    monkeypatch.setattr(engine, "_fit_sklearn", refit)
    assert main(["train", "--resume", str(run), "--quiet", "proton_threshold=val_f1"]) == 0
    assert file_sha256(run / "model.safetensors") == weights  # the same trees
    resumed = load_run(run).info.decision
    # the same threshold as a run trained with the rule from the start
    monkeypatch.setattr(engine, "_fit_sklearn", real_fit)
    assert main(fit(direct, "proton_threshold=val_f1")) == 0
    assert file_sha256(direct / "model.safetensors") == weights
    assert resumed == load_run(direct).info.decision
    assert resumed["rule"] == "proton_threshold" and resumed["n_events"] == 24
    # and back to argmax, still without a refit
    monkeypatch.setattr(engine, "_fit_sklearn", refit)
    assert main(["train", "--resume", str(run), "--quiet", "proton_threshold=argmax"]) == 0
    assert load_run(run).info.decision is None
    assert file_sha256(run / "model.safetensors") == weights

    # a resume that changes the fit refits
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(engine, "_fit_sklearn", counted)
    assert main(["train", "--resume", str(run), "--quiet", "model.max_iter=10"]) == 0
    assert calls == [1]
