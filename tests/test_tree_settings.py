"""scripts/tree_settings.py: its scores by hand, its cache reused as written."""

from __future__ import annotations

import json

import numpy as np
from _scripts import load_script


def test_line_scores_the_binary_reading_and_the_macro_f1(capsys) -> None:
    ts = load_script("tree_settings")
    # validation: true 0 0 1 2, called 0 1 1 2 -> proton: 1 TP, 1 FN, 0 FP: F1 2/3;
    # per class F1 2/3, 2/3, 1 -> macro 7/9
    yv = np.array([0, 0, 1, 2])
    pv = np.eye(3)[[0, 1, 1, 2]]
    # test: true 0 2, called 0 0 -> proton 1 TP, 1 FP: F1 2/3; classes 0 (2/3), 2 (0): 1/3
    yt = np.array([0, 2])
    pt = np.eye(3)[[0, 0]]
    ts.line("x", pv, yv, pt, yt, 0.0, iterations=7)
    got = json.loads(capsys.readouterr().out)
    assert got["variant"] == "x" and got["iterations"] == 7
    assert got["val_proton_f1"] == round(2 / 3, 4) and got["val_macro_f1"] == round(7 / 9, 4)
    assert got["test_proton_f1"] == round(2 / 3, 4) and got["test_macro_f1"] == round(1 / 3, 4)


def test_inputs_come_from_the_cache_without_the_run(tmp_path) -> None:
    ts = load_script("tree_settings")
    rng = np.random.default_rng(0)
    arrays = {k: rng.normal(size=(4, 2)) for k in ("x", "xv", "xt")}
    arrays |= {k: np.array([0, 1, 2, 0]) for k in ("y", "yv", "yt")}
    cache = tmp_path / "inputs.npz"
    np.savez(cache, **arrays)
    # the run and test paths do not exist: only the cache can answer
    got = ts.inputs(tmp_path / "no_run", tmp_path / "no_test.h5", cache)
    for name, a in zip(("x", "y", "xv", "yv", "xt", "yt"), got, strict=True):
        np.testing.assert_array_equal(a, arrays[name])


def test_the_boosted_trees_call_as_scikit_learn_does() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    ts = load_script("tree_settings")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    xv, yv = x[:150], y[:150]
    params = {"learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 7}
    model, n_iter = ts.boosted(x[150:], y[150:], xv, yv, params, seed=0)
    ref = HistGradientBoostingClassifier(**params, class_weight="balanced", early_stopping=True,
                                         random_state=0)  # fmt: skip
    ref.fit(x[150:], y[150:], X_val=xv, y_val=yv)
    assert n_iter == ref.n_iter_
    np.testing.assert_allclose(ts.proba(model, xv), ref.predict_proba(xv), atol=1e-6)
