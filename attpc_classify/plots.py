"""Figure and table helpers shared by every report: training, evaluation, comparison,
the demo and the transfer benchmark.

Figures are `matplotlib.figure.Figure` objects on the Agg canvas, never ``pyplot``: no
global state, no display, no process-wide backend switch, safe in threads and on cluster
nodes. Every figure is written atomically (`data_prep.atomic.atomic_path`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.atomic import atomic_path


def figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, dpi: int = 110):
    """A constrained-layout Agg figure and its ``(nrows, ncols)`` array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.asarray(fig.subplots(nrows, ncols, squeeze=False))


def save(fig, path: str | Path, *, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, PNG by default), atomically;
    ``dpi`` None keeps the figure's own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi or "figure")
    return path


def plot_learning_curves(records: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Loss (train, validation) and validation macro-F1 / accuracy per epoch.

    ``records`` are a run's ``metrics.jsonl`` rows (``epoch``, ``train_loss``,
    ``val_loss``, ``val_macro_f1``, ``val_accuracy``; missing or None values are skipped).
    """
    fig, axes = figure(8.0, 3.4, ncols=2)
    loss_ax, score_ax = axes[0]

    def series(key: str) -> tuple[list, list]:
        pts = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        x, y = series(key)
        if x:
            loss_ax.plot(x, y, marker="o", ms=3, label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("loss" + (f" — {title}" if title else ""), fontsize=10)
    for key, label in (("val_macro_f1", "val macro-F1"), ("val_accuracy", "val accuracy")):
        x, y = series(key)
        if x:
            score_ax.plot(x, y, marker="o", ms=3, label=label)
    score_ax.set_xlabel("epoch")
    score_ax.set_ylim(0.0, 1.02)
    score_ax.set_title("validation", fontsize=10)
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return save(fig, path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (cells through `str`), ending with a newline.

    Examples
    --------
    >>> print(markdown_table(["stage", "seconds"], [["train", 1.5]]), end="")
    | stage | seconds |
    |---|---|
    | train | 1.5 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
