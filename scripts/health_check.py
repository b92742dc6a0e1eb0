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
        name, _, directory = item.partition("=")
        files = expand_inputs([directory])
        healths = measure_files(files, config)
        write_health(args.out / f"{name}.json", healths, config, reference)
        rows = classify(args.run, files, args.out / f"{name}.csv")
        f1, macro = ("-", "-") if isinstance(rows, str) else scores(rows, truth(files), names,
                                                                       args.seed)  # fmt: skip
        print(f"| {name} | {len(files)} | {flagged_metrics(healths, ranges)} | {f1} | {macro} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
