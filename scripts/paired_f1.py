"""Two runs on the same events: the proton F1 difference with a paired bootstrap interval.

    .venv/bin/python scripts/paired_f1.py RUN_A DATA_A RUN_B DATA_B [NAME=DATA_A,DATA_B ...]
        [--validation | --unseen] [--n-boot 2000]

Each run classifies its own image file of the same events (two files where the runs read
different features: the same run files preprocessed twice; checked event by event on
their labels, runs and event ids). The difference B - A of proton F1 (class 0 against the
rest) and of 3-class macro-F1 is bootstrapped over the events, both runs' calls drawn
together, so the noise the two share (which events a set happens to hold) cancels.
``--validation``: DATA_A and DATA_B are the runs' training files; only the split `train`
held out is scored (its labelled events split with the run's ``seed`` and
``data.val_fraction``, `attpc_classify.data.load_datasets`; both runs must have held out
the same events). ``--unseen``: runs trained on different files made the same way (more
events, say): DATA_A and DATA_B are their training files, and the events scored are
those run B held out whose run files DATA_A does not hold, so neither run trained on
them; both runs classify DATA_B. Unlabelled events are not scored. More sets:
``NAME=DATA_A,DATA_B``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from label_shortcuts import scores  # proton F1 and 3-class macro-F1 of calls
from validation_scores import called  # classify's call for each event of an image file

from attpc_classify.data import stratified_split
from attpc_classify.trees_adapt import source_config


def events(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and (run, event id) keys of an image file's events, in order."""
    with h5py.File(data, "r") as f:
        keys = np.column_stack([f["run"][()], f["event_id"][()]])
        return f["label"][()], keys


def held_out(run: Path, y: np.ndarray) -> np.ndarray:
    """Indices of the events `train` held out for validation in a file of labels ``y``:
    its labelled events split with the run's seed and validation fraction."""
    cfg = source_config(run)
    if cfg.data.val_path:
        raise SystemExit(f"error: {run} validated on its own file {cfg.data.val_path}: "
                         "score that file instead of --validation")  # fmt: skip
    labelled = np.flatnonzero(y >= 0)
    rng = np.random.default_rng(cfg.seed)
    _, val = stratified_split(y[labelled], cfg.data.val_fraction, rng)
    return labelled[val]


def paired(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int) -> dict:
    """B - A in proton F1 and macro-F1, with 95 % percentile intervals of the paired
    bootstrap (seed 0)."""
    rng = np.random.default_rng(0)
    diff = np.array(scores(y, b)) - np.array(scores(y, a))
    draws = np.array([np.subtract(scores(y[i], b[i]), scores(y[i], a[i]))
                      for i in rng.integers(0, len(y), (n_boot, len(y)))])  # fmt: skip
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {"events": len(y), "a": [round(v, 4) for v in scores(y, a)],
            "b": [round(v, 4) for v in scores(y, b)],
            "proton_f1": [round(diff[0], 4), round(low[0], 4), round(high[0], 4)],
            "macro_f1": [round(diff[1], 4), round(low[1], 4), round(high[1], 4)]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("data_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("data_b", type=Path)
    ap.add_argument("more", nargs="*", help="NAME=DATA_A,DATA_B")
    split = ap.add_mutually_exclusive_group()
    split.add_argument("--validation", action="store_true", help="the first pair: own split")
    split.add_argument("--unseen", action="store_true",
                       help="the first pair: B's split, files A never read")  # fmt: skip
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_intermixed_args()
    # --unseen scores B's file: name the first set after it
    first = f"{args.data_b.stem}, unseen" if args.unseen else args.data_a.stem
    sets = {first: (args.data_a, args.data_b)}
    for item in args.more:
        name, pair = item.split("=", 1)
        sets[name] = tuple(Path(p) for p in pair.split(","))
    out = {}
    for k, (name, (data_a, data_b)) in enumerate(sets.items()):
        if k == 0 and args.unseen:
            y, keys = events(data_b)
            keep = unseen(args.run_b, y, keys, events(data_a)[1])
            a, b = called(args.run_a, data_b), called(args.run_b, data_b)
            out[name] = report(name, paired(y[keep], a[keep], b[keep], args.n_boot))
            continue
        (y, keys_a), (y_b, keys_b) = events(data_a), events(data_b)
        if not (np.array_equal(y, y_b) and np.array_equal(keys_a, keys_b)):
            raise SystemExit(f"error: {data_a} and {data_b} do not hold the same events")
        keep = np.flatnonzero(y >= 0)
        if k == 0 and args.validation:
            keep = held_out(args.run_a, y)
            if not np.array_equal(keep, held_out(args.run_b, y)):
                raise SystemExit("error: the two runs held out different validation events")
        a, b = called(args.run_a, data_a), called(args.run_b, data_b)
        y, a, b = y[keep], a[keep], b[keep]
        out[name] = report(name, paired(y, a, b, args.n_boot))
    print(json.dumps(out))


def unseen(run_b: Path, y: np.ndarray, keys: np.ndarray, keys_a: np.ndarray) -> np.ndarray:
    """Indices of the events run B held out for validation (``y``, ``keys``: its training
    file's) from run files that run A's training file (``keys_a``) does not hold."""
    val = held_out(run_b, y)
    return val[~np.isin(keys[val, 0], np.unique(keys_a[:, 0]))]


def report(name: str, d: dict) -> dict:
    """Print one set's line of `paired`'s result ``d``; return it."""
    print(f"{name}: {d['events']} events, proton F1 {d['a'][0]:.4f} -> {d['b'][0]:.4f}, "
          f"B - A {d['proton_f1'][0]:+.4f} [{d['proton_f1'][1]:+.4f}, "
          f"{d['proton_f1'][2]:+.4f}]; macro-F1 {d['macro_f1'][0]:+.4f} "
          f"[{d['macro_f1'][1]:+.4f}, {d['macro_f1'][2]:+.4f}]", flush=True)  # fmt: skip
    return d


if __name__ == "__main__":
    main()
