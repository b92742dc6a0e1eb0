"""The trees' fit with scikit-learn's weighted binning against `models.binning`'s.

Two measurements, each way in turn (scikit-learn's ``_find_binning_thresholds``, one
`_weighted_percentile` call per quantile; ours, one call per feature), in one process:
- `_BinMapper.fit` on synthetic features (142 columns, a fifth NaN, class-balanced
  weights of three values) of ``--rows`` rows: the thresholds must be equal;
- with ``--data`` (an image file with track features, e.g. the demo's
  ``demo_out/data/train.h5``), the demo's 3-class trees trained by `train_run` with the
  demo's settings: the two runs' ``model.safetensors`` must be the same bytes.
Times are wall seconds, best of ``--repeats`` alternating rounds, on one OpenMP thread
(as the demo's runs).

    .venv/bin/python benchmarks/tree_fit.py [--rows 2700 72000] [--data demo_out/data/train.h5]

Last line: JSON of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per run, as the demo's

import numpy as np

from attpc_classify.models import binning as ours


def use(way: str) -> None:
    """Put scikit-learn's own threshold function, or ours, into its binning module."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    ours.use_fast_weighted_binning()  # keeps scikit-learn's own in `sklearn_binning`
    binning._find_binning_thresholds = (
        ours.sklearn_binning() if way == "scikit-learn" else ours.find_binning_thresholds
    )


def bin_mapper(rows: int, repeats: int) -> dict:
    """Seconds of `_BinMapper.fit` each way on ``rows`` synthetic rows."""
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 142))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = rng.choice(3, size=rows, p=[0.25, 0.13, 0.62])
    weight = (1.0 / np.bincount(y) * rows / 3)[y]  # class_weight="balanced"
    seconds, thresholds = {}, {}
    for r in range(repeats):
        for way in ("scikit-learn", "ours") if r % 2 == 0 else ("ours", "scikit-learn"):
            use(way)
            t0 = time.perf_counter()
            mapper = _BinMapper(n_threads=1).fit(x, sample_weight=weight)
            seconds[way] = min(seconds.get(way, np.inf), time.perf_counter() - t0)
            thresholds[way] = mapper.bin_thresholds_
    same = all(
        np.array_equal(a, b)
        for a, b in zip(thresholds["scikit-learn"], thresholds["ours"], strict=True)
    )
    return {"rows": rows, "seconds": {k: round(v, 3) for k, v in seconds.items()}, "same": same}


def demo_trees(data: Path, repeats: int) -> dict:
    """Seconds of the demo's 3-class trees trained each way on ``data``."""
    from attpc_classify.config import load_config
    from attpc_classify.demo import DEMO_MODELS
    from attpc_classify.engine import train_run
    from attpc_classify.train_config import TrainConfig

    model = DEMO_MODELS["gbt"]
    overrides = [*model.overrides, "seed=0", f"data.path={data}", "data.task=multiclass"]
    seconds, weights = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for way in ("scikit-learn", "ours") if r % 2 == 0 else ("ours", "scikit-learn"):
                use(way)
                out = Path(tmp) / f"{way}{r}"
                cfg = load_config(TrainConfig, model.preset, [*overrides, f"out={out}"])
                t0 = time.perf_counter()
                train_run(cfg)
                seconds[way] = min(seconds.get(way, np.inf), time.perf_counter() - t0)
                weights[way] = (out / "model.safetensors").read_bytes()
    same = weights["scikit-learn"] == weights["ours"]
    return {"data": str(data), "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "same": same}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[2700, 72000])
    ap.add_argument("--data", type=Path, help="an image file with track features")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not ours.slow_weighted_binning(ours.sklearn_binning()):
        print("the installed scikit-learn bins with weights fast already: nothing to compare")
    figures: dict = {"benchmark": "tree_fit", "bin_mapper": []}
    for rows in args.rows:
        fig = bin_mapper(rows, args.repeats)
        print(f"_BinMapper.fit, {rows} rows x 142: {fig['seconds']} (same: {fig['same']})")
        figures["bin_mapper"].append(fig)
    if args.data is not None:
        fig = demo_trees(args.data, args.repeats)
        print(f"the demo's 3-class trees on {args.data}: {fig['seconds']} (same: {fig['same']})")
        figures["demo_trees"] = fig
    use("ours")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
