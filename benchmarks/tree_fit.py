"""The trees' fit before and after the 10th session's three changes, side by side.

Ways: "before" (scikit-learn's ``_find_binning_thresholds``, one `_weighted_percentile`
call per quantile; the tensor tree walk; the track naming one event at a time) and
"now" (`models.binning`'s one sort per feature; the compiled walk `gbt.walk_trees`;
the naming on chunks of 256 events). All three keep every number, which this checks:
- `_BinMapper.fit` on synthetic features (142 columns, a fifth NaN, class-balanced
  weights of three values) of ``--rows`` rows: the thresholds must be equal (only the
  binning differs here);
- with ``--data`` (an image file with track features, e.g. the demo's
  ``demo_out/data/train.h5``), the demo's 3-class trees trained by `train_run` with the
  demo's settings: the two runs' ``model.safetensors`` must be the same bytes;
- with ``--refit RUN LABELLED`` (a tree run and a labelled image file preprocessed as
  it was, e.g. ``demo_out/runs/gbt_multiclass`` and a stand-in made by
  scripts/demo_eval.py), the labelled refit ``model.init=run:RUN``: the same bytes.
Times are wall seconds, best of ``--repeats`` alternating rounds, on one OpenMP thread
(as the demo's runs).

    .venv/bin/python benchmarks/tree_fit.py [--rows 2700 72000] [--data TRAIN.h5]
        [--refit RUN LABELLED.h5]

Last line: JSON of the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per run, as the demo's

import numpy as np

from attpc_classify.models import binning as ours
from data_prep.tracktruth import truth_tracks as TRUTH_TRACKS


def use(way: str) -> None:
    """Install the code of ``way``: "before" or "now"."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    from attpc_classify.models import gbt
    from data_prep import tracktruth

    ours.use_fast_weighted_binning()  # keeps scikit-learn's own in `sklearn_binning`
    before = way == "before"
    binning._find_binning_thresholds = (
        ours.sklearn_binning() if before else ours.find_binning_thresholds
    )
    gbt.WALK = "torch" if before else "numba"
    tracktruth.truth_tracks = functools.partial(TRUTH_TRACKS, chunk=1 if before else 256)


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
        for way in ("before", "now") if r % 2 == 0 else ("now", "before"):
            use(way)
            t0 = time.perf_counter()
            mapper = _BinMapper(n_threads=1).fit(x, sample_weight=weight)
            seconds[way] = min(seconds.get(way, np.inf), time.perf_counter() - t0)
            thresholds[way] = mapper.bin_thresholds_
    same = all(
        np.array_equal(a, b) for a, b in zip(thresholds["before"], thresholds["now"], strict=True)
    )
    return {"rows": rows, "seconds": {k: round(v, 3) for k, v in seconds.items()}, "same": same}


def trees(overrides: list[str], repeats: int) -> dict:
    """Seconds of the demo's 3-class trees trained each way with ``overrides``."""
    from attpc_classify.config import load_config
    from attpc_classify.demo import DEMO_MODELS
    from attpc_classify.engine import train_run
    from attpc_classify.train_config import TrainConfig

    model = DEMO_MODELS["gbt"]
    overrides = [*model.overrides, "seed=0", "data.task=multiclass", *overrides]
    seconds, weights = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for way in ("before", "now") if r % 2 == 0 else ("now", "before"):
                use(way)
                out = Path(tmp) / f"{way}{r}"
                cfg = load_config(TrainConfig, model.preset, [*overrides, f"out={out}"])
                t0 = time.perf_counter()
                train_run(cfg)
                seconds[way] = min(seconds.get(way, np.inf), time.perf_counter() - t0)
                weights[way] = (out / "model.safetensors").read_bytes()
    same = weights["before"] == weights["now"]
    return {"seconds": {k: round(v, 2) for k, v in seconds.items()}, "same": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[2700, 72000])
    ap.add_argument("--data", type=Path, help="an image file with track features")
    ap.add_argument("--refit", type=Path, nargs=2, metavar=("RUN", "LABELLED"))
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not ours.slow_weighted_binning(ours.sklearn_binning()):
        print("the installed scikit-learn bins with weights fast already")
    figures: dict = {"benchmark": "tree_fit", "bin_mapper": []}
    for rows in args.rows:
        fig = bin_mapper(rows, args.repeats)
        print(f"_BinMapper.fit, {rows} rows x 142: {fig['seconds']} (same: {fig['same']})")
        figures["bin_mapper"].append(fig)
    if args.data is not None:
        fig = trees([f"data.path={args.data}"], args.repeats)
        print(f"the demo's 3-class trees on {args.data}: {fig['seconds']} (same: {fig['same']})")
        figures["demo_trees"] = fig | {"data": str(args.data)}
    if args.refit is not None:
        run, labelled = args.refit
        fig = trees([f"data.path={labelled}", f"model.init=run:{run}"], args.repeats)
        print(f"refit of {run} on {labelled}: {fig['seconds']} (same: {fig['same']})")
        figures["refit"] = fig | {"run": str(run), "labelled": str(labelled)}
    use("now")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
