"""scripts/tree_adapt_variants.py: boosting continued on other data starts where the
source trees are."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from _scripts import load_script
from sklearn.ensemble import HistGradientBoostingClassifier


def _start(model, x: np.ndarray) -> np.ndarray:
    """The raw predictions a warm-started fit on ``x`` begins from (scikit-learn bins
    ``x`` with ``_bin_data`` and reads the old trees on those bins)."""
    binned = model._bin_data(x, None, is_training_data=True)
    model._in_fit = True
    try:
        return model._raw_predict(binned)
    finally:
        model._in_fit = False


def test_continued_boosting_starts_from_the_source_trees_predictions():
    tav = load_script("tree_adapt_variants")
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(600, 4))
    ys = (xs[:, 0] + 0.5 * xs[:, 1] > 0).astype(int) + (xs[:, 2] > 1).astype(int)
    # the target: another range of the same features, so its own bins differ
    xt = rng.normal(1.5, 0.5, size=(300, 4))
    src = tav.trees(0, leaves=7).fit(xs, ys)
    want = src.decision_function(xt)  # real-valued thresholds: the source's true calls

    kept = copy.deepcopy(src)
    kept.kept_bins_ = src._bin_mapper
    np.testing.assert_allclose(_start(kept, xt), want, rtol=1e-10, atol=1e-10)

    # scikit-learn's own warm start bins the new data afresh: the old trees' binned
    # thresholds then point elsewhere and the continuation starts from wrong predictions
    plain = HistGradientBoostingClassifier()
    plain.__dict__.update(copy.deepcopy(src).__dict__)
    assert np.abs(_start(plain, xt) - want).max() > 0.1


def test_importance_weights_follow_the_density_ratio():
    """The target is the simulation shifted by 0.8 along the first feature: the weights
    must rank the simulated events as the true density ratio exp(0.8 x - 0.32) does, move
    the simulation's weighted mean to the target's, have mean 1 and respect the cap."""
    from scipy.stats import spearmanr

    tav = load_script("tree_adapt_variants")
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(3000, 3))
    xp = rng.normal(size=(1000, 3)) + np.array([0.8, 0.0, 0.0])
    w = tav.target_weights(xs, xp, seed=0)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() <= tav.WEIGHT_CAP * np.median(w) * (1 + 1e-9)
    truth = np.exp(0.8 * xs[:, 0] - 0.32)
    assert spearmanr(w, truth).statistic > 0.6
    mean = (w[:, None] * xs).sum(axis=0) / w.sum()
    np.testing.assert_allclose(mean, [0.8, 0.0, 0.0], atol=0.2)
    # a feature the target does not shift carries no weight
    assert abs(spearmanr(w, xs[:, 1]).statistic) < 0.1
