"""Adapting gradient-boosted trees (`attpc_classify.trees_adapt`): both routes against the
same fit done directly with scikit-learn, the guard, and bad input in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _synthetic import SMALL_CONFIG, make_image_file
from sklearn.ensemble import HistGradientBoostingClassifier

from attpc_classify.adapt import AdaptConfig
from attpc_classify.checkpoint import load_run
from attpc_classify.cli import main
from attpc_classify.data import stratified_split
from attpc_classify.trees_adapt import self_train
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig

#: the trees' settings spelled out, so the direct scikit-learn fits below follow them
SETTINGS = ["model.max_iter=15", "model.learning_rate=0.1", "model.max_leaf_nodes=7",
            "optim.balance=none", "model.l2_regularization=1.0"]  # fmt: skip


def _sklearn(x, y, x_val, y_val, sample_weight=None):
    clf = HistGradientBoostingClassifier(learning_rate=0.1, max_iter=15, max_leaf_nodes=7,
                                         l2_regularization=1.0, early_stopping=True,
                                         random_state=0)  # fmt: skip
    x = np.array(x, dtype=np.float64)
    x[:, np.isnan(x).all(axis=0)] = 0.0  # as fit_gbt does
    return clf.fit(x, y, sample_weight=sample_weight, X_val=x_val, y_val=y_val)


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("trees")
    config = ImageConfig.from_dict(
        {**SMALL_CONFIG.to_dict(), "voxel_grid": 0, "features": "tracks_v1"}
    )
    train = make_image_file(d / "train.h5", n_per_class=40, config=config)
    val = make_image_file(d / "val.h5", n_per_class=20, seed=1, config=config)
    target = make_image_file(d / "target.h5", n_per_class=50, seed=2, config=config)
    run = d / "run"
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(train), "--out",
                 str(run), "--quiet", f"data.val_path={val}", *SETTINGS]) == 0  # fmt: skip
    return run, train, val, target


def _by_hand_pseudo_labels(proba, confidence=0.7, max_per_class=0.5):
    """Per predicted class: its events with p >= confidence, the most confident
    floor(max_per_class x predicted) of them (at least one)."""
    pred, conf = proba.argmax(1), proba.max(1)
    idx = []
    for c in range(proba.shape[1]):
        mine = [i for i in range(len(pred)) if pred[i] == c and conf[i] >= confidence]
        mine.sort(key=lambda i: -conf[i])
        idx += mine[: max(1, math.floor(max_per_class * int((pred == c).sum())))]
    idx = np.array(sorted(idx))
    return idx, pred[idx]


def test_adapt_refits_trees_on_simulation_plus_confident_target(tree_run, tmp_path, capsys):
    run, train, val, target = tree_run
    out = tmp_path / "adapted"
    assert main(["adapt", str(run), "--data", str(target), "--out", str(out), "--rounds",
                 "1"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "no AdaBN" in text and "round 1" in text
    report = json.loads((out / "adapt.json").read_text())
    assert report["method"] == "refit" and report["n_target"] == 150
    assert (out / "config.yaml").read_text() == (run / "config.yaml").read_text()
    tr, va, tg = (read_images(p, features=True) for p in (train, val, target))
    before = load_run(run).predict_proba(tg.images, features=tg.features)
    idx, labels = _by_hand_pseudo_labels(before)
    assert report["rounds"][0]["pseudo_labels"] == np.bincount(labels, minlength=3).tolist()
    clf = _sklearn(np.concatenate([tr.features, tg.features[idx]]),
                   np.concatenate([tr.label, labels]), va.features, va.label)  # fmt: skip
    got = load_run(out).predict_proba(tg.images, features=tg.features)
    assert not report["stopped_by_guard"]
    np.testing.assert_allclose(got, clf.predict_proba(tg.features), atol=1e-5)
    frac = np.bincount(got.argmax(1), minlength=3) / len(got)
    np.testing.assert_allclose(frac, report["fractions"]["final"], atol=1e-9)


def test_guard_undoes_a_round_that_drops_a_class(tree_run, tmp_path):
    run, _, _, target = tree_run
    tg = read_images(target, features=True)
    # min_fraction 1: any class whose share falls at all undoes the round
    cfg = AdaptConfig(rounds=3, min_fraction=1.0)
    report = self_train(run, tg.features, tmp_path / "a", cfg)
    before = load_run(run).predict_proba(tg.images, features=tg.features)
    after = load_run(tmp_path / "a").predict_proba(tg.images, features=tg.features)
    first = np.array(report["rounds"][0]["fractions"])
    assert np.any(first < np.array(report["fractions"]["before"]))  # the refit moved a class
    assert report["stopped_by_guard"] and len(report["rounds"]) == 1
    np.testing.assert_array_equal(after, before)  # the round was undone


@pytest.mark.parametrize("share", [None, 0.5])
def test_train_init_run_refits_with_labelled_target_events(tree_run, tmp_path, share):
    run, train, _, target = tree_run
    out = tmp_path / "ft"
    args = ["--out", str(out), "--quiet", f"model.init=run:{run}", *SETTINGS]
    if share is not None:
        args.append(f"model.target_share={share}")
    assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(target), *args]) == 0
    tr, tg = read_images(train, features=True), read_images(target, features=True)
    # the target file split as train splits it (seed 0, 20 % validation)
    t_idx, v_idx = stratified_split(tg.label, 0.2, np.random.default_rng(0))
    # the default 0.25: the target's total a third of the run's; 0.5: both sides the same
    w = len(tr.label) / len(t_idx) * {None: 1 / 3, 0.5: 1.0}[share]
    clf = _sklearn(
        np.concatenate([tr.features, tg.features[t_idx]]),
        np.concatenate([tr.label, tg.label[t_idx]]),
        tg.features[v_idx], tg.label[v_idx],
        sample_weight=np.concatenate([np.ones(len(tr.label)), np.full(len(t_idx), w)]),
    )  # fmt: skip
    got = load_run(out).predict_proba(tg.images, features=tg.features)
    np.testing.assert_allclose(got, clf.predict_proba(tg.features), atol=1e-5)


def test_bad_input_is_one_line(tree_run, tmp_path, capsys):
    run, train, _, target = tree_run
    # no rounds: trees have nothing to re-estimate
    assert main(["adapt", str(run), "--data", str(target), "--out", str(tmp_path / "a")]) == 2
    assert "--rounds >= 1" in capsys.readouterr().err
    # logreg cannot start from a run
    assert main(["train", "--data", str(target), "--out", str(tmp_path / "b"), "model.name=logreg",
                 f"model.init=run:{run}"]) == 2  # fmt: skip
    assert "not supported for model.name=logreg" in capsys.readouterr().err
    # a share of the weight is a fraction, and only for refitted trees
    for bad, says in (("model.target_share=1", "(0, 1)"), ("model.target_share=0.5", "init=run")):
        init = [f"model.init=run:{run}"] if "(0, 1)" in says else []
        assert main(["train", "--config", "configs/train/gbt.yaml", "--data", str(target), "--out",
                     str(tmp_path / "d"), bad, *init]) == 2  # fmt: skip
        assert says in capsys.readouterr().err
    # the run's training file is gone
    moved = tmp_path / "run2"
    moved.mkdir()
    for f in run.iterdir():
        if f.is_file():
            text = f.read_bytes()
            if f.name == "config.yaml":
                text = text.replace(str(train).encode(), str(tmp_path / "gone.h5").encode())
            (moved / f.name).write_bytes(text)
    assert main(["adapt", str(moved), "--data", str(target), "--out", str(tmp_path / "c"),
                 "--rounds", "1"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gone" in err[0] and "Traceback" not in err[0]
