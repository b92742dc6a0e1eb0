"""``attpc-classify classify RUN INPUT... --out predictions.csv|.h5``: one row per event.

Examples::

    attpc-classify classify runs/vit_tiny run_0101.h5 run_0102.h5 --out predictions.csv
    attpc-classify classify runs/cnn_binary real.root --root-tree T --out p.h5 --skip-bad
    attpc-classify classify runs/vit_tiny data/run_*.h5 --out p.h5 --scheduler local:8  # Dask
    attpc-classify classify runs/cnn run_0101.h5 --out p.csv --engine onnxruntime  # ONNX

Inputs are point-cloud files in any supported format (the model's recorded preprocessing
is applied) or image files preprocessed exactly as the model's training data. Reader
options are the same as ``preprocess``'s; give the same ones you preprocessed with.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from attpc_classify.commands.preprocess import add_reader_arguments

    # dest run_dir: `--run` (a reader option, the run number) is another argument
    parser.add_argument("run_dir", metavar="RUN", help="run directory written by `train`")
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="point-cloud files (any supported format) or image files",
    )
    parser.add_argument("--out", required=True, help="predictions .csv or .h5/.hdf5")
    parser.add_argument("--batch-size", type=int, default=256, help="events per batch")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="inference precision (auto = bf16 on CPUs with native bf16, else fp32)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip and count unreadable events instead of stopping",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (torch engine)")
    parser.add_argument(
        "--engine",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch (CPU or GPU) or onnxruntime (CPU; needs `export RUN --onnx` first)",
    )
    parser.add_argument(
        "--onnx-model",
        choices=("auto", "fp32", "int8"),
        default="auto",
        help="with --engine onnxruntime: which exported model (auto = int8 when exported)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes (read, project and infer in each; threads = CPUs / workers)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--learn-chips",
        action="store_true",
        help="without the electronics map: learn the AGET chips from the inputs' own chip "
        "fires first (`attpc-classify chips`; the map goes to OUT's name + _chips.csv)",
    )
    parser.add_argument(
        "--no-health",
        action="store_true",
        help="skip the check of the inputs' detector health against RUN/health.json "
        "(`attpc-classify health`; done when that report is there)",
    )
    # the reader options of preprocess: format, run, ROOT tree/branches, pytpc drift
    add_reader_arguments(parser)
    from attpc_classify.scaleout import add_scheduler_arguments

    add_scheduler_arguments(parser)
    parser.add_argument(
        "--events-per-task",
        type=int,
        help="with --scheduler or --workers: events per task (default 16 or 2 batches)",
    )


def run(args: argparse.Namespace) -> int:

    from attpc_classify.commands import event_bar
    from attpc_classify.commands.preprocess import reader_options
    from data_prep.errors import InputError

    bar = None
    if args.engine == "torch" and args.onnx_model != "auto":
        raise InputError("--onnx-model goes with --engine onnxruntime")
    engine = args.engine if args.engine == "torch" else f"onnxruntime:{args.onnx_model}"
    if engine != "torch" and args.precision not in ("auto", "fp32"):
        raise InputError(
            f"--precision {args.precision} is a torch option; the onnxruntime engine runs "
            "the exported model as it is (fp32, or int8 with --onnx-model int8)"
        )

    if args.learn_chips:
        _learn_chips(args)

    def on_plan(total: int) -> None:
        # opened once every input is checked, so a mismatch error prints only its line
        nonlocal bar
        bar = event_bar(total, "classify", quiet=args.quiet)

    common = dict(
        format=args.format,
        batch_size=args.batch_size,
        precision=args.precision,
        skip_bad=args.skip_bad,
        progress=lambda n: bar.update(n),
        on_plan=on_plan,
        reader_options=reader_options(args),
        engine=engine,
    )
    try:
        if args.scheduler:  # one task per file or event range, run by Dask (docs/scale-out.md)
            summary = _classify_on_cluster(args, common)
        else:
            from attpc_classify.predict import classify_files, load_predictor

            trained = load_predictor(args.run_dir, device=args.device, engine=engine)
            summary = classify_files(
                trained, args.inputs, args.out, workers=args.workers, device=args.device,
                events_per_task=args.events_per_task, **common,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    _report(summary)
    if not args.no_health:
        _check_health(args, summary)
    return 0


def _check_health(args: argparse.Namespace, summary, show: int = 10) -> None:
    """Where the run keeps its training simulation's health report, each point-cloud
    input's numbers outside its ranges (`data_prep.health`): the run is not the
    simulation there. Image files are skipped: their points are gone. The charge units
    and beam lines classify measured (``summary``) are the report's: reused."""
    from pathlib import Path

    from attpc_classify.checkpoint import read_info
    from attpc_classify.commands.preprocess import reader_options
    from data_prep.build import expand_inputs
    from data_prep.errors import plural
    from data_prep.health import MODEL_REFERENCE, Known, check_files, not_measured, outside_line
    from data_prep.readers import detect_format

    reference = Path(args.run_dir) / MODEL_REFERENCE

    def points(path: Path) -> bool:
        return (detect_format(path) if args.format == "auto" else args.format) != "images"

    files = [f for f in expand_inputs(args.inputs) if points(f)]
    if not files:
        return
    if not reference.is_file():  # said, so a silent run is not read as a healthy one
        print(f"health not checked: {reference} is missing (attpc-classify health SIM_DIR "
              f"--model {args.run_dir} --out {reference} writes it)", file=sys.stderr)  # fmt: skip
        return
    known = Known(summary.charge_units, summary.beam_axes).of(files)
    config = read_info(args.run_dir)[0].image_config
    common = dict(format=args.format, reader_options=reader_options(args), known=known)
    checked, failed = None, []
    if args.workers > 1 and len(files) > 1:  # the files at once, as they were classified
        from attpc_classify.predict import worker_pool

        with worker_pool(args.workers) as pool:
            try:
                checked = check_files(files, config, reference, executor=pool, **common)
            except Exception:
                checked = None  # a file failed: each on its own below, to name it
    if checked is None:
        checked = []
        for path in files:
            try:  # the calls are written: a file health cannot measure is only named
                checked += check_files([path], config, reference, **common)
            except Exception as err:
                failed.append(not_measured(path, err))
    flagged = [(h, found) for h, found in checked if found]
    more = " (attpc-classify health for the table)" if flagged else ""
    print(f"health against {reference}: {plural(len(flagged), 'file')} of {len(checked)} with "
          f"numbers outside the training simulation's ranges{more}", file=sys.stderr)  # fmt: skip
    for h, found in flagged[:show]:
        print(outside_line(h, found), file=sys.stderr)
    if len(flagged) > show:
        print(f"... and {len(flagged) - show} more", file=sys.stderr)
    for reason in failed[:show]:
        print(f"health not measured: {reason}", file=sys.stderr)


def _learn_chips(args: argparse.Namespace) -> None:
    """Learn the inputs' chips into OUT's name + ``_chips.csv`` and read with that map."""
    from attpc_classify.commands.preprocess import reader_options
    from data_prep.build import expand_inputs
    from data_prep.chipmap import describe, learn_map, map_beside
    from data_prep.errors import InputError

    if args.pad_electronics:
        raise InputError("give --pad-electronics or --learn-chips, not both")
    chips = map_beside(args.out)
    files = expand_inputs(args.inputs)
    learned = learn_map(files, chips, args.format, **reader_options(args))
    # a file written, as "wrote OUT" is: said even with --quiet (which hides progress)
    print(f"{describe(learned, len(files))} -> {chips}", file=sys.stderr)
    args.pad_electronics = str(chips)


def _classify_on_cluster(args: argparse.Namespace, common: dict):
    import sys

    from attpc_classify.scaleout import classify_files_on, describe_client

    def on_client(client) -> None:
        if not args.quiet:
            print(describe_client(client), file=sys.stderr)

    return classify_files_on(
        args.scheduler,
        args.run_dir,
        args.inputs,
        args.out,
        device=args.device,
        events_per_task=args.events_per_task,
        retries=args.retries,
        on_client=on_client,
        **common,
    )


def run_mix_lines(by_run: dict[int, dict[str, int]]) -> list[str]:
    """``  run 12: 100 events, proton 24 (24 %), carbon 13 (13 %), other 63 (63 %)``."""
    lines = []
    for run, counts in by_run.items():
        n = sum(counts.values())
        shares = ", ".join(f"{k} {v} ({100 * v / n:.0f} %)" for k, v in counts.items())
        lines.append(f"  run {run}: {n} events, {shares}")
    return lines


def _report(summary) -> None:
    """The summary lines (the same with and without --scheduler)."""
    from data_prep.errors import plural

    if summary.charge_units:
        from data_prep.quantiles import charge_unit_summary

        print(charge_unit_summary(summary.charge_units), file=sys.stderr)
    counts = ", ".join(f"{k} {v}" for k, v in summary.predicted.items())
    print(
        f"{plural(summary.n_events, 'event')} classified ({counts}) "
        f"in {summary.wall_s:.1f} s, {summary.events_per_s:.0f} events/s"
    )
    if len(summary.predicted_by_run) > 1:  # one line per run: a run whose mix stands out
        for line in run_mix_lines(summary.predicted_by_run):
            print(line)
    if summary.n_skipped:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items()))
        print(f"skipped {plural(summary.n_skipped, 'bad event')} ({reasons})")
    if summary.n_empty:
        print(
            f"{plural(summary.n_empty, 'event')} without a point of charge > 0 inside the "
            "image ranges: label 'empty', no probabilities"
        )
    if summary.n_sparks:
        print(
            f"{plural(summary.n_sparks, 'event')} with a spark: its points removed before "
            "projection (structured-noise rules), the event classified on the rest"
        )
    print(f"wrote {summary.out}")
