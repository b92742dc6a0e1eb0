"""A run's class mix without its labels: predicted fractions against EM prior correction.

    .venv/bin/python scripts/prior_shift.py RUN LABELLED_IMAGE_FILE [...]

For each labelled file made with the run's preprocessing: the true class mix, the mix the
run's argmax calls give, and the mix of Saerens, Latinne & Decaestecker (2002): EM on the
target probabilities, p'(k|x) ~ p(k|x) pi_run(k) / pi_train(k), pi_run = mean p'(k|x),
from pi_train (uniform for a class-balanced run, else the training file's class
fractions); then proton F1 / macro-F1 of the argmax calls before and after the
correction (docs/sim-to-real.md, "Choosing the proton cut"). The labels only score.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from attpc_classify.checkpoint import load_run
from attpc_classify.data import task_labels
from attpc_classify.metrics import f1_scores
from attpc_classify.trees_adapt import source_config
from data_prep.imagefile import read_images

HEADER = ("| model | test set | true mix (p / c / o) | argmax calls | EM estimate | "
          "proton F1 / macro-F1: argmax | after EM correction |\n"
          "|---|---|---|---|---|---|---|")  # fmt: skip


def train_prior(run: str | Path, k: int) -> np.ndarray:
    """The class prior the run's probabilities stand for."""
    cfg = source_config(run)
    if cfg.optim.balance != "none":  # class weights or a balanced sampler: equal classes
        return np.full(k, 1.0 / k)
    labels = read_images(cfg.data.path).label
    labels = task_labels(labels[labels >= 0], cfg.data.task)
    return np.bincount(labels, minlength=k) / len(labels)


def em_prior(proba: np.ndarray, prior: np.ndarray, iters: int = 1000, tol: float = 1e-8):
    """Saerens et al. (2002): the target prior and the corrected probabilities."""
    pi = prior.copy()
    for _ in range(iters):
        q = proba * (pi / prior)
        q /= q.sum(1, keepdims=True)
        new = q.mean(0)
        if np.abs(new - pi).max() < tol:
            break
        pi = new
    return pi, q


def measure(run: str, data: str) -> dict[str, np.ndarray]:
    """True, argmax and EM mixes; (proton F1, macro-F1) of the argmax before and after EM."""
    trained = load_run(run, device="cpu")
    features = trained.info.input == "features"
    s = read_images(data, features=features)
    known = s.label >= 0
    proba = trained.predict_proba(s.images, features=s.features if features else None)[known]
    y = task_labels(s.label[known], trained.info.task)
    k = proba.shape[1]
    pi, q = em_prior(proba, train_prior(run, k))

    def scores(p):
        f = f1_scores(y, p.argmax(1), k)
        return np.array([f["proton_f1"], f["macro_f1"]])

    return {
        "true": np.bincount(y, minlength=k) / len(y),
        "argmax": np.bincount(proba.argmax(1), minlength=k) / len(y),
        "em": pi,
        "before": scores(proba),
        "after": scores(q),
    }


def row(model: str, test: str, m: dict[str, np.ndarray]) -> str:
    """One Markdown row of `HEADER`."""

    def mix(v):
        return " / ".join(f"{x:.2f}" for x in v)

    def scores(v):
        return f"{v[0]:.3f} / {v[1]:.3f}"

    return (f"| {model} | {test} | {mix(m['true'])} | {mix(m['argmax'])} | {mix(m['em'])} | "
            f"{scores(m['before'])} | {scores(m['after'])} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data", nargs="+")
    args = ap.parse_args()
    print(HEADER)
    for path in args.data:
        print(row(Path(args.run).name, Path(path).stem, measure(args.run, path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
