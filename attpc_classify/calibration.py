"""Calibration per domain: reliability diagrams and expected calibration error (ECE).

A probability is calibrated when, among events given p = 0.8, 80 % are of that class.
A model trained on one simulation is usually over-confident on another detector; the
ECE on each evaluated file says by how much. Equal-width bins (Guo et al. 2017)::

    ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|

Two views: ``top_label`` (confidence = the largest probability, correct = the argmax is
the true class) and ``proton`` (confidence = p(proton), "accuracy" = the fraction of true
protons), the second being the score a user cuts on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_BINS = 15


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Per-bin counts, mean confidence and observed frequency, and the ECE."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    # bin b holds (b / n, (b + 1) / n]; a confidence of 0 goes into the first bin
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        freq = np.where(count > 0, hit_sum / count, np.nan)
    n = max(int(count.sum()), 1)
    ece = float(np.nansum(count / n * np.abs(freq - mean_conf)))
    return {"ece": ece, "n_bins": n_bins, "count": count.tolist(),
            "confidence": [None if np.isnan(v) else float(v) for v in mean_conf],
            "frequency": [None if np.isnan(v) else float(v) for v in freq]}  # fmt: skip


def calibration(proba: np.ndarray, labels: np.ndarray, output_names: tuple[str, ...]) -> dict:
    """``top_label`` and ``proton`` reliability of ``proba`` (N, K) against 3-class
    ``labels`` (-1 = unknown, left out). For a binary model (outputs proton, rest) the
    top label is scored against proton vs rest."""
    known = labels >= 0
    proba, labels = proba[known], labels[known]
    proton = output_names.index("proton")
    is_proton = labels == 0  # class id 0 is proton in every image file (CLASS_NAMES)
    truth = np.where(is_proton, 0, 1) if len(output_names) == 2 else labels
    return {
        "top_label": reliability(proba.max(1), proba.argmax(1) == truth),
        "proton": reliability(proba[:, proton], is_proton),
    }


def plot_reliability(cal: dict, path: str | Path, *, title: str = "") -> Path:
    """Reliability diagrams (top label, p(proton)) side by side, ECE in the legend."""
    from attpc_classify.plots import figure, save

    fig, axes = figure(8.0, 3.6, ncols=2)
    for ax, (key, label) in zip(axes[0], (("top_label", "top-label confidence"),
                                       ("proton", "p(proton)")), strict=True):  # fmt: skip
        r = cal[key]
        edges = np.linspace(0, 1, r["n_bins"] + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        freq = np.array([np.nan if v is None else v for v in r["frequency"]])
        ax.bar(centres, np.nan_to_num(freq), width=1 / r["n_bins"], edgecolor="k", alpha=0.6,
               label=f"ECE {r['ece']:.3f}")  # fmt: skip
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        ax.set_xlabel(label)
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title("reliability" + (f" — {title}" if title else ""), fontsize=10)
    return save(fig, path)
