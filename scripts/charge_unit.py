"""The recommended trees with and without the run's charge unit (issue 12).

    .venv/bin/python scripts/charge_unit.py --out charge_unit [--workers 2]

Everything goes through the application. The 72,000 training events and the test sets of
scripts/training_size.py are simulated under ``--out/sim`` (finished run files are kept),
with ``e15503b_randomized`` as it is now: the gain, threshold and gas density drawn once per
run file (``randomize.per_run``), as a real run has them. Both are preprocessed with the
README's recommended settings (``configs/prep/features.yaml --set features=tracks_v3 --set
cluster_z_scale=0.5``), once as they are and once with ``--set
charge_calibration=proton_band`` (each run file's charges also in its own unit, the median
charge per mm of its elastic-proton band: docs/sim-to-real.md, "A run's charge unit");
the recommended trees are trained on each (``configs/train/gbt.yaml optim.balance=weights
model.learning_rate=0.1 model.max_leaf_nodes=127``, seed 0), on the calibrated file also
with the unit hidden for a tenth of the training run files (``data.unit_dropout=0.1``),
scored on their validation split (`validation_scores.called`) and evaluated on every
test set (``evaluate --n-boot 1000 --sim``). The calibrated trees are evaluated again on
the stand-in, randomised and nominal sets with each file's unit missing, half or twice
the one found, or the median of the set's units (copies of the image files,
`with_unit_off`), and on the stand-in and randomised sets cut into files of 10 events
(`split_runs`), preprocessed with the files' pooled unit for those with too few band
tracks (``calibration_fallback: pooled``, the default) and without (``none``), and with
every file in the pooled unit (`with_pooled_unit`). Nothing is chosen on a test set.

Printed: Markdown tables (validation proton F1 / macro-F1; proton F1 [95 % interval] /
3-class macro-F1 per test set; the same with the units off), each test file's charge
units, and a last JSON line.
Steps whose output exists are skipped. ~75 min on 2 cores from nothing (the simulation
~35, each preprocessing ~4, each training ~8).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from demo_eval import cell  # "proton F1 [95 %] / macro-F1" of an evaluate metrics.json
from label_shortcuts import scores  # proton F1 and 3-class macro-F1 of calls
from training_size import OTHER_WAYS, PARTS, TESTS, cli, evaluate, preprocess, simulate, slug
from validation_scores import called

from attpc_classify.data import stratified_split

RECOMMENDED = ("--set", "features=tracks_v3", "--set", "cluster_z_scale=0.5")
CALIBRATED = (*RECOMMENDED, "--set", "charge_calibration=proton_band")
#: name -> (preprocess --set overrides, train overrides); variants with the same
#: preprocessing share its files
VARIANTS = {
    "recommended": (RECOMMENDED, ()),
    "+ the run's charge unit": (CALIBRATED, ()),
    "+ the run's charge unit, hidden for 10 % of the training runs": (
        CALIBRATED, ("data.unit_dropout=0.1",)),
}  # fmt: skip
LEAVES = 127
#: a run's unit as found, or off: missing (NaN), a factor away from the one found, or
#: "median": every file given the median of the set's units (the one true unit of a set
#: simulated with one gain, the stand-in's and the nominal's: what the per-file estimate's
#: scatter costs; for the randomised set, whose files have their own gains, a wrong one)
UNIT_ERRORS = {"missing": None, "x0.5": 0.5, "x2": 2.0, "median": "median"}
UNIT_SETS = ("standin", "randomised", "nominal")
#: short files: the test sets' run files cut into files of this many events, preprocessed
#: with each file's own unit (too few band tracks: the files' pooled unit, the default
#: `calibration_fallback: pooled`) and with `calibration_fallback=none`
SHORT_EVENTS = 10
SHORT_SETS = ("standin", "randomised")
FALLBACKS = {"pooled": (), "none": ("--set", "calibration_fallback=none")}


def train(data: Path, run: Path, extra: tuple[str, ...]) -> None:
    """The recommended trees (once), with ``extra`` train overrides."""
    if not (run / "model.safetensors").exists():
        cli("train", "--config", "configs/train/gbt.yaml", "--data", data, "--out", run,
            "--quiet", "optim.balance=weights", "model.learning_rate=0.1",
            f"model.max_leaf_nodes={LEAVES}", *extra)  # fmt: skip


def shifted_copy(src: Path, dst: Path, shift: Callable[[h5py.File], np.ndarray | None]) -> Path:
    """A copy of the image file ``src`` (once) whose charges in run units (the ``_run``
    columns, log10) are moved by ``shift(f)`` of the open copy: per event or one value
    for all, or None: NaN (no unit)."""
    if not dst.exists():
        tmp = dst.with_suffix(".tmp")
        shutil.copy(src, tmp)
        with h5py.File(tmp, "r+") as f:
            names = json.loads(f["features"].attrs["feature_names"])
            cols = [i for i, n in enumerate(names) if n.endswith("_run")]
            x, by = f["features"][()], shift(f)
            x[:, cols] = np.nan if by is None else x[:, cols] + np.reshape(by, (-1, 1))
            f["features"][...] = x
        tmp.rename(dst)
    return dst


def with_unit_off(src: Path, dst: Path, factor: float | str | None) -> Path:
    """A copy of the image file ``src`` whose runs' units are missing (``factor`` None),
    ``factor`` times the one found, or (``factor`` "median") the median of the files'
    units: the charges in run units NaN, or read as in that unit."""

    def shift(f: h5py.File) -> np.ndarray | None:
        if factor is None:
            return None
        if factor != "median":
            return np.array(-np.log10(factor))
        by = np.zeros(len(f["run"]))  # file k's columns are log10(charge / unit_k)
        units = run_units(f)
        for run, unit in units.items():
            by[f["run"][()] == run] = unit
        return by - np.median(list(units.values()))

    return shifted_copy(src, dst, shift)


def split_runs(sim: Path, out: Path, per_file: int) -> list[Path]:
    """The run files of ``sim`` cut into files of ``per_file`` events, ``out/K/NAME``
    (the same name, so the same run number, and the same event ids: the truth and
    `evaluate --sim` still match)."""
    paths = []
    for src in sorted(sim.glob("run_*.h5")):
        with h5py.File(src, "r") as f:
            ids = sorted(int(n[6:]) for n in f["cloud"] if n.startswith("cloud_"))
            for k in range(0, len(ids), per_file):
                dst = out / str(k // per_file) / src.name
                paths.append(dst)
                if dst.exists():
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                part = ids[k : k + per_file]
                tmp = dst.with_suffix(".tmp")
                with h5py.File(tmp, "w") as g:
                    g.attrs.update(dict(f.attrs))
                    cloud = g.create_group("cloud")
                    cloud.attrs.update({"min_event": part[0], "max_event": part[-1]})
                    for e in part:
                        for name in (f"cloud_{e}", f"labels_{e}"):
                            if name in f["cloud"]:
                                f.copy(f["cloud"][name], cloud, name)
                    if "events" in f:
                        rows = f["events"][()]
                        g.create_dataset("events", data=rows[np.isin(rows["event"], part)])
                tmp.rename(dst)
    return paths


def with_pooled_unit(src: Path, dst: Path, per_file: int) -> Path:
    """A copy of the image file ``src`` of short files (`split_runs`) in which every file,
    its own unit or not, reads in the pooled one: what a file's own unit from a few band
    tracks costs. The pooled unit is the one the files without their own were given (the
    most common value)."""

    def shift(f: h5py.File) -> np.ndarray:
        log_unit = {}  # (run, K) of short/K/run_NNNN.h5 -> log10 unit
        for p, u in json.loads(f.attrs["charge_units"]).items():
            m = re.search(r"/(\d+)/run_(\d+)\.h5$", p)
            log_unit[int(m.group(2)), int(m.group(1))] = np.log10(u)
        values, counts = np.unique(list(log_unit.values()), return_counts=True)
        run, event = f["run"][()], f["event_id"][()]
        own = np.empty(len(run))
        for r in np.unique(run):  # file K of a run holds its events K*per_file ...
            idx = np.flatnonzero(run == r)
            k = np.searchsorted(np.unique(event[idx]), event[idx]) // per_file
            own[idx] = [log_unit[int(r), int(i)] for i in k]
        return (own - values[counts.argmax()]).astype(np.float32)

    return shifted_copy(src, dst, shift)


def run_units(f: h5py.File) -> dict[int, float]:
    """log10 of each run file's unit (those that have one) by run number: the simulation
    names its files ``run_NNNN.h5`` and its events' run NNNN."""
    found = json.loads(f.attrs["charge_units"])
    units = {int(re.search(r"run_(\d+)\.h5$", p).group(1)): np.log10(u)
             for p, u in found.items() if u is not None}  # fmt: skip
    assert set(units) <= set(np.unique(f["run"][()]).tolist()), "run numbers not as named"
    return units


def validation(run: Path, data: Path) -> tuple[float, float]:
    """Proton F1 and macro-F1 on the run's own validation split (seed 0, 20 %); kept in
    ``RUN/validation_scores.json`` (classifying the 72,000 takes minutes)."""
    kept = run / "validation_scores.json"
    if kept.exists() and json.loads(kept.read_text())["data"] == str(data):
        return tuple(json.loads(kept.read_text())["scores"])
    with h5py.File(data, "r") as f:
        labels = f["label"][()]
    _, val = stratified_split(labels, 0.2, np.random.default_rng(0))
    found = scores(labels[val], called(run, data)[val])
    kept.write_text(json.dumps({"data": str(data), "scores": list(found)}))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sim = args.out / "sim"
    for name, (events, seed, first) in PARTS.items():
        simulate(sim / name, "e15503b_randomized", events, seed, first, args.workers)
    tests = TESTS | OTHER_WAYS
    for name, (preset, events, seed, first, sets) in tests.items():
        simulate(sim / slug(name), preset, events, seed, first, args.workers, sets)
    results: dict[str, dict] = {}
    unit_errors: dict[str, dict] = {}
    preps: dict[tuple[str, ...], Path] = {}
    for k, (variant, (prep, extra)) in enumerate(VARIANTS.items()):
        data = preps.setdefault(prep, args.out / "data" / f"v{k}")
        train_file = data / "train_72000.h5"
        preprocess([sim / p for p in PARTS], train_file, args.workers, *prep)
        run = args.out / "runs" / f"v{k}"
        train(train_file, run, extra)
        row: dict = {"validation": validation(run, train_file)}
        for name in tests:
            preprocess([sim / slug(name)], data / f"{slug(name)}.h5", args.workers, *prep)
            row[name] = cell(evaluate(run, data / f"{slug(name)}.h5", sim / slug(name)))
        results[variant] = row
        print(variant, row, flush=True)
        if prep != CALIBRATED:
            continue
        off = {}  # the same run on files whose units are missing or off
        for name in UNIT_SETS:
            for error, factor in UNIT_ERRORS.items():
                wrong = with_unit_off(data / f"{slug(name)}.h5",
                                      data / f"{slug(name)}_unit_{error}.h5", factor)  # fmt: skip
                off[f"{name}, unit {error}"] = cell(evaluate(run, wrong, sim / slug(name)))
        unit_errors[variant] = off
        for name in SHORT_SETS:  # the same run on short files, with and without the pool
            paths = split_runs(sim / slug(name), args.out / "short" / slug(name), SHORT_EVENTS)
            for fallback, sets in FALLBACKS.items():
                short = data / f"{slug(name)}_short_{fallback}.h5"
                preprocess(paths, short, args.workers, *prep, *sets)
                off[f"{name}, short files, {fallback}"] = cell(
                    evaluate(run, short, sim / slug(name))
                )
            pooled = data / f"{slug(name)}_short_pooled.h5"
            every = with_pooled_unit(pooled, data / f"{slug(name)}_short_every.h5", SHORT_EVENTS)
            off[f"{name}, short files, every file pooled"] = cell(
                evaluate(run, every, sim / slug(name))
            )
    print("| features | validation proton F1 / macro-F1 | " + " | ".join(tests) + " |")
    print("|---" * (2 + len(tests)) + "|")
    for variant, row in results.items():
        p, m = row["validation"]
        print(f"| {variant} | {p:.3f} / {m:.3f} | " + " | ".join(row[n] for n in tests) + " |")
    cols = [f"{n}, unit {e}" for n in UNIT_SETS for e in UNIT_ERRORS]
    cols += [f"{n}, short files, {f}" for n in SHORT_SETS
             for f in (*FALLBACKS, "every file pooled")]  # fmt: skip
    print("| trees | " + " | ".join(cols) + " |\n" + "|---" * (1 + len(cols)) + "|")
    for variant, off in unit_errors.items():
        print(f"| {variant} | " + " | ".join(off[c] for c in cols) + " |")
    units = {}
    for name in tests:
        with h5py.File(preps[CALIBRATED] / f"{slug(name)}.h5", "r") as f:
            found = json.loads(f.attrs["charge_units"]).values()
        values = np.array([np.nan if u is None else u for u in found])
        units[name] = [int(np.isfinite(values).sum()), len(values), float(np.nanmedian(values))]
        print(f"{name}: a unit in {units[name][0]} of {units[name][1]} files, "
              f"median {units[name][2]:.3g} ADC/mm")  # fmt: skip
    print(json.dumps({"results": results, "unit_errors": unit_errors, "units": units}))


if __name__ == "__main__":
    main()
