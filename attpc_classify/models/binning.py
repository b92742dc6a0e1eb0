"""scikit-learn's weighted histogram binning, the same thresholds in one sort per feature.

`HistGradientBoostingClassifier` first bins every feature at 255 quantiles. With sample
weights (our trees always have them: ``class_weight="balanced"`` becomes sample weights),
scikit-learn 1.9.1 (as every version since it bins with weights, #29641) computes each of
a feature's 254 weighted quantiles by its own call of
``sklearn.utils.stats._weighted_percentile``, which sorts the feature again each time.
`benchmarks/tree_fit.py` (one thread): `_BinMapper.fit` on 2,700 rows x 142 features
took 5.3 s weighted (0.03 s unweighted), on 72,000 rows 40.5 s; the demo's 3-class trees
took 17.0 s to train, a third of it binning.

`weighted_quantiles` is `_weighted_percentile` with ``average=True`` for one column and
all ranks at once: the same sort call on the same array (so the same order, ties
included), the same cumulative weights, and the same per-rank arithmetic applied to the
vector of ranks instead of in a Python loop. `find_binning_thresholds` is scikit-learn's
``_find_binning_thresholds`` calling it. The thresholds are the same bit for bit
(tests/test_binning.py: against scikit-learn's own functions, ties, NaNs and zero weights
included, and a balanced fit node for node); the same benchmark gives 0.03 s and 0.46 s
for `_BinMapper.fit`, and the demo's trees train to the same ``model.safetensors`` bytes.
scikit-learn's pull request #34248 (merged 2026-06, after 1.9.1) fixes the same cost
upstream with its own helper; `use_fast_weighted_binning` installs ours only where the
installed scikit-learn still makes one call per quantile.

`find_binning_thresholds` is scikit-learn's code (BSD-3-Clause, the scikit-learn
developers), changed where marked "ours"; `weighted_quantiles` writes
`_weighted_percentile`'s steps for one column, in its order.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np


def weighted_quantiles(
    values: np.ndarray, sample_weight: np.ndarray, percentile_rank: np.ndarray
) -> np.ndarray:
    """``sklearn.utils.stats._weighted_percentile(values, sample_weight, percentile_rank,
    average=True)`` (scikit-learn 1.9) for a 1-D float64 ``values`` without NaN: the same
    sort, cumulative weights and per-rank arithmetic, the ranks as one vector instead of a
    Python loop over them."""
    array = values.reshape(-1, 1)  # as scikit-learn reshapes a 1-D input
    # its `xp.argsort(array, axis=0, stable=False)`: NumPy's default sort on the same
    # array gives the same order, ties included, so the same cumulative weights
    sorted_idx = np.argsort(array, axis=0)[:, 0]
    weights = np.asarray(sample_weight, dtype=np.float64)
    cdf = np.cumsum(weights[sorted_idx])
    ranks = np.asarray(percentile_rank, dtype=np.float64)
    adjusted = ranks / 100 * cdf[-1]
    zero = adjusted == 0  # leading zero weights are skipped at rank 0 (#20528)
    adjusted[zero] = np.nextafter(adjusted[zero], adjusted[zero] + 1)
    max_idx = len(values) - 1
    indices = np.clip(np.searchsorted(cdf, adjusted), 0, max_idx)
    fraction_above = cdf[indices] - adjusted
    is_fraction_above = fraction_above > np.finfo(np.float64).eps
    plus_one = sorted_idx[np.clip(indices + 1, 0, max_idx)]
    for k in np.flatnonzero(weights[plus_one] == 0):  # the next sample weighs nothing
        next_index = np.searchsorted(cdf, cdf[indices[k]], side="right")
        plus_one[k] = sorted_idx[indices[k] if next_index > max_idx else next_index]
    below = values[sorted_idx[indices]]
    return np.where(is_fraction_above, below, (below + values[plus_one]) / 2)


def find_binning_thresholds(col_data, max_bins, sample_weight=None):
    """scikit-learn 1.9's ``_find_binning_thresholds`` (binning.py), the weighted
    quantiles computed by `weighted_quantiles` at once instead of one
    `_weighted_percentile` call per quantile."""
    from numpy.lib.stride_tricks import sliding_window_view
    from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE

    # ignore missing values when computing bin thresholds
    missing_mask = np.isnan(col_data)
    any_missing = missing_mask.any()
    if any_missing:
        col_data = col_data[~missing_mask]
    # If sample_weight is not None and 0-weighted values exist, we need to
    # remove those before calculating the distinct points.
    if sample_weight is not None:
        if any_missing:
            sample_weight = sample_weight[~missing_mask]
        nnz_sw = sample_weight != 0
        col_data = col_data[nnz_sw]
        sample_weight = sample_weight[nnz_sw]
    # The data will be sorted anyway in np.unique and again in percentile, so we do it
    # here. Sorting also returns a contiguous array.
    sort_idx = np.argsort(col_data)
    col_data = col_data[sort_idx]
    if sample_weight is not None:
        sample_weight = sample_weight[sort_idx]
    distinct_values = np.unique(col_data).astype(X_DTYPE)
    if len(distinct_values) == 1:
        return np.asarray([])
    if len(distinct_values) <= max_bins:
        # Calculate midpoints if distinct values <= max_bins
        bin_thresholds = sliding_window_view(distinct_values, 2).mean(axis=1)
    elif sample_weight is None:
        percentiles = np.linspace(0, 100, num=max_bins + 1)
        percentiles = percentiles[1:-1]
        bin_thresholds = np.percentile(col_data, percentiles, method="averaged_inverted_cdf")
        assert bin_thresholds.shape[0] == max_bins - 1
    else:
        percentiles = np.linspace(0, 100, num=max_bins + 1)
        percentiles = percentiles[1:-1]
        # ours: every rank at once (one sort), not one `_weighted_percentile` call per rank
        bin_thresholds = weighted_quantiles(col_data, sample_weight, percentiles)
        assert bin_thresholds.shape[0] == max_bins - 1
    # Remove duplicated thresholds if they exist.
    unique_bin_values = np.unique(bin_thresholds)
    if unique_bin_values.shape[0] != bin_thresholds.shape[0]:
        bin_thresholds = unique_bin_values
    # We avoid having +inf thresholds: +inf thresholds are only allowed in
    # a "split on nan" situation.
    np.clip(bin_thresholds, a_min=None, a_max=ALMOST_INF, out=bin_thresholds)
    return bin_thresholds


@functools.cache
def sklearn_binning() -> object:
    """scikit-learn's own ``_find_binning_thresholds``, kept before
    `use_fast_weighted_binning` replaces it (the reference the tests compare with)."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    return binning._find_binning_thresholds


def slow_weighted_binning(function: object) -> bool:
    """Whether ``function`` is the scikit-learn version this module speeds up: it takes
    sample weights and calls `_weighted_percentile` once per quantile. Older versions
    ignore the weights when binning; newer ones (#34248) are fast already."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    params = inspect.signature(function).parameters
    return "sample_weight" in params and "for percentile in percentiles" in source


@functools.cache
def use_fast_weighted_binning() -> bool:
    """Put `find_binning_thresholds` into scikit-learn's binning module, where
    `_BinMapper.fit` looks it up, if the installed version is the slow one; return whether
    it did. Process-wide and idempotent, as `data_prep.sim.ode.use_fast_tracking`."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    if not slow_weighted_binning(sklearn_binning()):
        return False
    binning._find_binning_thresholds = find_binning_thresholds
    return True
