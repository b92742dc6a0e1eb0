"""``attpc-classify compare RUN... [--data FILE] [--out DIR]``: runs side by side."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    parser.add_argument("--data", help="image file: evaluate runs that have no evaluation on it")
    parser.add_argument(
        "--out", default="compare_out", help="directory for compare.md, compare.csv, compare.png"
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--title", default="", help="title of the table and figure")


def run(args: argparse.Namespace) -> int:
    from attpc_classify.evaluate import compare_runs

    result = compare_runs(
        args.runs, args.out, data=args.data, n_boot=args.n_boot, seed=args.seed, title=args.title
    )
    print(result["table"], end="")
    print(f"wrote {result['markdown']}, {result['csv']}, {result['figure']}")
    return 0
