"""``attpc-classify export RUN --onnx [--out DIR] [--int8 dynamic|static]``.

Examples::

    attpc-classify export runs/cnn --onnx                    # RUN/onnx/model.onnx + onnx.json
    attpc-classify export runs/cnn --onnx --int8 static      # + model.int8.onnx, calibrated
    attpc-classify classify runs/cnn run_0101.h5 --out p.csv --engine onnxruntime

The export directory holds the models, the preprocessing and the decision rule
(``onnx.json``); see docs/inference.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `train`")
    parser.add_argument("--onnx", action="store_true", help="export as ONNX (the one format)")
    parser.add_argument("--out", help="export directory (default RUN/onnx)")
    parser.add_argument(
        "--int8",
        choices=("dynamic", "static"),
        help="also write an int8 model: dynamic (matrix products) or static (calibrated)",
    )
    parser.add_argument(
        "--calibration",
        help="image file to calibrate and check on (default: the run's training file)",
    )
    parser.add_argument(
        "--calibration-events", type=int, default=512, help="events drawn for calibration"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration draw")


def run(args: argparse.Namespace) -> int:

    from attpc_classify.export import export_onnx
    from data_prep.errors import InputError

    if not args.onnx:
        raise InputError("give --onnx (ONNX is the one export format)")
    summary = export_onnx(
        args.run,
        args.out,
        int8=args.int8,
        calibration=args.calibration,
        calibration_events=args.calibration_events,
        seed=args.seed,
    )
    checks = summary.checks
    for kind, file in summary.files.items():
        line = f"{kind}: {summary.out / file}"
        if kind in checks:
            c = checks[kind]
            line += (
                f"  (max |p - p_torch| {c['max_abs_diff_p']:.2g} on {c['n_events']} "
                f"events, {c['labels_changed']} labels changed)"
            )
        print(line)
    if not checks:
        print("no image file to check on (the run's training file is gone): checks skipped")
    print(f"wrote {summary.out / 'onnx.json'}")
    return 0
