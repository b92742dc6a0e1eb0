"""Metrics, bootstrap intervals, figures and comparison tables; `evaluate` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from attpc_classify.evaluate import (
    errors_by_channel,
    score_predictions,
    task_metrics,
    weighted_average_precision,
    weighted_roc_auc,
)
from attpc_classify.plots import plot_learning_curves
from attpc_classify.report import (
    compare_row,
    plot_confusion,
    plot_roc_pr,
    write_comparison,
)
from data_prep.errors import InputError

# A constructed 3-class confusion (rows true, columns predicted) and its hand-computed scores:
#   proton: tp 8, predicted 8+1+1 = 10, actual 8+2 = 10 -> P 0.8, R 0.8, F1 0.8
#   carbon: tp 5, predicted 2+5+0 = 7, actual 1+5+0 = 6 -> P 5/7, R 5/6, F1 10/13
#   other : tp 3, predicted 0+0+3 = 3, actual 1+0+3 = 4 -> P 1, R 0.75, F1 6/7
CONFUSION = np.array([[8, 2, 0], [1, 5, 0], [1, 0, 3]])


def _labels_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true, pred = [], []
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            true += [i] * int(cm[i, j])
            pred += [j] * int(cm[i, j])
    return np.array(true), np.array(pred)


def test_task_metrics_point_estimates_match_sklearn_and_hand_values():
    y, p = _labels_from_confusion(CONFUSION)
    m = task_metrics(y, p, ["proton", "carbon", "other"], n_boot=0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(m.confusion, CONFUSION)
    assert m.accuracy.value == pytest.approx(0.8)
    assert m.f1[1].value == pytest.approx(10 / 13)
    assert m.macro_f1.value == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert np.isnan(m.macro_f1.low)  # no resamples, no interval
    d = m.to_dict()
    assert d["per_class"]["other"]["support"] == 4
    assert d["per_class"]["carbon"]["recall"]["value"] == pytest.approx(5 / 6, abs=1e-6)


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400)
    p = np.where(rng.random(400) < 0.85, y, rng.integers(0, 3, 400))

    def run(seed: int):
        return task_metrics(y, p, ["a", "b", "c"], n_boot=300, rng=np.random.default_rng(seed))

    a, b, c = run(1), run(1), run(2)
    for est in (a.macro_f1, a.accuracy, *a.f1, *a.precision, *a.recall):
        assert est.low <= est.value <= est.high
        assert est.high - est.low < 0.2
    assert (a.macro_f1.low, a.macro_f1.high) == (b.macro_f1.low, b.macro_f1.high)
    assert (a.macro_f1.low, a.macro_f1.high) != (c.macro_f1.low, c.macro_f1.high)
    # percentile interval of accuracy ~ normal approximation sqrt(p(1-p)/n)
    half = 1.96 * np.sqrt(a.accuracy.value * (1 - a.accuracy.value) / 400)
    assert a.accuracy.high - a.accuracy.low == pytest.approx(2 * half, rel=0.25)


def test_bootstrap_by_runs_equals_a_slow_cluster_bootstrap():
    """Drawing whole runs: each resample's F1 equals scikit-learn's on the events of the
    runs drawn (a run drawn twice weighs twice), with the same draws made by hand."""
    rng = np.random.default_rng(4)
    runs = np.repeat(np.arange(12) * 10 + 3, rng.integers(5, 30, 12))  # uneven run sizes
    rng.shuffle(runs)
    n = len(runs)
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    m = task_metrics(y, p, ["proton", "rest"], n_boot=200, rng=np.random.default_rng(9),
                     groups=runs)  # fmt: skip
    units, unit_of = np.unique(runs, return_inverse=True)
    draws = np.random.default_rng(9).integers(0, len(units), size=(200, len(units)))
    f1 = []
    for row in draws:
        weight = np.bincount(row, minlength=len(units))[unit_of]
        f1.append(skm.f1_score(y, p, pos_label=0, sample_weight=weight, zero_division=0))
    low, high = np.percentile(f1, [2.5, 97.5])
    assert (m.f1[0].low, m.f1[0].high) == pytest.approx((low, high), abs=1e-12)


def test_bootstrap_by_runs_of_one_event_each_is_the_event_bootstrap():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    by_event = task_metrics(y, p, list("abc"), n_boot=100, rng=np.random.default_rng(1))
    by_run = task_metrics(y, p, list("abc"), n_boot=100, rng=np.random.default_rng(1),
                          groups=np.arange(300) * 7)  # fmt: skip
    assert by_run.to_dict() == by_event.to_dict()


def test_bootstrap_by_runs_is_wider_where_a_run_shares_its_errors():
    """Runs whose detectors differ: all errors sit in some runs. Resampling events
    treats them as independent; resampling runs sees the run-to-run spread."""
    rng = np.random.default_rng(6)
    runs = np.repeat(np.arange(20), 50)
    y = rng.integers(0, 2, 1000)
    bad_run = np.isin(runs, [2, 5, 11, 17])  # a fifth of the runs, half wrong
    p = np.where(bad_run & (rng.random(1000) < 0.5), 1 - y, y)
    kw = dict(n_boot=400, rng=np.random.default_rng(0))
    events = task_metrics(y, p, ["proton", "rest"], **kw).f1[0]
    runs_ = task_metrics(y, p, ["proton", "rest"], n_boot=400, rng=np.random.default_rng(0),
                         groups=runs).f1[0]  # fmt: skip
    assert runs_.value == events.value
    assert runs_.high - runs_.low > 1.5 * (events.high - events.low)


def test_weighted_auc_and_ap_equal_sklearn_with_sample_weights():
    rng = np.random.default_rng(0)
    n = 300
    positive = rng.random(n) < 0.4
    score = np.round(rng.random(n) * 0.7 + 0.3 * positive, 2)  # rounding makes ties
    weights = rng.integers(0, 4, size=(4, n)).astype(float)
    weights[0] = 1.0
    auc = weighted_roc_auc(score, positive, weights)
    ap = weighted_average_precision(score, positive, weights)
    for r in range(4):
        assert auc[r] == pytest.approx(
            skm.roc_auc_score(positive, score, sample_weight=weights[r]), abs=1e-12
        )
        assert ap[r] == pytest.approx(
            skm.average_precision_score(positive, score, sample_weight=weights[r]), abs=1e-12
        )
    # a resample without any positive has no AUC
    assert np.isnan(weighted_roc_auc(score, positive, (~positive)[None].astype(float)))[0]


def test_score_predictions_multiclass_run_also_scored_binary():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 2, 2, 1, 0, -1, -1])
    proba = rng.dirichlet([1, 1, 1], size=len(labels)).astype(np.float32)
    proba[np.arange(7), labels[:7]] += 1.0  # correct argmax on the labelled events
    proba /= proba.sum(axis=1, keepdims=True)
    out = score_predictions(
        proba,
        labels,
        task="multiclass",
        output_names=("proton", "carbon", "other"),
        n_boot=50,
        rng=np.random.default_rng(0),
    )
    assert set(out) == {"multiclass", "binary"}
    assert out["multiclass"].n_events == 7  # unlabelled (-1) excluded
    assert out["multiclass"].accuracy.value == 1.0
    b = out["binary"]
    assert b.class_names == ("proton", "rest")
    np.testing.assert_array_equal(b.confusion, [[3, 0], [0, 4]])
    assert b.roc_auc.value == 1.0 and b.curves is not None
    # a binary model is scored on the binary task only
    pb = np.column_stack([proba[:, 0], 1 - proba[:, 0]])
    only = score_predictions(
        pb,
        labels,
        task="binary",
        output_names=("proton", "rest"),
        n_boot=0,
        rng=np.random.default_rng(0),
    )
    assert set(only) == {"binary"}


def test_errors_by_channel_counts_what_each_channel_was_called():
    # events (run 1, ids 0..5): two protons, one carbon, three "other" of two channels
    labels = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 2, 1, 0, 2, 1])  # a lost proton, pile-up called proton and carbon
    proba = np.eye(3, dtype=np.float32)[pred]
    keys = np.column_stack([np.ones(6, int), np.arange(6)])
    chan = ["p_elastic", "p_elastic", "c12_elastic", "pileup", "noise", "pileup"]
    channels = {(1, i): c for i, c in enumerate(chan)}
    out = errors_by_channel(
        proba, labels, keys, channels, task="multiclass",
        output_names=("proton", "carbon", "other"), path=Path("t.h5"),
    )  # fmt: skip
    assert out["multiclass"]["pileup"] == {"n": 2, "wrong": 2, "called": {"proton": 1, "carbon": 1}}
    assert out["multiclass"]["p_elastic"] == {"n": 2, "wrong": 1, "called": {"other": 1}}
    assert out["multiclass"]["noise"]["wrong"] == 0
    # binary: only the pile-up called proton and the lost proton are wrong
    assert out["binary"]["pileup"] == {"n": 2, "wrong": 1, "called": {"proton": 1}}
    assert out["binary"]["p_elastic"]["called"] == {"rest": 1}
    with pytest.raises(InputError, match="event 5: run 1 has no simulated channel"):
        errors_by_channel(
            proba, labels, keys, {k: v for k, v in channels.items() if k != (1, 5)},
            task="binary", output_names=("proton", "carbon", "other"), path=Path("t.h5"),
        )  # fmt: skip


def test_figures_and_comparison_files(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.random(200) * 0.6 + 0.4 * (y == 0)
    m = task_metrics(y, (s < 0.5).astype(int), ["proton", "rest"], score=s, n_boot=100, rng=rng)
    paths = [
        plot_confusion(m.confusion, m.class_names, tmp_path / "cm.png"),
        plot_roc_pr(m.curves, tmp_path / "roc.png", roc_auc=str(m.roc_auc)),
        plot_learning_curves(
            [{"epoch": e, "train_loss": 1 / (e + 1), "val_macro_f1": 0.5} for e in range(4)],
            tmp_path / "lc.png",
        ),
    ]
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG"
    metrics = {
        "run": "runs/cnn_binary",
        "data": "test.h5",
        "task": "binary",
        "model": {"name": "cnn", "args": {"width": 32, "depth": 3}},
        "n_params": 123456,
        "n_labelled": 200,
        "tasks": {"binary": m.to_dict()},
    }
    row = compare_row(metrics)
    assert row["task"] == "binary" and row["macro_f1_fmt"] == "—"
    assert row["proton_f1"] == pytest.approx(m.f1[0].value, abs=1e-6)
    out = write_comparison([row], tmp_path / "cmp", title="t")
    header = out["csv"].read_text().splitlines()[0].split(",")
    assert header[:7] == ["name", "run", "task", "model", "params", "data", "n_labelled"]
    assert "proton_f1_lo" in header
    row_md = "| cnn_binary | binary | cnn (width=32, depth=3) | 0.12 M |"
    assert row_md in out["markdown"].read_text()
    assert out["figure"].read_bytes()[:4] == b"\x89PNG"
    json.dumps(metrics)  # what evaluate writes must stay JSON-serialisable


def test_trees_have_no_parameter_count():
    """Tree nodes are buffers, not trainable parameters: no count, and "—" in the table."""
    from types import SimpleNamespace

    from attpc_classify.evaluate import count_parameters
    from attpc_classify.models.gbt import GBTClassifier

    trees = GBTClassifier(n_features=4, n_trees=3, max_nodes=7)
    assert sum(b.numel() for b in trees.buffers()) > 0
    assert count_parameters(SimpleNamespace(model=trees)) is None
    cnn_like = torch.nn.Linear(4, 3)
    assert count_parameters(SimpleNamespace(model=cnn_like)) == 15
    row = compare_row({"run": "runs/gbt", "data": "t.h5", "model": {"name": "gbt"}, "tasks": {}})
    assert row["params"] == "—" and "params_raw" not in row


def test_reliability_and_ece_by_hand():
    from attpc_classify.calibration import calibration, reliability

    # 4 events at confidence 0.9 (3 right), 2 at 0.3 (1 right): 2 of 15 bins used
    r = reliability(np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.3]), np.array([1, 1, 1, 0, 1, 0]))
    want = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(0.5 - 0.3)
    assert r["ece"] == pytest.approx(want)
    assert sum(r["count"]) == 6 and r["count"][13] == 4 and r["count"][4] == 2
    # perfectly calibrated: p(proton) = 1 for protons, 0 for the rest -> ECE 0
    proba = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
    cal = calibration(proba, np.array([0, 1, 2, -1]), ("proton", "carbon", "other"))
    assert cal["proton"]["ece"] == pytest.approx(0.0) and cal["top_label"]["ece"] == 0.0


def test_the_summary_says_when_too_few_runs_were_resampled() -> None:
    from attpc_classify.commands.evaluate import FEW_RUNS, summary_lines

    def first(n_runs: int) -> str:
        metrics = {"n_labelled": 300, "n_unlabelled": 0, "tasks": {},
                   "bootstrap": {"n_boot": 1000, "seed": 0, "resample": "runs",
                                 "n_runs": n_runs}}  # fmt: skip
        return summary_lines(metrics)[0]

    assert "(3 runs, too few for them to be trusted)" in first(3)
    assert first(FEW_RUNS).endswith(f"({FEW_RUNS} runs)")
