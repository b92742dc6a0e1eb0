"""The recommended trees against the number of simulated training events and tree size.

    .venv/bin/python scripts/training_size.py --out training_size [--workers 2] [--cnn]

Everything goes through the application, as docs/recommended-model.md runs it:
``simulate --config e15503b_randomized`` in three parts (9,000 events seed 1 runs 0+,
27,000 seed 2 runs 1000+, 36,000 seed 3 runs 2000+), so the training sets are the first
part (9,000), the first two (36,000) and all three (72,000); test sets as in
scripts/label_shortcuts.py: a stand-in (2,000 events, seed 99, runs 5000+), randomised
(1,000, seed 98, runs 5100+) and nominal (500, seed 97, runs 5200+) simulations; and,
made other ways than the training data, the nominal simulation with one detector setting
at an extreme (scripts/sim_to_real.py's ``KNOBS``, 500 events each, seeds 301+, runs
5400+) and the stand-in of the simulation before its label fixes (``previous`` of
scripts/label_shortcuts.py: noise events without their beam ion, reactions that may hide
in the beam's core; 2,000 events, seed 99, runs 5000+).
``preprocess --config configs/prep/features.yaml``; ``train --config
configs/train/gbt.yaml optim.balance=weights model.learning_rate=0.1
model.max_leaf_nodes=L`` (early stopping on its 20 % validation split, seed 0);
``evaluate --n-boot 1000 --sim`` on each test set. The tree size is chosen on the
validation macro-F1, never on a test set.

``--v3`` also preprocesses the largest training set and every test set with the named
tracks (``--set features=tracks_v3``) and trains the two-stage trees
(`models.gbt.NamedTracksGBT`) with the leaves chosen above, against the ``tracks_v2``
trees on every set (~30 min more on 2 cores: naming the 72,000 training events out of fold
is most of it).

``--cnn128`` also trains the 128 x 128 three-view CNN of docs/nominal-results.md
(``configs/train/cnn128.yaml``, 12 epochs, seed 0) on the robust inputs at
that resolution (``configs/prep/robust128.yaml``; test sets preprocessed with
``--reference`` its training file) of the first 9,000 events (~15 min on the AVX-512
host: ~65 s per epoch with bf16).

``--cnn`` also trains the demo-size CNN (``configs/train/cnn_small.yaml`` at width 16,
batch 32, 15 epochs, seed 0) on the same image files of 9,000 and 36,000 events (~15 min
more), to see whether it too was short of events.

Printed: a Markdown table (validation macro-F1; proton F1 [95 % interval] of the binary
reading / 3-class macro-F1 per test set), the same on the other-way sets for the first
recipe (9,000 events, 15 leaves) and the chosen one, the errors per simulated channel of the
validation-chosen model on the randomised test set, its pile-up errors by how much the
weaker of the two reactions shows, and a last JSON line. Steps whose output exists are
skipped. Runtime here: ~55 min on 2 cores, most of it the simulation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from demo_eval import cell  # "proton F1 [95 %] / macro-F1" of an evaluate metrics.json
from label_shortcuts import VERSIONS
from proton_misses import centred_events  # run files' events centred on their beam line
from sim_to_real import KNOBS

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]
#: training parts: name -> (events, seed, first run); sizes are cumulative
PARTS = {"a": (9000, 1, 0), "b": (27000, 2, 1000), "c": (36000, 3, 2000)}
SIZES = {9000: ("a",), 36000: ("a", "b"), 72000: ("a", "b", "c")}
#: name -> (preset, events, seed, first run, --set overrides)
TESTS = {
    "standin": ("e15503b_standin", 2000, 99, 5000, []),
    "randomised": ("e15503b_randomized", 1000, 98, 5100, []),
    "nominal": ("e15503b_nominal", 500, 97, 5200, []),
}
OTHER_WAYS = {
    f"nominal, {name}": ("e15503b_nominal", 500, 301 + i, 5400 + 100 * i, sets)
    for i, (name, sets) in enumerate(KNOBS.items())
} | {"stand-in, previous simulation": ("e15503b_standin", 2000, 99, 5000, VERSIONS["previous"])}
LEAVES = (15, 63, 127)
CNN_SIZES = (9000, 36000)
CNN128 = ["--config", "configs/train/cnn128.yaml", "optim.epochs=12"]
CNN = ["--config", "configs/train/cnn_small.yaml", "model.width=16", "optim.batch_size=32",
       "optim.patience=0", "optim.epochs=15"]  # fmt: skip
#: points >= this far from the run's beam line count as "shown" (the simulation's
#: min_signal_radius_mm and the features' beam core)
SHOWN_MM = 30.0


def cli(*args: object) -> None:
    subprocess.run([*CLI, *map(str, args)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def simulate(out: Path, preset: str, events: int, seed: int, first: int, workers: int,
             sets: Sequence[str] = ()) -> None:  # fmt: skip
    # --resume: finished run files are kept, an interrupted one is simulated again
    overrides = [x for s in sets for x in ("--set", s)]
    cli("simulate", "--config", preset, "--events", events, "--seed", seed, "--first-run",
        first, "--out", out, "--workers", workers, "--quiet", "--resume", *overrides)  # fmt: skip


def preprocess(inputs: list[Path], out: Path, workers: int, *extra: str) -> None:
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        cli("preprocess", *inputs, "--out", out, "--config", "configs/prep/features.yaml",
            "--workers", workers, "--quiet", *extra)  # fmt: skip


def train(data: Path, run: Path, leaves: int) -> float:
    """Fit (once) and return the validation macro-F1 of the last history row."""
    if not (run / "model.safetensors").exists():
        cli("train", "--config", "configs/train/gbt.yaml", "--data", data, "--out", run,
            "--quiet", "optim.balance=weights", "model.learning_rate=0.1",
            f"model.max_leaf_nodes={leaves}")  # fmt: skip
    rows = (run / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(rows[-1])["val_macro_f1"])


def train_cnn(data: Path, run: Path, settings: Sequence[str] = CNN) -> float:
    """Train a CNN (once); its best validation macro-F1 (the epoch it keeps)."""
    if not (run / "model.safetensors").exists():
        cli("train", "--data", data, "--out", run, "--quiet", *settings)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    return max(float(r["val_macro_f1"]) for r in rows if "val_macro_f1" in r)


def evaluate(run: Path, data: Path, sim: Path) -> dict:
    out = run / "eval" / data.stem
    if not (out / "metrics.json").exists():
        cli("evaluate", run, "--data", data, "--sim", sim, "--n-boot", 1000, "--no-figures",
            "--quiet", "--out", out)  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def shown_points(sim: Path) -> dict[tuple[int, int], int]:
    """Pile-up events of ``sim``: (run, event) -> points the weaker reaction shows
    ``SHOWN_MM`` or more from the run's beam line (its light and heavy products)."""
    from data_prep.sim.physics import PILEUP_OFFSET

    out = {}
    for run, e, _, xyz, lab in centred_events(sim, lambda row: row["channel"] == b"pileup"):
        far = np.hypot(xyz[:, 0], xyz[:, 1]) >= SHOWN_MM
        second = lab >= PILEUP_OFFSET
        out[(run, e)] = int(min((far & (lab >= 0) & ~second).sum(), (far & second).sum()))
    return out


def pileup_by_shown(run: Path, data: Path, sim: Path, out: Path) -> list[tuple[str, int, int]]:
    """(bin, events, wrong) of the pile-up events of ``data`` by `shown_points`."""
    from attpc_classify.predict import read_predictions

    csv = out / f"{data.stem}_predictions.csv"
    if not csv.exists():
        cli("classify", run, data, "--out", csv, "--quiet")
    pred = read_predictions(csv)
    shown = shown_points(sim)
    rows = []
    for lo, hi in ((0, 20), (20, 40), (40, 80), (80, 10**9)):
        n = wrong = 0
        for run_no, event, call in zip(pred["run"], pred["event_id"], pred["label"], strict=True):
            k = shown.get((int(run_no), int(event)))
            if k is not None and lo <= k < hi:
                n += 1
                wrong += str(call) != "other"  # a pile-up event is "other"
        rows.append((f"{lo}-{hi - 1}" if hi < 10**9 else f">= {lo}", n, wrong))
    return rows


def slug(name: str) -> str:
    """A file name for a test set's name."""
    return name.replace(", ", "_").replace(" ", "_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cnn", action="store_true", help="also the CNN at 9,000 and 36,000 events")
    ap.add_argument("--cnn128", action="store_true",
                    help="also the 128 x 128 three-view CNN at 9,000 events")  # fmt: skip
    ap.add_argument("--v3", action="store_true",
                    help="also the named-track trees (tracks_v3) at the largest size")  # fmt: skip
    args = ap.parse_args()
    sim, data, runs = args.out / "sim", args.out / "data", args.out / "runs"
    data.mkdir(parents=True, exist_ok=True)
    for name, (events, seed, first) in PARTS.items():
        simulate(sim / name, "e15503b_randomized", events, seed, first, args.workers)
    for name, (preset, events, seed, first, sets) in (TESTS | OTHER_WAYS).items():
        simulate(sim / slug(name), preset, events, seed, first, args.workers, sets)
        preprocess([sim / slug(name)], data / f"{slug(name)}.h5", args.workers)
    results: dict[str, dict] = {}
    for size, parts in SIZES.items():
        train_file = data / f"train_{size}.h5"
        preprocess([sim / p for p in parts], train_file, args.workers)
        for leaves in LEAVES:
            run = runs / f"{size}_{leaves}"
            row: dict = {"validation": train(train_file, run, leaves)}
            for name in TESTS | OTHER_WAYS:
                row[name] = evaluate(run, data / f"{slug(name)}.h5", sim / slug(name))
            results[f"{size}_{leaves}"] = row
            print(f"{size} events, {leaves} leaves:", f"{row['validation']:.3f}",
                  *(cell(row[n]) for n in TESTS), flush=True)  # fmt: skip
    print("| training events | leaves | validation macro-F1 | " + " | ".join(TESTS) + " |")
    print("|---" * (3 + len(TESTS)) + "|")
    for key, row in results.items():
        size, leaves = key.split("_")
        cells = " | ".join(cell(row[n]) for n in TESTS)
        print(f"| {int(size):,} | {leaves} | {row['validation']:.3f} | {cells} |")
    largest = [f"{max(SIZES)}_{leaves}" for leaves in LEAVES]
    best = max(largest, key=lambda k: results[k]["validation"])
    if args.cnn:
        print("| CNN, training events | validation macro-F1 | " + " | ".join(TESTS) + " |")
        print("|---" * (2 + len(TESTS)) + "|")
        for size in CNN_SIZES:
            run = runs / f"cnn_{size}"
            val = train_cnn(data / f"train_{size}.h5", run)
            row = {n: evaluate(run, data / f"{slug(n)}.h5", sim / slug(n)) for n in TESTS}
            results[f"cnn_{size}"] = {"validation": val, **row}
            print(f"| {size:,} | {val:.3f} | " + " | ".join(cell(row[n]) for n in TESTS) + " |")
    if args.cnn128:
        # the robust inputs at 128 x 128, all three views; per-run charge quantiles mapped
        # onto the training file's, so every test set is made with it as --reference
        r128, run = data / "r128", runs / "cnn128_9000"
        train_file = r128 / "train_9000.h5"
        prep = ("--config", "configs/prep/robust128.yaml", "--workers", args.workers, "--quiet")
        if not train_file.exists():
            r128.mkdir(parents=True, exist_ok=True)
            cli("preprocess", *(sim / p for p in SIZES[9000]), "--out", train_file, *prep)
        for name in TESTS:
            if not (r128 / f"{slug(name)}.h5").exists():
                cli("preprocess", sim / slug(name), "--out", r128 / f"{slug(name)}.h5", *prep,
                    "--reference", train_file)  # fmt: skip
        val = train_cnn(train_file, run, CNN128)
        row = {n: evaluate(run, r128 / f"{slug(n)}.h5", sim / slug(n)) for n in TESTS}
        results["cnn128_9000"] = {"validation": val, **row}
        print("| CNN 128 x 128, three views, training events | validation macro-F1 | "
              + " | ".join(TESTS) + " |")  # fmt: skip
        print("|---" * (2 + len(TESTS)) + "|")
        print("| 9,000 | " + f"{val:.3f} | " + " | ".join(cell(row[n]) for n in TESTS) + " |")
    if args.v3:
        # the same events and settings with five named tracks (models.gbt.NamedTracksGBT);
        # the track names come from the run files' per-point truth at training time
        v3 = ("--set", "features=tracks_v3")
        size, leaves = best.split("_")
        train_file = data / "v3" / f"train_{size}.h5"
        preprocess([sim / p for p in SIZES[int(size)]], train_file, args.workers, *v3)
        run = runs / f"v3_{best}"
        row = {"validation": train(train_file, run, int(leaves))}
        for name in TESTS | OTHER_WAYS:
            test = data / "v3" / f"{slug(name)}.h5"
            preprocess([sim / slug(name)], test, args.workers, *v3)
            row[name] = evaluate(run, test, sim / slug(name))
        results[f"v3_{best}"] = row
        print(f"| features ({int(size):,} events, {leaves} leaves) | validation macro-F1 | "
              + " | ".join(TESTS | OTHER_WAYS) + " |")  # fmt: skip
        print("|---" * (2 + len(TESTS | OTHER_WAYS)) + "|")
        for label, key in (("tracks_v2", best), ("tracks_v3, named tracks", f"v3_{best}")):
            r = results[key]
            print(f"| {label} | {r['validation']:.3f} | "
                  + " | ".join(cell(r[n]) for n in TESTS | OTHER_WAYS) + " |")  # fmt: skip
    print(f"\nchosen on validation at the largest size: {best}")
    first = f"{min(SIZES)}_{LEAVES[0]}"
    print(f"| made another way | {first} | {best} |\n|---|---|---|")
    for name in OTHER_WAYS:
        print(f"| {name} | {cell(results[first][name])} | {cell(results[best][name])} |")
    by_channel = results[best]["randomised"]["by_channel"]["multiclass"]
    print("| channel | wrong / events | called |\n|---|---|---|")
    for channel, r in by_channel.items():
        called = ", ".join(f"{k} {v}" for k, v in r["called"].items())
        print(f"| {channel} | {r['wrong']} / {r['n']} | {called} |")
    shown = pileup_by_shown(runs / best, data / "randomised.h5", sim / "randomised", args.out)
    print("| weaker reaction's points >= 30 mm | pile-up events | called proton or carbon |")
    print("|---|---|---|")
    for label, n, wrong in shown:
        print(f"| {label} | {n} | {wrong} ({wrong / max(n, 1):.0%}) |")
    summary = {k: {"validation": r["validation"], **{n: cell(r[n]) for n in TESTS | OTHER_WAYS
                                                     if n in r}}
               for k, r in results.items()}  # fmt: skip
    print(json.dumps({"chosen": best, "results": summary, "pileup_by_shown": shown}))


if __name__ == "__main__":
    main()
