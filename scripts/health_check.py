"""Does the health report flag the runs where a model does worse? (docs/sim-to-real.md,
"Detector health").

For each test set (a directory of simulated run files): ``attpc-classify health`` against
a reference (the model's training simulation, or a report measured on it once), and the
model's proton F1 / macro-F1 on the set with 95 % bootstrap intervals (``classify`` on
the run files, scored by the simulation's labels as ``scripts/formats_check.py`` does).
Prints one markdown table: per set, its files, the metrics with files outside the
reference (how many of the set's files, below or above its range), and the scores; each
set's health report is written to ``DIR/NAME.json``.

    .venv/bin/python scripts/health_check.py RUN --reference REF.json \\
        --set nominal=SIM/nominal --set stand-in=SIM/standin ... --out DIR

A set may name reader options after ``::``, as ``classify`` takes them, and where its
files hold no labels (pytpc) the run files they were copied from after ``@@`` (labels
matched by run and event id): ``--set "pytpc copy=COPIES::--format pytpc@@SIM/nominal"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from formats_check import classify, scores, truth  # noqa: E402

from data_prep.build import expand_inputs  # noqa: E402
from data_prep.health import (  # noqa: E402
    METRICS,
    measure_files,
    outside,
    read_health,
    reference_ranges,
    write_health,
)


def flagged_metrics(healths, ranges) -> str:
    """``metric (k of n, below|above)`` for each metric with files outside the
    reference's range, most files first."""
    found: dict[str, list[str]] = {}
    for h in healths:
        for name, value, low, _ in outside(h, ranges):
            found.setdefault(name, []).append("below" if value < low else "above")
    ordered = sorted(found.items(), key=lambda kv: (-len(kv[1]), list(METRICS).index(kv[0])))
    return (
        ", ".join(
            f"{name} ({len(sides)} of {len(healths)}, {'/'.join(sorted(set(sides)))})"
            for name, sides in ordered
        )
        or "none"
    )


def reader_settings(text: str) -> tuple[str, dict, list[str]]:
    """``--format``, the reader options and the arguments themselves, from ``text``."""
    from attpc_classify.commands.preprocess import add_reader_arguments, reader_options

    parser = argparse.ArgumentParser()
    add_reader_arguments(parser)
    extra = text.split()
    args = parser.parse_args(extra)
    return args.format, reader_options(args), extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="trained run (its preprocessing measures health)")
    ap.add_argument("--reference", type=Path, nargs="+", required=True,
                    help="health report(s) JSON of the training simulation")  # fmt: skip
    ap.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from attpc_classify.checkpoint import read_info

    config = read_info(args.run)[0].image_config
    reference = [h for p in args.reference for h in read_health(p)]
    ranges = reference_ranges(reference)
    print(f"reference: {len(reference)} files; ranges {json.dumps(ranges)}", file=sys.stderr)
    names = ["proton", "carbon", "other"]
    print("| test set | files | metrics outside the reference (files) | proton F1 | macro-F1 |")
    print("|---|---|---|---|---|")
    for item in args.sets:
        name, _, where = item.partition("=")
        where, _, originals = where.partition("@@")
        directory, _, options = where.partition("::")
        fmt, reader, extra = reader_settings(options)
        files = expand_inputs([directory])
        healths = measure_files(files, config, format=fmt, reader_options=reader)
        write_health(args.out / f"{name}.json", healths, config, reference)
        rows = classify(args.run, files, args.out / f"{name}.csv", tuple(extra))
        labels = truth(expand_inputs([originals]) if originals else files)
        f1, macro = ("-", "-") if isinstance(rows, str) else scores(rows, labels, names,
                                                                       args.seed)  # fmt: skip
        print(f"| {name} | {len(files)} | {flagged_metrics(healths, ranges)} | {f1} | {macro} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
