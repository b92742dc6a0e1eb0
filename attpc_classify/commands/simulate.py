"""``attpc-classify simulate --config NAME --events N --out DIR``: labelled run files.

Loads a `data_prep.simulate.SimConfig` (code defaults <- YAML <- ``--set key=value``) and
hands it to `data_prep.simulate.simulate`. ``--config`` takes a path or the name of a
preset in configs/sim/ (``e15503b_nominal``, ``e15503b_shifted``, ``tiny``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_prep.errors import plural


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="e15503b_nominal",
        help="YAML file or preset name in configs/sim/ (default: e15503b_nominal)",
    )
    parser.add_argument("--events", type=int, required=True, help="events in total")
    parser.add_argument("--out", required=True, help="output directory for run_XXXX.h5")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--events-per-file", type=int, default=100, help="events per run file (default 100)"
    )
    parser.add_argument(
        "--first-run",
        type=int,
        default=0,
        help="run number of the first file (default 0); give each simulation its own range "
        "when several feed one image file",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep finished run files and write the rest"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set gas.pressure_torr=19.5 (repeatable)",
    )
    parser.add_argument(
        "--stats", action="store_true", help="print per-class track statistics at the end"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from attpc_classify.config import load_config
    from data_prep.simulate import SimConfig, simulate

    config = load_config(SimConfig, args.config, args.overrides)
    bar = None

    def progress(n: int) -> None:
        # opened on the first event, so a config or output error prints only its line
        nonlocal bar
        if bar is None:
            bar = tqdm(total=args.events, unit="ev", desc="simulate", file=sys.stderr, disable=None)
        bar.update(n)

    try:
        summary = simulate(
            config,
            args.events,
            Path(args.out),
            seed=args.seed,
            workers=args.workers,
            events_per_file=args.events_per_file,
            resume=args.resume,
            first_run=args.first_run,
            progress=None if args.quiet else progress,
        )
    finally:
        if bar is not None:
            bar.close()
    print(
        f"{plural(summary.n_events, 'event')} ({config.name}, seed {args.seed}) in "
        f"{plural(len(summary.files), 'run file')}, {summary.seconds:.1f} s"
        + (f"; kept {plural(len(summary.resumed), 'finished file')}" if summary.resumed else "")
    )
    print(f"{'class':<8} {'events':>7} {'rejected':>9} {'mean points':>12}")
    for name, count in summary.classes.items():
        print(
            f"{name:<8} {count:>7} {summary.rejected[name]:>9} {summary.mean_points[name]:>12.1f}"
        )
    channels = ", ".join(f"{k} {v}" for k, v in summary.channels.items() if v)
    print(f"channels: {channels}")
    print(
        "rejected = reaction draws redrawn for fewer than "
        f"{config.min_signal_points} points above threshold "
        f">= {config.min_signal_radius_mm:g} mm from the beam"
    )
    if args.stats:
        from data_prep.sim.stats import class_statistics

        stats = class_statistics(summary.files)
        print(f"{'class':<8} {'track mm':>9} {'points/mm':>10} {'ADC/mm':>8} {'amplitude':>10}")
        for name, s in stats.items():
            print(
                f"{name:<8} {s['median_track_mm']:>9.0f} {s['median_points_per_mm']:>10.2f} "
                f"{s['median_charge_per_mm']:>8.0f} {s['median_amplitude_adc']:>10.0f}"
            )
        print("(medians over events; track = ejectile, farthest point from the vertex)")
    print(f"wrote {summary.files[0]} ... {summary.files[-1].name}")
    return 0
