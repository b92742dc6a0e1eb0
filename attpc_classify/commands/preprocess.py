"""``attpc-classify preprocess``: point-cloud files -> one image file.

Examples::

    attpc-classify preprocess sim/run_0000.h5 sim/run_0001.h5 --out sim.h5
    attpc-classify preprocess sim/ --out sim.h5 --config configs/prep/paper128.yaml
    attpc-classify preprocess data.root --root-tree T --root-branch charge=q --out real.h5
    attpc-classify preprocess big_run.h5 --out big.h5 --skip-bad --resume   # after a kill
    attpc-classify preprocess labelled_run.h5 --out labelled.h5 --model runs/trees  # as RUN's
    attpc-classify preprocess data/ --out all.h5 --scheduler tcp://head:8786  # Dask cluster

Image settings: ImageConfig defaults <- ``--config`` YAML <- ``--set key=value`` <- the
flags below. Formats are recognised by content (Spyral, ATTPCROOT HDF5 export, pytpc,
ROOT); a directory stands for its files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

INPUT_FORMATS = ("auto", "spyral", "attpcroot", "pytpc", "root")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--views``, ``--size``, ``--charge``, ``--set`` (shared with show)."""
    parser.add_argument(
        "--config", type=Path, help="YAML of ImageConfig fields, e.g. configs/prep/default.yaml"
    )
    parser.add_argument("--views", help="comma-separated views among xy, zy, zx (e.g. xy,zy)")
    parser.add_argument("--size", type=int, help="image side in pixels")
    parser.add_argument(
        "--charge",
        choices=("amplitude", "integral"),
        help="Spyral charge column (ImageConfig.charge_column)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other ImageConfig field, e.g. --set voxel_grid=0 --set z_range=0,1000",
    )


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    """Reader options (shared with show)."""
    parser.add_argument(
        "--format", default="auto", choices=INPUT_FORMATS, help="input format (default: detect)"
    )
    parser.add_argument("--run", type=int, help="run number where a file records none")
    parser.add_argument("--root-tree", help="ROOT: tree name, when the file has several")
    parser.add_argument(
        "--root-branch",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="ROOT: branch for x, y, z, charge, event, run or label (e.g. charge=hit_q)",
    )
    parser.add_argument("--clock-mhz", type=float, help="pytpc: GET clock [MHz] (12.5)")
    parser.add_argument("--drift-velocity", type=float, help="pytpc: drift velocity [cm/us] (5.2)")
    parser.add_argument("--z-offset", type=float, help="pytpc: z of time bucket 0 [mm] (0)")
    parser.add_argument(
        "--frame",
        choices=("pytpc", "pytpc-flip-x", "simulation"),
        help="pytpc/ATTPCROOT: the file's frame, rotated into the simulation's (default: "
        "pytpc for pytpc files, simulation = as stored for ATTPCROOT; docs/simulation.md)",
    )
    parser.add_argument(
        "--length-mm",
        type=float,
        help="pytpc/ATTPCROOT: drift length about which z is flipped [mm] (1000)",
    )
    parser.add_argument(
        "--pad-electronics",
        metavar="CSV",
        help="the detector's electronics map (columns cobo, asad, aget, aget channel, pad, "
        "as Spyral's pad_electronics.csv): the chip-fire rule then groups the real AGET "
        "chips (default: 64 consecutive pad ids, the simulation's chips)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Point-cloud files -> one image file (streaming, parallel, resumable)."
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="point-cloud files or dirs")
    parser.add_argument("--out", "-o", required=True, type=Path, help="image file to write")
    add_image_arguments(parser)
    add_reader_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: all cores); ignored with --scheduler",
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip and count bad events instead of stopping"
    )
    parser.add_argument(
        "--resume", action="store_true", help="finish an interrupted run, reusing its parts"
    )
    parser.add_argument(
        "--reference",
        metavar="RUN_OR_IMAGES",
        help="charge_norm=quantile: map these inputs' charge quantiles onto those of a "
        "trained run (or its training image file), e.g. a test set for evaluate",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="RUN",
        help="preprocess as the trained RUN's own data were (its recorded image settings "
        "and charge quantiles): a labelled set to evaluate RUN on; no other image settings",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="events projected at once")
    parser.add_argument("--events-per-task", type=int, help="events per task/part (default ~2048)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from attpc_classify.scaleout import add_scheduler_arguments

    add_scheduler_arguments(parser)


def image_settings_given(args: argparse.Namespace) -> bool:
    """Whether the command line sets any image setting (``add_image_arguments``)."""
    return any(
        v not in (None, [])
        for v in (args.config, args.views, args.size, args.charge, args.overrides)
    )


def image_config(args: argparse.Namespace):
    """The ImageConfig of a command line (see the module docstring for precedence)."""
    from attpc_classify.config import load_config
    from data_prep.images import ImageConfig

    overrides = list(args.overrides)
    if args.views is not None:
        overrides.append(f"views={args.views}")
    if args.size is not None:
        overrides.append(f"size={args.size}")
    if args.charge is not None:
        overrides.append(f"charge_column={args.charge}")
    return load_config(ImageConfig, args.config, overrides)


def reader_options(args: argparse.Namespace) -> dict:
    """Reader options of a command line (only those given)."""
    from data_prep.errors import InputError
    from data_prep.readers.pytpc import DriftCalibration

    options: dict = {}
    if args.run is not None:
        options["run"] = args.run
    if args.root_tree is not None:
        options["tree"] = args.root_tree
    if args.root_branch:
        branches = {}
        for item in args.root_branch:
            role, sep, name = item.partition("=")
            if not sep or not role or not name:
                raise InputError(f"--root-branch {item!r} is not ROLE=NAME")
            branches[role] = name
        options["branches"] = branches
    if getattr(args, "frame", None) is not None:
        options["frame"] = args.frame
    if getattr(args, "length_mm", None) is not None:
        options["length_mm"] = args.length_mm
    if getattr(args, "pad_electronics", None):
        options["pad_electronics"] = args.pad_electronics
    drift = {
        "clock_mhz": args.clock_mhz,
        "drift_velocity": args.drift_velocity,
        "z_offset": args.z_offset,
    }
    drift = {k: v for k, v in drift.items() if v is not None}
    if drift:
        options["calibration"] = DriftCalibration(**drift)
    return options


def with_reference(config, reference: Path):
    """``config`` with the training charge quantiles of a run directory or image file."""
    from dataclasses import replace

    from data_prep.errors import InputError

    if reference.is_dir():
        from attpc_classify.checkpoint import read_info as read_run

        ref = read_run(reference)[0].image_config
    else:
        from data_prep.imagefile import read_info

        if not reference.exists():
            raise InputError("no such run or image file", path=reference)
        ref = read_info(reference)["image_config"]
    if config.charge_norm != "quantile" or not ref.charge_quantiles:
        raise InputError(
            "--reference needs charge_norm=quantile here and in the reference", path=reference
        )
    return replace(config, charge_quantiles=ref.charge_quantiles)


def model_image_config(args: argparse.Namespace):
    """``--model RUN``: the image settings RUN was trained on, its charge quantiles
    included (so ``--reference`` is implied), for files to evaluate RUN on."""
    from attpc_classify.checkpoint import read_info
    from data_prep.errors import InputError

    if image_settings_given(args) or args.reference:
        raise InputError(
            "--model takes RUN's own image settings: give no --config, --set, --views, "
            "--size, --charge or --reference with it"
        )
    return read_info(args.model)[0].image_config


def run(args: argparse.Namespace) -> int:
    import tqdm

    from attpc_classify.commands import event_bar
    from data_prep.build import build_images, keep_freed_memory

    keep_freed_memory()  # this process is ours: keep freed memory for reuse

    if args.model is not None:
        config = model_image_config(args)
    else:
        config = image_config(args)
        if args.reference:
            config = with_reference(config, Path(args.reference))
    options = reader_options(args)
    # No tqdm monitor thread: worker processes are forked, and forking a multi-threaded
    # process is asking for deadlocks.
    tqdm.tqdm.monitor_interval = 0
    bars: list[tqdm.tqdm] = []  # created once planning succeeded: errors stay one line

    def on_plan(total: int) -> None:
        bars.append(event_bar(total, None, quiet=args.quiet, unit_scale=True, smoothing=0.05))

    def progress(n: int) -> None:
        if bars:
            bars[0].update(n)

    build = build_images
    if args.scheduler:  # the same tasks and merge, run by Dask (docs/scale-out.md)
        from functools import partial

        from attpc_classify.scaleout import build_images_on, describe_client

        def on_client(client) -> None:
            if not args.quiet:
                print(describe_client(client), file=sys.stderr)

        build = partial(build_images_on, args.scheduler, retries=args.retries, on_client=on_client)
    try:
        summary = build(
            args.inputs,
            args.out,
            config,
            format=args.format,
            workers=args.workers,
            skip_bad=args.skip_bad,
            resume=args.resume,
            progress=progress,
            reader_options=options,
            batch_size=args.batch_size,
            events_per_task=args.events_per_task,
            on_plan=on_plan,
        )
    except KeyboardInterrupt:  # also SIGTERM (data_prep.interrupt.Terminated)
        for bar in bars:
            bar.close()
        from data_prep.build import parts_dir_for

        if parts_dir_for(args.out).is_dir():
            print("finished parts are kept: rerun with --resume to continue", file=sys.stderr)
        raise
    finally:
        for bar in bars:
            bar.close()
    if summary.discarded_parts:
        print(
            f"note: discarded {summary.discarded_parts} finished part(s) of an earlier "
            "interrupted run (--resume keeps them)",
            file=sys.stderr,
        )
    if summary.reused_tasks:
        print(f"resumed: reused {summary.reused_tasks} of {summary.tasks} tasks", file=sys.stderr)
    if not args.quiet:
        for path, (axis, note) in summary.beam_axes.items():
            x0, ax, y0, ay = axis[:4]
            print(f"beam axis of {path}: x = {x0:.1f} {ax:+.4f} z, y = {y0:.1f} {ay:+.4f} z "
                  f"(mm; {note})", file=sys.stderr)  # fmt: skip
    if summary.charge_units:
        from data_prep.quantiles import charge_unit_summary

        print(charge_unit_summary(summary.charge_units), file=sys.stderr)
    print(summary.describe())
    return 0
