"""Figures (PNG) and tables (Markdown, CSV) for evaluations and comparisons.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``: no global state, no display needed, safe in threads and on cluster nodes.
Every writer takes the output path and returns it; files are written atomically.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attpc_classify.plots import figure, markdown_table, save
from data_prep.atomic import atomic_path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp name + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically, indented for people and diffs."""
    return write_text(path, json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------------------
# Evaluation figures
# --------------------------------------------------------------------------------------


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Confusion matrix: colour = fraction of the true class, text = count and fraction."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    fig, axes = figure(1.3 + 1.1 * k, 1.0 + 1.0 * k)
    ax = axes[0, 0]
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            colour = "white" if frac[i, j] > 0.6 else "black"
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{frac[i, j]:.1%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=9,
            )
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    return save(fig, path)


def plot_roc_pr(
    curves: dict,
    path: str | Path,
    *,
    roc_auc: str = "",
    average_precision: str = "",
    positive: str = "proton",
    title: str = "",
) -> Path:
    """ROC and precision-recall curves side by side (``curves`` from `TaskMetrics`).

    Drawn with their bootstrap 95 % bands (when computed), the PR curve of a classifier
    that guesses (the positive class's prevalence), and the operating point: where the
    run's decision rule (argmax or its proton threshold) puts the events.
    """
    fig, axes = figure(8.0, 3.6, ncols=2)
    roc_ax, pr_ax = axes[0]
    roc, pr = curves["roc"], curves["pr"]
    roc_ax.plot(roc["fpr"], roc["tpr"], lw=1.5, label=f"AUC {roc_auc}")
    pr_ax.step(pr["recall"], pr["precision"], where="post", lw=1.5, label=f"AP {average_precision}")
    band = {"alpha": 0.25, "lw": 0, "label": "95 % band"}
    if "band" in roc:
        rb = roc["band"]
        roc_ax.fill_between(rb["fpr"], rb["tpr_lo"], rb["tpr_hi"], **band)
    if "band" in pr:
        pb = pr["band"]
        pr_ax.fill_between(pb["recall"], pb["precision_lo"], pb["precision_hi"], **band)
    prevalence = curves.get("prevalence")
    if prevalence is not None:
        guess = f"guessing ({positive} fraction {prevalence:.2f})"
        pr_ax.axhline(prevalence, ls=":", c="grey", lw=1, label=guess)
    op = curves.get("operating_point")
    if op:
        roc_ax.plot(op["fpr"], op["tpr"], "o", c="C3", ms=5, label="decision rule")
        pr_ax.plot(op["recall"], op["precision"], "o", c="C3", ms=5, label="decision rule")
    roc_ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    roc_ax.set_xlabel(f"false {positive} rate")
    roc_ax.set_ylabel(f"true {positive} rate")
    roc_ax.set_title("ROC" + (f" — {title}" if title else ""), fontsize=10)
    roc_ax.legend(loc="lower right", fontsize=8)
    pr_ax.set_xlabel(f"{positive} recall")
    pr_ax.set_ylabel(f"{positive} precision")
    pr_ax.set_title("precision-recall", fontsize=10)
    pr_ax.set_ylim(0.0, 1.02)
    pr_ax.legend(loc="lower left", fontsize=8)
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0.0, 1.0)
        ax.grid(alpha=0.3)
    return save(fig, path)


def read_metrics_jsonl(path: str | Path) -> list[dict]:
    """Records of a run's ``metrics.jsonl`` (one JSON object per epoch); [] if absent."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            records.append(json.loads(line))
    return records


# --------------------------------------------------------------------------------------
# Comparison table and figure
# --------------------------------------------------------------------------------------


def fmt_estimate(est: dict | None, digits: int = 3) -> str:
    """``{"value": .., "ci95": [lo, hi]}`` -> ``"0.981 [0.972, 0.989]"``; ``—`` if missing."""
    if not est or est.get("value") is None:
        return "—"
    lo, hi = est.get("ci95", [None, None])
    if lo is None or hi is None:
        return f"{est['value']:.{digits}f}"
    return f"{est['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def write_csv(rows: Sequence[dict], columns: Sequence[str], path: str | Path) -> Path:
    """Write ``rows`` (dicts) with the given columns as CSV, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_compare(
    names: Sequence[str],
    series: dict[str, Sequence[dict | None]],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Point estimates with 95 % interval whiskers: one group per run, one marker per metric.

    Markers, not bars: a bar's length stands for its value from zero, so a zoomed axis
    would exaggerate differences; markers on a zoomed axis labelled as such do not.

    Parameters
    ----------
    names
        Run labels (x axis).
    series
        Metric label -> one estimate dict (``{"value", "ci95"}``) or None per run.
    """
    n_runs, n_series = len(names), len(series)
    fig, axes = figure(max(4.5, 1.2 + 1.3 * n_runs), 3.6)
    ax = axes[0, 0]
    width = 0.8 / max(1, n_series)
    x = np.arange(n_runs)
    lowest = 1.0
    for s, (label, ests) in enumerate(series.items()):
        vals = np.array([np.nan if not e or e.get("value") is None else e["value"] for e in ests])
        lo = np.array([np.nan if not e or e["ci95"][0] is None else e["ci95"][0] for e in ests])
        hi = np.array([np.nan if not e or e["ci95"][1] is None else e["ci95"][1] for e in ests])
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        pos = x - 0.4 + width * (s + 0.5)
        ax.errorbar(pos, vals, yerr=err, fmt="o", ms=5, capsize=3, label=label)
        for p, v, h in zip(pos, vals, hi, strict=True):
            if np.isfinite(v):  # above the error bar, where it cannot hide it
                top = h if np.isfinite(h) else v
                ax.text(p, top + 0.004, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
        if np.isfinite(lo).any():
            lowest = min(lowest, float(np.nanmin(lo)))
        elif np.isfinite(vals).any():
            lowest = min(lowest, float(np.nanmin(vals)))
    ax.set_xticks(x, names, rotation=15, ha="right", fontsize=8)
    # Zoom on the interesting range, but never hide a bar's base entirely.
    bottom = max(0.0, min(0.9, lowest - 0.05))
    ax.set_ylim(bottom, 1.03)
    ax.set_ylabel(
        "score, 95 % bootstrap interval" + (f"\n(axis from {bottom:.2f})" if bottom else "")
    )
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    # below the axes: inside, it would cover bars
    fig.legend(fontsize=8, loc="outside lower center", ncols=max(1, n_series), frameon=False)
    return save(fig, path)


# --------------------------------------------------------------------------------------
# Comparing runs (binary and 3-class side by side)
# --------------------------------------------------------------------------------------

#: (key, header) of the Markdown comparison table
COMPARE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "run"),
    ("task", "trained on"),
    ("model", "model"),
    ("params", "params"),
    ("data", "evaluated on"),
    ("n_labelled", "events"),
    ("proton_f1_fmt", "proton F1 (binary)"),
    ("roc_auc_fmt", "proton ROC AUC"),
    ("binary_accuracy_fmt", "accuracy (binary)"),
    ("macro_f1_fmt", "macro-F1 (3-class)"),
    ("accuracy_fmt", "accuracy (3-class)"),
)

_CSV_METRICS = ("proton_f1", "roc_auc", "binary_accuracy", "macro_f1", "accuracy")
#: columns of the comparison CSV: plain numbers, each with its interval bounds
COMPARE_CSV_COLUMNS: tuple[str, ...] = (
    "name",
    "run",
    "task",
    "model",
    "params",
    "data",
    "n_labelled",
    *[f"{m}{s}" for m in _CSV_METRICS for s in ("", "_lo", "_hi")],
)


def model_label(model: dict | str | None) -> str:
    """Short model description from a run's model record (name plus key sizes)."""
    if not isinstance(model, dict):
        return str(model or "?")
    name = str(model.get("name") or "?")
    args = model.get("args") if isinstance(model.get("args"), dict) else model
    if name == "timm_cnn" and "timm_name" in args:
        return f"timm {args['timm_name']}"
    keys = {"embed_dim": "width", "width": "width", "depth": "depth", "patch_size": "patch"}
    sizes = [f"{short}={args[k]}" for k, short in keys.items() if k in args]
    return name + (f" ({', '.join(sizes)})" if sizes else "")


def compare_row(metrics: dict, *, name: str | None = None) -> dict:
    """One comparison row (formatted and raw values) from an evaluation's metrics.json."""
    tasks = metrics.get("tasks", {})
    binary, multi = tasks.get("binary"), tasks.get("multiclass")
    picks = {
        "proton_f1": binary["per_class"]["proton"]["f1"] if binary else None,
        "roc_auc": binary.get("roc_auc") if binary else None,
        "binary_accuracy": binary["accuracy"] if binary else None,
        "macro_f1": multi["macro_f1"] if multi else None,
        "accuracy": multi["accuracy"] if multi else None,
    }
    params = metrics.get("n_params")
    row = {
        "name": name or Path(metrics["run"]).name,
        "run": metrics["run"],
        "task": "3-class" if metrics.get("task") == "multiclass" else "binary",
        "model": model_label(metrics.get("model")),
        "params": "—" if params is None else params,
        "data": Path(metrics["data"]).name,
        "n_labelled": metrics.get("n_labelled", ""),
        "estimates": picks,
    }
    for key, est in picks.items():
        row[f"{key}_fmt"] = fmt_estimate(est)
        value = None if not est else est.get("value")
        lo, hi = (None, None) if not est else est.get("ci95", [None, None])
        row[key], row[f"{key}_lo"], row[f"{key}_hi"] = value, lo, hi
    if isinstance(params, int):
        row["params"] = f"{params / 1e6:.2f} M" if params >= 1e5 else f"{params / 1e3:.1f} k"
        row["params_raw"] = params
    return row


def _evaluated_on(rows: Sequence[dict]) -> str:
    """``evaluated on test.h5, 4,000 labelled events`` (or the list when runs differ)."""
    pairs = sorted({(str(r.get("data", "")), r.get("n_labelled", "")) for r in rows})
    shown = ", ".join(
        f"{data} ({n:,} labelled events)" if isinstance(n, int) else data for data, n in pairs
    )
    return f"evaluated on {shown}" if shown else ""


def write_comparison(rows: Sequence[dict], out_dir: str | Path, *, title: str = "") -> dict:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png`` into ``out_dir``.

    Returns ``{"markdown": path, "csv": path, "figure": path, "table": markdown text}``.
    """
    out_dir = Path(out_dir)
    table = markdown_table(
        [h for _, h in COMPARE_COLUMNS], [[r.get(k, "") for k, _ in COMPARE_COLUMNS] for r in rows]
    )
    note = (
        "Values: point estimate [bootstrap 95 % interval]. Binary columns of a 3-class run "
        "score it as proton vs rest (score p(proton); predicted proton = 3-class argmax is "
        "proton).\n"
    )
    md = (f"# {title}\n\n" if title else "") + table + "\n" + note
    csv_rows = [{**r, "params": r.get("params_raw", "")} for r in rows]
    paths = {
        "markdown": write_text(out_dir / "compare.md", md),
        "csv": write_csv(csv_rows, COMPARE_CSV_COLUMNS, out_dir / "compare.csv"),
        "figure": plot_compare(
            [r["name"] for r in rows],
            {
                "proton F1 (binary)": [r["estimates"]["proton_f1"] for r in rows],
                "macro-F1 (3-class)": [r["estimates"]["macro_f1"] for r in rows],
            },
            out_dir / "compare.png",
            title="\n".join(t for t in (title, _evaluated_on(rows)) if t),
        ),
    }
    return {**paths, "table": table}
