"""Evaluation: classification metrics with bootstrap 95 % intervals, per run and data set.

``attpc-classify evaluate RUN --data FILE`` calls `evaluate_run`, which writes
``RUN/eval/<data stem>/metrics.json`` and PNG figures. Each evaluation records the data's
content hash (`data_fingerprint`) and its bootstrap settings; a same-stem file with other
content goes to ``RUN/eval/<stem>-<hash8>/``, and `compare_runs` reuses an evaluation only
when data content, bootstrap settings and decision rule all match.

Point estimates come from scikit-learn. The bootstrap does not call scikit-learn once per
resample (1,000 calls x several metrics is seconds to minutes): it draws one resample
index matrix, turns it into per-event weights ``W`` (how often each event was drawn), and
computes every metric of every resample at once from weighted counts:

* confusion matrices: ``W @ one_hot(true * K + pred)``, one matrix product;
* ROC AUC and average precision: events sorted once by score, tied scores grouped, then
  cumulative weighted positive / negative counts along the sorted axis.

With all weights equal to one these are exactly scikit-learn's formulas (the tests check
this, also with random integer weights against scikit-learn's ``sample_weight``).
Intervals are percentile intervals (2.5 %, 97.5 %) over the resamples, and all metrics
share the same resamples, so they are paired.

**What is resampled** (``resample``). By default the events, as if each were drawn on
its own. The events of one run are not: they share its detector (gain, threshold, noisy
and dead pads, point formation), so a run-level quantity, the proton F1 a model reaches
on a run like this one, varies from run to run more than events drawn alone suggest.
``resample="runs"`` draws whole runs (the image file's run numbers) with replacement, a
cluster bootstrap: an event's weight is how often its run was drawn. The interval then
covers what the events of a run share, and wants many runs (with under ~10 it is rough).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from sklearn import metrics as skm

from attpc_classify.decision import decide
from attpc_classify.metrics import scores_from_confusion
from attpc_classify.plots import plot_learning_curves
from attpc_classify.report import (
    compare_row,
    plot_confusion,
    plot_roc_pr,
    read_metrics_jsonl,
    write_comparison,
    write_json,
)
from data_prep.atomic import check_writable
from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES, binary_labels
from data_prep.interrupt import check_interrupt

if TYPE_CHECKING:  # loading torch only when a run is evaluated
    from attpc_classify.checkpoint import RunInfo, Trained

#: Resamples x events held in memory at once by the bootstrap (float64: 32 MB).
_CHUNK_CELLS = 1 << 22
#: what the bootstrap may draw (`evaluate_run`'s ``resample``)
RESAMPLE = ("events", "runs")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95 % interval (``nan`` when undefined)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"value": _num(self.value), "ci95": [_num(self.low), _num(self.high)]}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _num(x: float) -> float | None:
    # JSON has no NaN: undefined metrics (e.g. AUC with one class present) become null.
    return None if not np.isfinite(x) else round(float(x), 6)


# --------------------------------------------------------------------------------------
# Weighted ROC AUC / average precision (vectorised over a leading resample axis)
# --------------------------------------------------------------------------------------


def _grouped_counts(
    score: np.ndarray, positive: np.ndarray, weights: np.ndarray, *, descending: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positive / negative counts per group of tied scores, in score order.

    ``weights`` is ``(B, N)``; returns two ``(B, G)`` arrays for G distinct scores.
    """
    order = np.argsort(-score if descending else score, kind="mergesort")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    return pos, neg


def weighted_roc_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (``(B, N)``); ``nan`` where a class is absent.

    AUC = P(score of a positive > score of a negative) + 0.5 P(tie), counted with weights.
    """
    pos, neg = _grouped_counts(score, positive, weights, descending=False)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def weighted_average_precision(
    score: np.ndarray, positive: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision (scikit-learn's step sum) for each row of ``weights``."""
    pos, neg = _grouped_counts(score, positive, weights, descending=True)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / n_pos
    d_recall = np.diff(recall, axis=1, prepend=0.0)
    ap = (d_recall * precision).sum(axis=1)
    return np.where(n_pos[:, 0] > 0, ap, np.nan)


# --------------------------------------------------------------------------------------
# Task-level results
# --------------------------------------------------------------------------------------


@dataclass
class TaskMetrics:
    """Everything measured for one task (3-class or proton-vs-rest) on one data set."""

    class_names: tuple[str, ...]
    confusion: np.ndarray  # (K, K) counts, rows true
    support: np.ndarray  # (K,) true events per class
    precision: list[Estimate]
    recall: list[Estimate]
    f1: list[Estimate]
    macro_f1: Estimate
    accuracy: Estimate
    n_events: int
    roc_auc: Estimate | None = None  # binary only: positive = class 0 (proton)
    average_precision: Estimate | None = None
    curves: dict | None = None  # binary only: roc (fpr, tpr) and pr (recall, precision)

    def to_dict(self, *, with_curves: bool = False) -> dict:
        per_class = {
            name: {
                "precision": self.precision[k].to_dict(),
                "recall": self.recall[k].to_dict(),
                "f1": self.f1[k].to_dict(),
                "support": int(self.support[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        out: dict = {
            "class_names": list(self.class_names),
            "n_events": self.n_events,
            "accuracy": self.accuracy.to_dict(),
            "macro_f1": self.macro_f1.to_dict(),
            "per_class": per_class,
            "confusion": self.confusion.astype(int).tolist(),
        }
        if self.roc_auc is not None:
            out["positive_class"] = self.class_names[0]
            out["roc_auc"] = self.roc_auc.to_dict()
            out["average_precision"] = self.average_precision.to_dict()
        if with_curves and self.curves is not None:
            out["curves"] = self.curves
        return out


def _interval(point: float, samples: np.ndarray) -> Estimate:
    samples = samples[np.isfinite(samples)]
    if not np.isfinite(point) or samples.size == 0:
        return Estimate(float(point), float("nan"), float("nan"))
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(float(point), float(low), float(high))


def _downsample_curve(x: np.ndarray, y: np.ndarray, n: int = 400) -> tuple[list, list]:
    # Curves over 10k events have 10k points; a few hundred draw the same figure.
    if len(x) > n:
        keep = np.unique(np.r_[np.linspace(0, len(x) - 1, n).astype(int), len(x) - 1])
        x, y = x[keep], y[keep]
    return np.round(x, 6).tolist(), np.round(y, 6).tolist()


#: false-positive rate / recall grid of the curves' bootstrap 95 % bands
BAND_GRID = np.linspace(0.0, 1.0, 51)


def _operating_point(positive: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """False/true positive rate, recall and precision of the decision actually made."""
    tp = float((called & positive).sum())
    fp = float((called & ~positive).sum())
    return {
        "fpr": fp / max(1.0, float((~positive).sum())),
        "tpr": tp / max(1.0, float(positive.sum())),
        "recall": tp / max(1.0, float(positive.sum())),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
    }


def _curve_rows(
    score: np.ndarray, positive: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per resample (row of ``weights``): TPR at the FPRs of `BAND_GRID`, and the
    interpolated precision (best precision at this recall or more) at its recalls."""
    order = np.argsort(-score, kind="stable")
    s, pos = score[order], positive[order]
    w = weights[:, order]
    # last index of each group of tied scores: a threshold takes the whole group
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(w * pos, axis=1)[:, ends]
    fp = np.cumsum(w * ~pos, axis=1)[:, ends]
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / n_pos, fp / n_neg
        precision = tp / (tp + fp)
    roc = np.full((len(w), len(BAND_GRID)), np.nan)
    pr = np.full((len(w), len(BAND_GRID)), np.nan)
    for r in range(len(w)):
        if n_pos[r, 0] == 0 or n_neg[r, 0] == 0:
            continue  # a resample without one class has no curve
        roc[r] = np.interp(BAND_GRID, np.r_[0.0, fpr[r]], np.r_[0.0, tpr[r]])
        prec = np.nan_to_num(precision[r])
        envelope = np.maximum.accumulate(prec[::-1])[::-1]
        at = np.searchsorted(tpr[r], BAND_GRID, side="left")
        pr[r] = np.where(at < len(prec), envelope[np.minimum(at, len(prec) - 1)], np.nan)
    return roc, pr


def task_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    *,
    score: np.ndarray | None = None,
    n_boot: int = 1000,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> TaskMetrics:
    """Metrics of one task with bootstrap 95 % intervals.

    Parameters
    ----------
    y_true, y_pred
        ``(N,)`` class ids in ``range(K)`` (unlabelled events already removed).
    class_names
        The K class names, in id order.
    score
        For a binary task: ``(N,)`` score of class 0 (higher = more likely class 0), for
        ROC / PR curves, ROC AUC and average precision. ``None`` skips those.
    n_boot
        Bootstrap resamples (0 = point estimates only, intervals ``nan``).
    rng
        Generator for the resample indices (seed it for reproducible intervals).
    groups
        ``(N,)`` group of each event (its run): resample whole groups (module docstring).

    Examples
    --------
    >>> m = task_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b"],
    ...                  n_boot=200, rng=np.random.default_rng(0))
    >>> round(m.accuracy.value, 3)
    0.667
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(class_names)
    n = len(y_true)
    labels = list(range(k))
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels) if n else np.zeros((k, k), int)
    if n:
        prec, rec, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        acc = skm.accuracy_score(y_true, y_pred)
        macro = float(np.mean(f1))
    else:
        prec = rec = f1 = np.zeros(k)
        support = np.zeros(k, int)
        acc = macro = float("nan")

    positive = None if score is None else (y_true == 0)
    point_auc = point_ap = float("nan")
    curves = None
    if positive is not None and positive.any() and (~positive).any():
        point_auc = skm.roc_auc_score(positive, score)
        point_ap = skm.average_precision_score(positive, score)
        fpr, tpr, _ = skm.roc_curve(positive, score)
        pr_p, pr_r, _ = skm.precision_recall_curve(positive, score)
        curves = {
            "roc": dict(zip(("fpr", "tpr"), _downsample_curve(fpr, tpr), strict=True)),
            "pr": dict(zip(("recall", "precision"), _downsample_curve(pr_r, pr_p), strict=True)),
            # where a random classifier's PR curve lies, and where the decision rule sits
            "prevalence": float(positive.mean()),
            "operating_point": _operating_point(positive, y_pred == 0),
        }

    boot, bands = _bootstrap(
        y_true, y_pred, k, score if curves is not None else None, n_boot, rng, groups
    )
    for name, band in bands.items():
        curves[name]["band"] = band

    return TaskMetrics(
        class_names=tuple(class_names),
        confusion=np.asarray(cm),
        support=np.asarray(support),
        precision=[_interval(prec[c], boot["precision"][:, c]) for c in range(k)],
        recall=[_interval(rec[c], boot["recall"][:, c]) for c in range(k)],
        f1=[_interval(f1[c], boot["f1"][:, c]) for c in range(k)],
        macro_f1=_interval(macro, boot["macro_f1"]),
        accuracy=_interval(acc, boot["accuracy"]),
        n_events=n,
        roc_auc=None if score is None else _interval(point_auc, boot["auc"]),
        average_precision=None if score is None else _interval(point_ap, boot["ap"]),
        curves=curves,
    )


def _bootstrap(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    k: int,
    score: np.ndarray | None,
    n_boot: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Scores of ``n_boot`` resamples of the events, and the curves' 95 % bands.

    Each chunk of resamples is one index matrix turned into per-event weights; all their
    confusion matrices come from one matrix product, AUC and AP from weighted cumulative
    counts. ``score`` (binary task with both classes present) adds ``auc``, ``ap`` and the
    ROC / PR bands; otherwise those stay empty. ``groups`` (``(N,)``, e.g. run numbers):
    draw whole groups instead of events, each event weighted by its group's draws.
    """
    n = len(y_true)
    # the units drawn: events, or groups (each event then takes its group's count)
    unit_of = None if groups is None else np.unique(groups, return_inverse=True)[1]
    units = n if unit_of is None else int(unit_of.max()) + 1
    boot = {
        "precision": np.empty((0, k)),
        "recall": np.empty((0, k)),
        "f1": np.empty((0, k)),
        "macro_f1": np.empty(0),
        "accuracy": np.empty(0),
        "auc": np.empty(0),
        "ap": np.empty(0),
    }
    if n_boot <= 0 or n == 0:
        return boot, {}
    positive = y_true == 0
    parts: dict[str, list[np.ndarray]] = {key: [] for key in boot}
    band_parts: dict[str, list[np.ndarray]] = {"roc": [], "pr": []}
    one_hot = np.zeros((n, k * k))
    one_hot[np.arange(n), y_true * k + y_pred] = 1.0
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, units, size=(b, units))
        # weights[r, i] = how often event i (or its group) was drawn in resample r
        offsets = (np.arange(b) * units)[:, None]
        draws = np.bincount((idx + offsets).ravel(), minlength=b * units).reshape(b, units)
        weights = (draws if unit_of is None else draws[:, unit_of]).astype(np.float64)
        scores = scores_from_confusion((weights @ one_hot).reshape(b, k, k))
        for key in ("precision", "recall", "f1", "macro_f1", "accuracy"):
            parts[key].append(scores[key])
        if score is not None:
            parts["auc"].append(weighted_roc_auc(score, positive, weights))
            parts["ap"].append(weighted_average_precision(score, positive, weights))
            roc_rows, pr_rows = _curve_rows(score, positive, weights)
            band_parts["roc"].append(roc_rows)
            band_parts["pr"].append(pr_rows)
    boot = {key: np.concatenate(v) if v else boot[key] for key, v in parts.items()}
    bands = {}
    if score is not None:
        for name, axis, value in (("roc", "fpr", "tpr"), ("pr", "recall", "precision")):
            lo, hi = np.nanpercentile(np.concatenate(band_parts[name]), [2.5, 97.5], axis=0)
            bands[name] = {
                axis: BAND_GRID.tolist(),
                f"{value}_lo": np.round(lo, 5).tolist(),
                f"{value}_hi": np.round(hi, 5).tolist(),
            }
    return boot, bands


# --------------------------------------------------------------------------------------
# Evaluating a trained run on an image file
# --------------------------------------------------------------------------------------

#: Binary task names (the 3-class label -> proton vs rest, `data_prep.events.binary_labels`).
BINARY_NAMES = ("proton", "rest")


@dataclass
class EvalResult:
    """What `evaluate_run` wrote: the metrics dict (also in ``metrics.json``) and figures."""

    out_dir: Path
    metrics: dict
    figures: list[Path]

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.json"


def _predict_image_file(
    trained: Trained,
    path: Path,
    *,
    batch_size: int,
    precision: str,
    progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities ``(N, K)``, labels ``(N,)`` and ``(run, event_id)`` keys ``(N, 2)``
    for every event, streamed in batches."""
    kind = trained.info.input  # images | voxels | features
    with h5py.File(path, "r") as f:
        labels = f["label"][:].astype(np.int64)
        keys = np.stack([f["run"][:].astype(np.int64), f["event_id"][:].astype(np.int64)], 1)
        n = len(labels)
        k = len(trained.info.output_names)
        proba = np.zeros((n, k), dtype=np.float32)
        for start in range(0, n, batch_size):
            check_interrupt()
            sl = slice(start, min(n, start + batch_size))
            extra = {kind: f[kind][sl]} if kind != "images" else {}
            proba[sl] = trained.predict_proba(
                f["images"][sl], **extra, precision=precision, batch_size=batch_size
            )
            if progress is not None:
                progress(sl.stop - sl.start)
    return proba, labels, keys


def read_sim_channels(paths: list[str | Path]) -> dict[tuple[int, int], str]:
    """``(run, event) -> channel`` from the event tables of ``simulate``'s run files.

    A directory stands for every ``run_*.h5`` in it.
    """
    from data_prep.sim.runfile import read_run_info

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("run_*.h5")) if p.is_dir() else [p]
    if not files:
        raise InputError("no simulation run files (run_*.h5) found", path=paths[0])
    channels: dict[tuple[int, int], str] = {}
    for path in files:
        attrs, table = read_run_info(path)
        run = int(attrs["run"])
        for event, channel in zip(table["event"].tolist(), table["channel"].tolist(), strict=True):
            channels[(run, event)] = channel.decode()
    return channels


def task_predictions(
    proba: np.ndarray,
    labels: np.ndarray,
    *,
    task: str,
    output_names: tuple[str, ...],
    proton_threshold: float | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """``{task: (true labels, predicted labels, class names)}`` for the tasks a run is
    scored on: its own, and proton vs rest for a 3-class run, which predicts "proton"
    exactly when its 3-class prediction (the run's decision rule) is proton."""
    pred = decide(proba, output_names, proton_threshold)
    proton = output_names.index("proton")
    out = {}
    if task == "multiclass":
        out["multiclass"] = (labels, pred, tuple(output_names))
    out["binary"] = (binary_labels(labels), (pred != proton).astype(np.int64), BINARY_NAMES)
    return out


def errors_by_channel(
    proba: np.ndarray,
    labels: np.ndarray,
    keys: np.ndarray,
    channels: dict[tuple[int, int], str],
    *,
    task: str,
    output_names: tuple[str, ...],
    path: Path,
    proton_threshold: float | None = None,
) -> dict[str, dict[str, dict]]:
    """Per task and simulated channel: events, how many were wrong, and what they were called.

    This is what a physicist asks of a proton sample: which reactions leak into it (the
    class "other" mixes noise, alpha channels and pile-up). Predictions are those of
    `score_predictions`: the run's decision rule, and for the binary task "proton" exactly
    when the 3-class prediction is proton.

    Raises
    ------
    InputError
        An event of the image file has no channel in the run files given.
    """
    known = labels >= 0
    proba, labels, keys = proba[known], labels[known], keys[known]
    missing = [tuple(k) for k in keys.tolist() if tuple(k) not in channels]
    if missing:
        run, event = missing[0]
        raise InputError(
            f"run {run} has no simulated channel in the run files given "
            f"({len(missing)} events missing)",
            path=path,
            event=event,
        )
    chan = np.array([channels[tuple(k)] for k in keys.tolist()])
    tasks = task_predictions(
        proba, labels, task=task, output_names=output_names, proton_threshold=proton_threshold
    )
    out: dict[str, dict[str, dict]] = {}
    for name, (truth, guess, names) in tasks.items():
        rows = {}
        for c in sorted(set(chan.tolist())):
            sel = chan == c
            wrong = sel & (truth != guess)
            called = np.bincount(guess[wrong], minlength=len(names))
            rows[c] = {
                "n": int(sel.sum()),
                "wrong": int(wrong.sum()),
                "called": {names[i]: int(k) for i, k in enumerate(called) if k},
            }
        out[name] = rows
    return out


def score_predictions(
    proba: np.ndarray,
    labels: np.ndarray,
    *,
    task: str,
    output_names: tuple[str, ...] | list[str],
    class_names: tuple[str, ...] | list[str] = CLASS_NAMES,
    n_boot: int = 1000,
    rng: np.random.Generator,
    proton_threshold: float | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, TaskMetrics]:
    """Metrics of predictions on one or both tasks.

    Parameters
    ----------
    proba
        ``(N, K)`` model probabilities in ``output_names`` order.
    labels
        ``(N,)`` 3-class labels (ids into ``class_names``); -1 = unknown, excluded.
    task
        The model's task: ``"multiclass"`` (outputs = ``class_names``) or ``"binary"``
        (outputs = proton, rest).
    output_names, class_names
        Model outputs and the data's class names.
    n_boot, rng
        Bootstrap resamples and their generator.
    proton_threshold
        The run's decision rule (`attpc_classify.decision.decide`); None = argmax.
    groups
        ``(N,)`` run of each event: the bootstrap draws whole runs (`task_metrics`).

    Returns
    -------
    dict
        ``{"binary": TaskMetrics}`` for a binary model; ``{"multiclass": ..., "binary": ...}``
        for a 3-class model, whose binary score is p(proton) and whose binary prediction is
        "proton" exactly when its 3-class prediction is proton (the ``label`` a user of
        ``classify`` sees).
    """
    known = labels >= 0
    proba, labels = proba[known], labels[known]
    groups = None if groups is None else np.asarray(groups)[known]
    output_names = tuple(output_names)
    if "proton" not in output_names:
        raise InputError(f"model outputs {list(output_names)} have no 'proton' class")
    if task == "multiclass" and tuple(class_names) != output_names:
        raise InputError(
            f"data classes {list(class_names)} differ from model outputs {list(output_names)}"
        )
    p_proton = proba[:, output_names.index("proton")]
    tasks = task_predictions(
        proba, labels, task=task, output_names=output_names, proton_threshold=proton_threshold
    )
    # Every task is scored on the same resamples (one seed, a fresh generator per task):
    # the proton F1 of the 3-class table and of the binary one are the same number and
    # then get the same interval, and differences between tasks are paired.
    seed = int(rng.integers(2**63))
    return {
        name: task_metrics(
            truth,
            pred,
            names,
            n_boot=n_boot,
            rng=np.random.default_rng(seed),
            score=p_proton if name == "binary" else None,
            groups=groups,
        )
        for name, (truth, pred, names) in tasks.items()
    }


def count_parameters(trained: Trained) -> int | None:
    """Trainable parameter count of a loaded run's model, if it has any (trees, whose
    nodes are buffers, have none: None, not a misleading 0)."""
    model = getattr(trained, "model", None)
    if model is None or not hasattr(model, "parameters"):
        return None
    return int(sum(p.numel() for p in model.parameters())) or None


def evaluate_run(
    run: str | Path | Trained,
    data: str | Path,
    *,
    out_dir: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    resample: str = "events",
    batch_size: int = 256,
    precision: str = "auto",
    figures: bool = True,
    progress: Callable[[int], None] | None = None,
    sim_files: list[str | Path] | None = None,
) -> EvalResult:
    """Evaluate a trained run on a labelled image file; write metrics.json and figures.

    Parameters
    ----------
    run
        A run directory (``train`` output) or an already loaded `Trained`.
    data
        An image file made with the run's preprocessing (checked before any work).
    out_dir
        Where to write; default ``RUN/eval/<data file stem>/``.
    n_boot
        Bootstrap resamples for the 95 % intervals (0 = none).
    seed
        Seed of the bootstrap generator: same seed, same intervals.
    resample
        What the bootstrap draws: ``"events"`` or ``"runs"`` (whole runs, by the image
        file's run numbers; module docstring).
    batch_size, precision
        Inference batch size and precision (``"auto"`` = bf16 where the CPU has native bf16).
    figures
        Also draw the PNGs (confusion matrices, ROC/PR, learning curves).
    progress
        Called with the number of newly scored events.
    sim_files
        ``simulate`` run files (or their directory) that the image file was made from:
        adds ``by_channel``, the errors per simulated reaction channel.

    Returns
    -------
    EvalResult
        ``metrics`` (the JSON written), output directory and figure paths.

    Examples
    --------
    >>> res = evaluate_run("runs/cnn", "data/test.h5", n_boot=1000)  # doctest: +SKIP
    >>> res.metrics["tasks"]["binary"]["per_class"]["proton"]["f1"]  # doctest: +SKIP
    {'value': 0.991, 'ci95': [0.986, 0.995]}
    """
    import time

    data = Path(data)
    trained, file_info = check_evaluation(
        run, data, n_boot=n_boot, batch_size=batch_size, resample=resample
    )
    info = trained.info
    channels = read_sim_channels(sim_files) if sim_files else None
    run_dir = Path(info.path)
    fingerprint = data_fingerprint(data)
    out_dir = Path(out_dir) if out_dir is not None else default_eval_dir(run_dir, data, fingerprint)
    check_writable(out_dir, directory=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    proba, labels, keys = _predict_image_file(
        trained, data, batch_size=batch_size, precision=precision, progress=progress
    )
    infer_s = time.perf_counter() - start
    n_unlabelled = int((labels < 0).sum())
    tasks, cal, by_channel = _score(
        proba,
        labels,
        keys,
        info,
        class_names=tuple(file_info["class_names"]),
        n_boot=n_boot,
        seed=seed,
        channels=channels,
        data=data,
        groups=keys[:, 0] if resample == "runs" else None,
    )
    fig_paths = _evaluation_figures(tasks, cal, run_dir, data, out_dir) if figures else []

    metrics = {
        "run": str(run_dir),
        "data": str(data),
        "data_sha256": fingerprint,
        "model": info.model,
        "n_params": count_parameters(trained),
        "task": info.task,
        "input": info.input,
        "output_names": list(info.output_names),
        "decision": info.decision or {"rule": "argmax"},
        "epoch": info.epoch,
        "git_sha": info.git_sha,
        "n_events": len(labels),
        "n_labelled": len(labels) - n_unlabelled,
        "n_unlabelled": n_unlabelled,
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "interval": "percentile 95 %",
            "resample": resample,
            "n_runs": len(np.unique(keys[labels >= 0, 0])),
        },
        "precision": precision,
        "inference_events_per_s": round(len(labels) / infer_s, 1) if infer_s > 0 else None,
        "tasks": {t: m.to_dict(with_curves=True) for t, m in tasks.items()},
        **({"calibration": cal} if cal is not None else {}),
        **({"by_channel": by_channel} if by_channel is not None else {}),
        "figures": [p.name for p in fig_paths],
    }
    write_json(out_dir / "metrics.json", metrics)
    return EvalResult(out_dir=out_dir, metrics=metrics, figures=fig_paths)


def check_evaluation(
    run: str | Path | Trained,
    data: Path,
    *,
    n_boot: int,
    batch_size: int,
    resample: str = "events",
) -> tuple[Trained, dict]:
    """Refuse, before any work, settings, runs and image files that cannot be scored;
    the loaded run and the image file's attributes."""
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import check_image_file

    if n_boot < 0:
        raise InputError(f"n_boot must be >= 0, got {n_boot}")
    if resample not in RESAMPLE:
        raise InputError(f"resample must be one of {RESAMPLE}, got {resample!r}")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    trained = load_run(run) if isinstance(run, (str, Path)) else run
    if not data.exists():
        raise InputError("data file not found", path=data)
    file_info = check_image_file(data, trained)
    with h5py.File(data, "r") as f:
        labelled = f["label"][()] >= 0
        if not labelled.any():
            raise InputError(
                "no labelled events (every label is -1): nothing to score; "
                "`classify` gives predictions for unlabelled data",
                path=data,
            )
        n_runs = len(np.unique(f["run"][()][labelled]))
    if resample == "runs" and n_boot > 0 and n_runs < 2:
        raise InputError(
            "resample runs draws whole runs, and the labelled events are of one run: "
            "its interval would have no width; resample events instead",
            path=data,
        )
    return trained, file_info


def _score(
    proba: np.ndarray,
    labels: np.ndarray,
    keys: np.ndarray,
    info: RunInfo,
    *,
    class_names: tuple[str, ...],
    n_boot: int,
    seed: int,
    channels: dict[tuple[int, int], str] | None,
    data: Path,
    groups: np.ndarray | None = None,
) -> tuple[dict[str, TaskMetrics], dict | None, dict | None]:
    """Metrics per task (the labelled events, with bootstrap intervals), calibration, and
    the errors per simulated channel (when ``channels`` are given)."""
    from attpc_classify.calibration import calibration

    if not (labels >= 0).any():
        return {}, None, None
    tasks = score_predictions(
        proba,
        labels,
        task=info.task,
        output_names=info.output_names,
        class_names=class_names,
        n_boot=n_boot,
        rng=np.random.default_rng(seed),
        proton_threshold=info.proton_threshold,
        groups=groups,
    )
    cal = calibration(proba, labels, tuple(info.output_names)) if tasks else None
    by_channel = None
    if channels is not None and tasks:
        by_channel = errors_by_channel(
            proba,
            labels,
            keys,
            channels,
            task=info.task,
            output_names=tuple(info.output_names),
            path=data,
            proton_threshold=info.proton_threshold,
        )
    return tasks, cal, by_channel


def _evaluation_figures(
    tasks: dict[str, TaskMetrics], cal: dict | None, run_dir: Path, data: Path, out_dir: Path
) -> list[Path]:
    """Confusion matrices, ROC/PR (binary), reliability, the run's learning curves."""
    from attpc_classify.calibration import plot_reliability

    name = run_dir.name
    paths = [
        plot_confusion(
            m.confusion,
            m.class_names,
            out_dir / f"confusion_{task}.png",
            title=f"{name} — {task} on {data.name}",
        )
        for task, m in tasks.items()
    ]
    binary = tasks.get("binary")
    if binary is not None and binary.curves is not None:
        paths.append(
            plot_roc_pr(
                binary.curves,
                out_dir / "roc_pr.png",
                roc_auc=str(binary.roc_auc),
                average_precision=str(binary.average_precision),
                title=name,
            )
        )
    if cal is not None:
        paths.append(plot_reliability(cal, out_dir / "reliability.png", title=data.name))
    records = read_metrics_jsonl(run_dir / "metrics.jsonl")
    if records:
        paths.append(plot_learning_curves(records, out_dir / "learning_curves.png", title=name))
    return paths


def data_fingerprint(path: str | Path) -> str:
    """sha256 of an image file's content: run, event ids, labels, images, features (the
    trees' inputs) and settings.

    Two files of the same name with other events (or other images or features of the
    same events) differ; a byte-different rewrite of the same content (new timestamps)
    does not.
    """
    import hashlib

    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        h.update(str(f.attrs.get("image_config", "")).encode())
        h.update(str(f.attrs.get("class_names", "")).encode())
        for name in ("run", "event_id", "label", "images", "features"):
            if name == "features" and name not in f:  # written only with a feature set
                continue
            dset = f[name]
            h.update(f"{name}{dset.shape}{dset.dtype}".encode())
            step = max(1, (1 << 24) // max(1, dset[:1].nbytes))  # ~16 MB per read
            for start in range(0, dset.shape[0], step):
                h.update(np.ascontiguousarray(dset[start : start + step]).tobytes())
    return h.hexdigest()


def default_eval_dir(run_dir: str | Path, data: str | Path, fingerprint: str) -> Path:
    """``RUN/eval/<stem>/``, unless that holds an evaluation of other content: then
    ``RUN/eval/<stem>-<hash8>/`` (the same stem never overwrites another file's results)."""
    root = Path(run_dir) / "eval"
    plain = root / Path(data).stem
    try:
        old = json.loads((plain / "metrics.json").read_text())
    except (OSError, ValueError):
        return plain
    if old.get("data_sha256") == fingerprint:
        return plain
    return root / f"{Path(data).stem}-{fingerprint[:8]}"


def find_eval(
    run_dir: str | Path,
    *,
    fingerprint: str | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    decision: dict | None = None,
) -> Path | None:
    """``metrics.json`` of a run's evaluation on the data with ``fingerprint``, made
    with these bootstrap settings (events resampled, as `compare_runs` reports them) and
    decision rule; without a fingerprint, the newest."""
    found = sorted((Path(run_dir) / "eval").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    if fingerprint is None:
        return found[-1] if found else None
    want_decision = decision or {"rule": "argmax"}
    for path in reversed(found):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        boot = m.get("bootstrap", {})
        if (
            m.get("data_sha256") == fingerprint
            and boot.get("n_boot") == n_boot
            and boot.get("seed") == seed
            and boot.get("resample", "events") == "events"  # compare's intervals
            and m.get("decision") == want_decision
        ):
            return path
    return None


def compare_runs(
    runs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    data: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "",
    progress=None,
) -> dict:
    """Table and figure of several runs' evaluations, binary and 3-class side by side.

    Parameters
    ----------
    runs
        Run directories. With ``data``, each run's evaluation of exactly that content
        (`data_fingerprint`) with these ``n_boot``/``seed`` and the run's current decision
        rule is reused, else the run is evaluated on ``data`` here. Without ``data``, each
        run's newest evaluation is used; a run without one is an error, raised before any
        work.
    out_dir
        Where ``compare.md``, ``compare.csv`` and ``compare.png`` go.
    data
        Image file to evaluate on (and to pick evaluations by).
    n_boot, seed
        Bootstrap settings.

    Returns
    -------
    dict
        Paths written (``markdown``, ``csv``, ``figure``), the Markdown table and rows.
    """
    from attpc_classify.checkpoint import read_info

    if not runs:
        raise InputError("no runs given")
    for run in runs:
        if not Path(run).is_dir():
            raise InputError("run directory not found", path=run)
    check_writable(out_dir, directory=True)
    fingerprint = None
    if data is not None:
        if not Path(data).exists():
            raise InputError("data file not found", path=data)
        fingerprint = data_fingerprint(data)
    plan: list[tuple[Path, Path | None]] = []
    for run in map(Path, runs):
        decision = read_info(run)[0].decision if fingerprint else None
        found = find_eval(run, fingerprint=fingerprint, n_boot=n_boot, seed=seed, decision=decision)
        if found is None and data is None:
            raise InputError("run has no evaluation yet: pass --data FILE to evaluate it", path=run)
        plan.append((run, found))

    rows = []
    names = [run.name for run, _ in plan]
    for run, found in plan:
        if found is None:
            metrics = evaluate_run(run, data, n_boot=n_boot, seed=seed, progress=progress).metrics
        else:
            metrics = json.loads(found.read_text())
        # Same directory name twice (runs/a/cnn, runs/b/cnn): use the parent too.
        name = run.name if names.count(run.name) == 1 else f"{run.parent.name}/{run.name}"
        rows.append(compare_row(metrics, name=name))
    written = write_comparison(rows, out_dir, title=title)
    return {**written, "rows": rows}
