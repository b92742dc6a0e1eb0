"""``attpc-classify benchmark``: the transfer-strategy benchmark, one command.

Examples::

    attpc-classify benchmark --config configs/benchmark/transfer_cpu.yaml --out bench_cpu
    attpc-classify benchmark --config configs/benchmark/transfer_smoke.yaml --out /tmp/b \\
        grid.seeds=1
    attpc-classify benchmark --config configs/benchmark/transfer_cpu.yaml --out bench_cpu \\
        --report-only

Builds what it needs (simulation, images, pre-trained ViTs, learngenes) or reuses the
cached stages with matching config hashes, runs the grid with a progress bar, and writes
``OUT/results.csv``, ``OUT/results.md``, ``OUT/figures/`` and ``OUT/learngenes/``. Run the
same command again after an interruption: finished stages and cells are kept.

Settings: defaults in code <- ``--config`` YAML <- ``key=value``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class ElapsedFormatter(logging.Formatter):
    """``[  1.5 min] message``: minutes since the command started."""

    def __init__(self) -> None:
        super().__init__()
        self.t0 = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        return f"[{(time.perf_counter() - self.t0) / 60:5.1f} min] {record.getMessage()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML of BenchConfig overrides")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--cache", type=Path, help="stage cache directory (default OUT/cache; may be shared)"
    )
    parser.add_argument("--max-cells", type=int, help="run at most this many grid cells, then stop")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite results.md and figures from OUT/results.csv; train nothing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. grid.seeds=1 vit.width=128"
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from attpc_classify.cli import configure_logging
    from attpc_classify.config import load_config
    from attpc_classify.transfer.config import BenchConfig
    from data_prep.errors import InputError

    cfg = load_config(BenchConfig, args.config, args.overrides)
    if args.report_only:
        return _report_only(cfg, args.out)
    if args.max_cells is not None and args.max_cells < 0:
        raise InputError("--max-cells must be >= 0")

    from attpc_classify.transfer.benchmark import BenchCallbacks, run_benchmark

    quiet = args.quiet
    bars: dict[str, tqdm | None] = {"stage": None, "cells": None}
    # the library's lines (stages built or reused, jobs started) on stderr, timed
    level = logging.WARNING if quiet else logging.INFO
    elapsed = ElapsedFormatter()
    configure_logging(sys.stderr, formatter=elapsed, level=level)
    write = logger.info

    def stage(name: str, total: int | None, unit: str) -> None:
        if bars["stage"] is not None:
            bars["stage"].close()
        bars["stage"] = (
            None
            if quiet
            else tqdm(
                total=total, unit=unit, desc=name, leave=False, dynamic_ncols=True, file=sys.stderr
            )
        )

    def work(n: int) -> None:
        if bars["stage"] is not None:
            bars["stage"].update(n)

    def plan(total: int, done: int) -> None:
        stage("grid", None, "")
        bars["stage"].close() if bars["stage"] is not None else None
        bars["stage"] = None
        write(f"grid: {total} cells, {done} already in results.csv")
        if not quiet:
            bars["cells"] = tqdm(
                total=total,
                initial=done,
                unit="cell",
                desc="grid",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def cell(c, rows) -> None:
        bar = bars["cells"]
        if bar is not None:
            last = rows[-1]
            bar.set_postfix_str(f"{c.name}: proton F1 {last['proton_f1']:.3f}", refresh=False)
            bar.update(1)

    callbacks = BenchCallbacks(stage=stage, work=work, plan=plan, cell=cell)
    try:
        summary = run_benchmark(
            cfg, args.out, cache_dir=args.cache, callbacks=callbacks, max_cells=args.max_cells
        )
    finally:
        for bar in bars.values():
            if bar is not None:
                bar.close()
    state = "complete" if summary.complete else "partial (run again to continue)"
    print(
        f"{args.out}: {summary.cells_done}/{summary.cells_total} cells ({state}); "
        f"{summary.cells_run} run now, {(time.perf_counter() - elapsed.t0) / 60:.1f} min"
    )
    if summary.complete:
        print(f"results: {args.out / 'results.csv'}, {args.out / 'results.md'}")
    return 0


def _report_only(cfg, out: Path) -> int:
    from attpc_classify.transfer.benchmark import rewrite_report

    path, n_rows = rewrite_report(cfg, out)
    print(f"{path} ({n_rows} rows)")
    return 0
