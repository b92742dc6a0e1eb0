"""The tree walks of `models.gbt.GBTClassifier`: compiled, tensor chunks, all at once.

A named-track model (gbt on ``tracks_v3``) runs its track trees (5 kinds x up to 300
iterations = 1,500 trees) on each event's five tracks: that walk set `classify`'s speed
(~100 events/s on 2 busy cores). This fits scikit-learn's HistGradientBoostingClassifier
of that shape on synthetic data (5 classes, 15 leaves, 300 iterations, no early
stopping), copies it into a `GBTClassifier` and times ``raw_scores`` on ``--rows`` rows
by the compiled walk (`gbt.walk_trees`, the CPU default since 2026-12-06), by the tensor
walk with ``TREE_CHUNK`` trees at a time, and by the tensor walk over all trees at once
(the walk before the chunks), interleaved over ``--repeats`` rounds on one torch thread,
with scikit-learn's own ``predict_proba`` (compiled, 1 thread) beside them. The three
walks must give the same scores, bit for bit.

    .venv/bin/python benchmarks/tree_walk.py [--rows 5000] [--repeats 3]

Last line: JSON (seconds per 1,000 rows, best of the rounds, and the speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # scikit-learn's predict on one thread too

import numpy as np
import torch

from attpc_classify.models import gbt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 12))
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=len(x)),
                    [-1.0, -0.3, 0.3, 1.0])  # fmt: skip
    x[rng.random(x.shape) < 0.1] = np.nan
    model = gbt.GBTClassifier(12, 5)
    clf = gbt.fit_gbt(model, x, y, params={"max_iter": 300, "max_leaf_nodes": 15,
                                           "learning_rate": 0.1}, balanced=False)  # fmt: skip
    test = torch.from_numpy(x[: args.rows])
    chunk = gbt.TREE_CHUNK
    times: dict[str, list[float]] = {"numba": [], "chunked": [], "all_at_once": [], "sklearn": []}
    scores = {}
    with torch.no_grad():
        model.raw_scores(test[:1])  # the compiled walk compiled (or read from its cache) first
    for _ in range(args.repeats):
        walks = (("numba", "numba", chunk), ("chunked", "torch", chunk),
                 ("all_at_once", "torch", model.feature.shape[0]))  # fmt: skip
        for name, walk, size in walks:
            gbt.WALK, gbt.TREE_CHUNK = walk, size
            t = time.perf_counter()
            with torch.no_grad():
                scores[name] = model.raw_scores(test)
            times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        clf.predict_proba(x[: args.rows])
        times["sklearn"].append(time.perf_counter() - t)
    gbt.WALK, gbt.TREE_CHUNK = "numba", chunk
    assert torch.equal(scores["chunked"], scores["all_at_once"])
    assert torch.equal(scores["numba"], scores["chunked"])
    best = {k: min(v) * 1000 / args.rows for k, v in times.items()}
    print(
        f"{model.feature.shape[0]} trees, depth <= {model.max_depth}, {args.rows} rows: "
        + ", ".join(f"{k} {v * 1000:.1f} ms per 1,000 rows" for k, v in best.items())
    )
    print(json.dumps({"trees": int(model.feature.shape[0]), "chunk": chunk,
                      "s_per_1000_rows": {k: round(v, 4) for k, v in best.items()},
                      "speedup": round(best["all_at_once"] / best["chunked"], 2),
                      "numba_speedup": round(best["chunked"] / best["numba"], 2),
                      "load_avg": round(os.getloadavg()[0], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
