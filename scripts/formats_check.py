"""A model on the same run in every file format: does it call the same events?

    .venv/bin/python scripts/formats_check.py RUN FILE [FILE ...] --out DIR [--seed 0]

The AT-TPC's tools store point clouds in different layouts (docs/usage.md, "Preprocessing"):
Spyral and attpc-engine (our simulation's), pytpc (the reference paper's real data),
ATTPCROOT's HDF5 export and ROOT trees. They differ in more than the frame (scripts/
frames.py): pytpc keeps each point's pad id in another column than Spyral, and ATTPCROOT
and ROOT trees keep none, while the structured-noise rules find hot pads and chip fires
by pad. This copies the simulated Spyral run files FILE into each other
layout (``DIR/<format>/``, the same file names, so the same run numbers; written by the
test suite's writers, tests/_formats.py, the layouts the readers are tested against;
atomic: a temporary directory renamed when done), classifies the originals and every
copy with RUN (`attpc-classify classify`: the model's own preprocessing of raw files),
and prints a markdown table per format: how the layout stores the pad, the events
called as in the Spyral original, proton F1 and 3-class macro-F1 against the
simulation's labels with 95 % bootstrap intervals (1,000 resamples, ``--seed``).
docs/sim-to-real.md, "A run in another file format".
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "attpc_classify.cli"]
#: format -> how its layout stores a point's pad
PAD_STORAGE = {
    "spyral": "column 5 of each cloud",
    "pytpc": "column 4 (column 5: the neighbour count)",
    "attpcroot": "none (x, y, z, A hits)",
    "root": "none (x, y, z, charge branches)",
}


def writers() -> dict:
    """The test suite's writer of each layout (tests/_formats.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from _formats import WRITERS

    return {k: v for k, v in WRITERS.items() if k != "spyral"}


def copy_runs(originals: list[Path], out: Path, fmt: str, write) -> list[Path]:
    """``out/<fmt>/<name>`` for each original, written once (reused when there)."""
    from data_prep.readers import open_events

    target = out / fmt
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{fmt}."))
        for path in originals:
            with open_events(path) as reader:
                write(tmp / path.name, list(reader.iter_events(0, len(reader))))
        tmp.rename(target)
    return [target / p.name for p in originals]


def classify(
    run: Path, files: list[Path], out: Path, extra: tuple[str, ...] = ()
) -> dict[tuple[int, int], dict] | str:
    """Rows of ``classify RUN FILES [EXTRA]`` by (run, event id), or its error line."""
    command = [*CLI, "classify", str(run), *map(str, files), "--out", str(out), "--quiet",
               *extra]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    with open(out, newline="") as f:
        return {(int(r["run"]), int(r["event_id"])): r for r in csv.DictReader(f)}


def truth(files: list[Path]) -> dict[tuple[int, int], int]:
    """The simulation's label of each event, by (run, event id)."""
    from data_prep.readers import open_events

    labels = {}
    for path in files:
        with open_events(path) as reader:
            for event in reader.iter_events(0, len(reader)):
                labels[(event.run, event.event_id)] = event.label
    return labels


def scores(rows: dict, labels: dict, names: list[str], seed: int) -> tuple[str, str]:
    """Proton F1 and (3-class models) macro-F1 with 95 % bootstrap intervals, as text,
    over every event: one called ``empty`` (no usable point, no probabilities) counts as
    called other, the junk class; a binary model's ``rest`` as not proton."""
    from attpc_classify.evaluate import task_metrics

    keys = [k for k in labels if k in rows]
    y = np.array([labels[k] for k in keys])
    calls = [("other" if rows[k]["label"] == "empty" else rows[k]["label"]) for k in keys]
    p = np.nan_to_num(np.array([float(rows[k]["p_proton"]) for k in keys]))
    proton = np.array([c == "proton" for c in calls])
    binary = task_metrics((y != 0).astype(int), (~proton).astype(int), ["proton", "rest"],
                          score=p, rng=np.random.default_rng(seed))  # fmt: skip

    def text(iv) -> str:
        return f"{iv.value:.3f} [{iv.low:.3f}, {iv.high:.3f}]"

    if not set(calls) <= set(names):  # a binary model: no 3-class call
        return text(binary.f1[0]), "-"
    called = np.array([names.index(c) for c in calls])
    multi = task_metrics(y, called, names, rng=np.random.default_rng(seed))
    return text(binary.f1[0]), text(multi.macro_f1)


def result_cells(rows: dict | str, base: dict, labels: dict, names: list[str],
                 seed: int) -> str:  # fmt: skip
    """Table cells of one classification against the originals' (``base``): events,
    events called as there, proton F1, macro-F1; or classify's error line."""
    if isinstance(rows, str):
        return f"- | classify failed: {rows} | - | -"
    same = sum(rows[k]["label"] == base[k]["label"] for k in base if k in rows)
    f1, macro = scores(rows, labels, names, seed)
    return f"{len(rows)} | {same} of {len(base)} | {f1} | {macro}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("files", type=Path, nargs="+", help="simulated Spyral run files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    originals = list(args.files)
    labels = truth(originals)
    names = ["proton", "carbon", "other"]
    base = classify(args.run, originals, args.out / "spyral.csv")
    if isinstance(base, str):
        raise SystemExit(f"classify of the originals failed: {base}")
    lines = [
        "| format | pad ids | events | called as the Spyral original | proton F1 [95 %] "
        "| macro-F1 [95 %] |",
        "|---|---|---|---|---|---|",
    ]
    copies = {"spyral": originals} | {
        fmt: copy_runs(originals, args.out, fmt, write) for fmt, write in writers().items()
    }
    for fmt, files in copies.items():
        rows = base if fmt == "spyral" else classify(args.run, files, args.out / f"{fmt}.csv")
        cells = result_cells(rows, base, labels, names, args.seed)
        lines.append(f"| {fmt} | {PAD_STORAGE[fmt]} | {cells} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
