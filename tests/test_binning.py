"""`models.binning`: scikit-learn's weighted histogram binning, the same thresholds.

The references are scikit-learn's own ``_find_binning_thresholds`` and
``_weighted_percentile``, called directly; equality is exact: a threshold one ulp away
could put a sample in another bin and change a tree.
"""

from __future__ import annotations

import numpy as np
import pytest

from attpc_classify.models import binning


def _columns(rng: np.random.Generator):
    """Columns of every shape the trees see: continuous, many ties, rounded, a few
    distinct values (midpoints, not quantiles), NaNs; weights with zeros or without."""
    for trial in range(24):
        n = int(rng.integers(300, 3000))
        col = [
            rng.normal(size=n),
            rng.integers(0, 400, size=n).astype(float),
            np.round(rng.exponential(size=n), 2),
            rng.integers(0, 30, size=n).astype(float),
        ][trial % 4]
        col[rng.random(n) < 0.15] = np.nan
        weight = rng.choice([0.0, 0.3, 1.0, 2.7], size=n) if trial % 3 else rng.uniform(0, 3, n)
        yield col, weight


def test_thresholds_equal_scikit_learns_own():
    theirs = binning.sklearn_binning()
    kinds = set()
    for col, weight in _columns(np.random.default_rng(0)):
        for w in (weight, None):
            want = theirs(col.copy(), 255, None if w is None else w.copy())
            got = binning.find_binning_thresholds(col.copy(), 255, None if w is None else w.copy())
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            kinds.add(len(want) == 254)
    assert kinds == {True, False}  # quantiles and midpoints both exercised


def test_weighted_quantiles_equal_weighted_percentile_rank_by_rank():
    from sklearn.utils.stats import _weighted_percentile

    ranks = np.linspace(0, 100, 256)[1:-1]
    for col, weight in _columns(np.random.default_rng(1)):
        keep = ~np.isnan(col)
        values, w = col[keep], weight[keep]  # zero weights kept: the rank-by-rank fix-up
        want = np.array([_weighted_percentile(values, w, r, average=True) for r in ranks])
        np.testing.assert_array_equal(binning.weighted_quantiles(values, w, ranks), want)


@pytest.fixture
def sklearn_binning_restored():
    from sklearn.ensemble._hist_gradient_boosting import binning as sk

    before = sk._find_binning_thresholds
    yield sk
    sk._find_binning_thresholds = before


def test_a_balanced_fit_makes_the_same_trees(sklearn_binning_restored):
    """A class-balanced `HistGradientBoostingClassifier` (the trees' setting) fitted with
    scikit-learn's binning and with ours: the same nodes, so the same probabilities."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(2)
    x = rng.normal(size=(1500, 6))
    x[:, 1] = np.round(x[:, 1], 1)  # ties
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (x[:, 0] + np.nan_to_num(x[:, 1]) > 0.3).astype(int) + (x[:, 2] > 1.2)
    fits = {}
    for name, function in [
        ("scikit-learn", binning.sklearn_binning()),
        ("ours", binning.find_binning_thresholds),
    ]:
        sklearn_binning_restored._find_binning_thresholds = function
        clf = HistGradientBoostingClassifier(
            max_iter=30, max_leaf_nodes=15, class_weight="balanced", random_state=0
        )
        fits[name] = clf.fit(x, y)
    a, b = fits["scikit-learn"], fits["ours"]
    for ta, tb in zip(a._bin_mapper.bin_thresholds_, b._bin_mapper.bin_thresholds_, strict=True):
        np.testing.assert_array_equal(ta, tb)
    for pa, pb in zip(a._predictors, b._predictors, strict=True):
        for na, nb in zip(pa, pb, strict=True):
            np.testing.assert_array_equal(na.nodes, nb.nodes)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


def test_installed_only_over_the_slow_version():
    def no_weights(col_data, max_bins):  # scikit-learn before 1.7: weights not binned
        return col_data

    assert not binning.slow_weighted_binning(no_weights)
    assert not binning.slow_weighted_binning(binning.find_binning_thresholds)
    slow = binning.slow_weighted_binning(binning.sklearn_binning())
    assert binning.use_fast_weighted_binning() is slow
