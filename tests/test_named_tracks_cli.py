"""gbt on named-track features (tracks_v3, v6-v9) end to end: simulate (with per-point truth)
-> preprocess -> train names the tracks -> the run reloads and classifies the raw run
files as the image file -> both refits (labels: model.init=run:, no labels: adapt) keep
the track trees and refit the event trees on the simulated events named as at training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attpc_classify.cli import main

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize(
    ("features", "early", "pair"),
    [
        ("tracks_v3", False, ""),
        ("tracks_v6", True, "widest"),
        ("tracks_v7", True, ""),
        ("tracks_v8", True, "widest"),
        ("tracks_v9", False, "both"),
    ],
)
def test_named_track_trees_train_reload_and_classify(tmp_path, capsys, features, early, pair):
    from attpc_classify.checkpoint import load_run
    from attpc_classify.models.gbt import NamedTracksGBT
    from attpc_classify.predict import read_predictions

    sim, data, run = tmp_path / "sim", tmp_path / "train.h5", tmp_path / "run"
    assert main(["simulate", "--config", "tiny", "--events", "60", "--seed", "5",
                 "--events-per-file", "30", "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    assert main(["preprocess", str(sim), "--config", "configs/prep/features.yaml", "--set",
                 f"features={features}", "--out", str(data), "--quiet"]) == 0  # fmt: skip
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
                 str(run), "model.max_iter=20", f"model.track_early_stopping={early}",
                 *([f"model.light_pair={pair}"] if pair else []), "--quiet"]) == 0  # fmt: skip
    model = load_run(run).model
    assert isinstance(model, NamedTracksGBT) and model.track.feature.shape[0] > 0
    # the light pair's columns
    assert model.pairs == (features in ("tracks_v6", "tracks_v8", "tracks_v9"))
    assert model.light_pair == (pair or "likeliest")
    # the track trees read each track's helix about its own vertex where the set has it
    names = load_run(run).info.image_config.feature_names
    last = names[int(model.track_cols[0, -1])]
    vertex = features in ("tracks_v7", "tracks_v8", "tracks_v9")
    assert last == ("t1_vhelix_log10_invariant_window" if vertex else "t1_helix_rms_mm")
    # 300 iterations (a tree per kind present each), or fewer: the held-out events' tracks
    iterations = model.track.feature.shape[0] // len(model.track.tree_class.unique())
    assert (iterations < 300) == early
    raw, stored = tmp_path / "raw.csv", tmp_path / "stored.csv"
    assert main(["classify", str(run), *map(str, sorted(sim.glob("run_*.h5"))), "--out",
                 str(raw), "--quiet"]) == 0  # fmt: skip
    assert main(["classify", str(run), str(data), "--out", str(stored), "--quiet"]) == 0
    got, want = read_predictions(raw), read_predictions(stored)
    np.testing.assert_allclose(got["p_proton"], want["p_proton"], atol=1e-5)

    # the simulated events as a refit reads them are the training's own inputs: sklearn's
    # trees fitted on them alone, with the run's settings and seed, are the run's trees
    from sklearn.ensemble import HistGradientBoostingClassifier

    from attpc_classify.adapt import AdaptConfig
    from attpc_classify.data import task_arrays
    from attpc_classify.models.gbt import event_inputs
    from attpc_classify.trees_adapt import self_train, source_inputs, source_sets

    cfg, train, val = source_sets(run)
    x, y = source_inputs(model, cfg, train, "3class")
    assert x.shape[1] > model.n_features and np.isfinite(x[:, model.n_features]).any()
    x_val, y_val = (t.numpy() for t in task_arrays(val, "3class", "features"))
    early = len(np.unique(y_val)) == len(np.unique(y))  # as train: early stopping on val
    x_fit = x.copy()
    x_fit[:, np.isnan(x).all(axis=0)] = 0.0  # sklearn cannot bin an all-NaN column
    clf = HistGradientBoostingClassifier(max_iter=20, learning_rate=cfg.model.learning_rate,
                                         max_leaf_nodes=cfg.model.max_leaf_nodes,
                                         l2_regularization=cfg.model.l2_regularization,
                                         random_state=cfg.seed, early_stopping=early)  # fmt: skip
    if early:
        clf.fit(x_fit, y, X_val=event_inputs(model, x_val), y_val=y_val)
    else:
        clf.fit(x_fit, y)
    assert model.event.feature.shape[0] == sum(len(it) for it in clf._predictors)
    with torch.no_grad():
        ours = model.event(torch.from_numpy(x)).softmax(-1).numpy()
    np.testing.assert_allclose(ours, clf.predict_proba(x), atol=1e-6)

    # labels: the run's track trees, new event trees fitted on both sides
    refit = tmp_path / "refit"
    argv = ["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
            str(refit), f"model.init=run:{run}", "model.max_iter=20", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    refitted = load_run(refit).model
    for name, t in model.track.state_dict().items():
        torch.testing.assert_close(refitted.track.state_dict()[name], t)
    assert refitted.light_pair == model.light_pair  # the run's pair, not the config's
    # no labels: one self-training round, track trees kept as well
    adapted = tmp_path / "adapted"
    report = self_train(run, train.features, adapted, AdaptConfig(rounds=1, batch_size=8,
                                                                  min_fraction=0.0))  # fmt: skip
    assert len(report["rounds"]) == 1
    got = load_run(adapted).model
    assert isinstance(got, NamedTracksGBT) and got.light_pair == model.light_pair
    for name, t in model.track.state_dict().items():
        torch.testing.assert_close(got.track.state_dict()[name], t)
    assert main(["classify", str(adapted), str(data), "--out", str(tmp_path / "a.csv"),
                 "--quiet"]) == 0  # fmt: skip


def test_a_run_from_before_light_columns_refits_and_classifies(tmp_path, monkeypatch):
    """Named-track runs trained before 2026-12-05 have no `light_columns`
    (``light_counts`` absent from their arguments): they still load and classify, and a
    labelled refit of one (``model.init=run:``) reads the columns the run's event trees
    were made for and records it, so the refit reloads and classifies the same way."""
    import json

    import attpc_classify.models.build as build
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import read_predictions

    sim, data, run = tmp_path / "sim", tmp_path / "train.h5", tmp_path / "run"
    assert main(["simulate", "--config", "tiny", "--events", "40", "--seed", "6",
                 "--events-per-file", "20", "--out", str(sim), "--quiet"]) == 0  # fmt: skip
    assert main(["preprocess", str(sim), "--config", "configs/prep/features.yaml", "--set",
                 "features=tracks_v3", "--out", str(data), "--quiet"]) == 0  # fmt: skip
    real_args = build.model_args

    def before(*args, **kwargs):  # the arguments as the code before light_columns made them
        out = real_args(*args, **kwargs)
        out.pop("light_counts", None)
        return out

    monkeypatch.setattr(build, "model_args", before)
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
                 str(run), "model.max_iter=10", "--quiet"]) == 0  # fmt: skip
    monkeypatch.undo()
    assert "light_counts" not in json.loads((run / "model.json").read_text())["model"]["args"]
    assert load_run(run).model.light_counts is False
    refit = tmp_path / "refit"
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(data), "--out",
                 str(refit), f"model.init=run:{run}", "model.max_iter=10",
                 "--quiet"]) == 0  # fmt: skip
    args = json.loads((refit / "model.json").read_text())["model"]["args"]
    assert args["light_counts"] is False
    model = load_run(refit).model
    assert model.event.n_features == load_run(run).model.event.n_features
    raw, stored = tmp_path / "raw.csv", tmp_path / "stored.csv"
    assert main(["classify", str(refit), *map(str, sorted(sim.glob("run_*.h5"))), "--out",
                 str(raw), "--quiet"]) == 0  # fmt: skip
    assert main(["classify", str(refit), str(data), "--out", str(stored), "--quiet"]) == 0
    np.testing.assert_allclose(read_predictions(raw)["p_proton"],
                               read_predictions(stored)["p_proton"], atol=1e-5)  # fmt: skip
