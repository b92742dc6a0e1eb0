"""``attpc-classify demo [--out DIR]``: the whole pipeline on a small simulated set.

Simulates labelled events, preprocesses them, trains a small CNN and gradient-boosted
trees on physics features on the 3-class and the binary task and a small ViT on the
3-class task, evaluates them (3-class models on both tasks) with bootstrap intervals,
compares them, classifies a raw run file and writes ``DIR/report.md``. See
`attpc_classify.demo`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from attpc_classify.demo import DEMO_MODELS, DemoConfig

    d = DemoConfig()
    parser.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    parser.add_argument(
        "--events",
        type=int,
        default=d.events,
        help=f"simulated events in total (default {d.events})",
    )
    parser.add_argument(
        "--test-files",
        type=int,
        default=d.test_files,
        help=f"last run files (of {d.events_per_file} events) held out as the test set "
        f"(default {d.test_files})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help=f"training epochs per model (default {d.epochs})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help=f"simulation / preprocessing / training processes (default {d.workers})",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument(
        "--tasks",
        default=",".join(d.tasks),
        help="tasks to train models for: multiclass and/or binary, comma-separated "
        "(default both; 3-class models are also scored on the binary task)",
    )
    parser.add_argument(
        "--models",
        default=",".join(d.models),
        help=f"models among {','.join(DEMO_MODELS)} (default {','.join(d.models)})",
    )
    parser.add_argument(
        "--n-boot", type=int, default=d.n_boot, help=f"bootstrap resamples (default {d.n_boot})"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete DIR's earlier demo output first instead of reusing it",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import shutil
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from attpc_classify.demo import DEMO_MODELS, DemoConfig, run_demo
    from data_prep.errors import InputError

    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(DEMO_MODELS))
    if unknown or not models:
        raise InputError(f"unknown demo model(s) {unknown}; choose among {list(DEMO_MODELS)}")
    cfg = DemoConfig(
        events=args.events,
        test_files=args.test_files,
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
        tasks=tuple(t for t in args.tasks.split(",") if t),
        models={m: DEMO_MODELS[m] for m in models},
        n_boot=args.n_boot,
    )
    out = Path(args.out)
    if args.fresh and (out / ".stamps").is_dir():
        shutil.rmtree(out)  # only ever a directory the demo itself made

    bars: list = []

    def progress_factory(stage: str, total: int | None):
        for bar in bars:
            bar.close()
        bars.clear()
        bar = tqdm(
            total=total,
            desc=stage,
            unit="ev",
            leave=False,
            disable=True if args.quiet else None,  # None: no bar in non-TTY logs
            file=sys.stderr,
            dynamic_ncols=True,
        )
        bars.append(bar)
        return bar.update

    try:
        result = run_demo(out, cfg, progress_factory=progress_factory)
    finally:
        for bar in bars:
            bar.close()
    print(f"demo finished in {result.timings['total']:.0f} s; report: {result.report}")
    return 0
