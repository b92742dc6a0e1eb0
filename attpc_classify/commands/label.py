"""``attpc-classify label RUN_FILE... --labels labels.csv [--model RUN]``: label by hand.

Examples::

    attpc-classify label run_0101.h5 run_0102.h5 --model runs/cnn128 --labels labels.csv
    attpc-classify label run_0101.h5 --model runs/cnn128 --labels l.csv \\
        --predicted proton --p-max 0.8                                    # review a class
    attpc-classify label run_0101.h5 --labels labels.csv --order random      # no model
    attpc-classify label real.h5 --labels labels.csv --write-images real_labelled.h5

Starts a local web page (127.0.0.1, a free port unless --port) that shows one event at a
time: its xy, zy and zx views, a 3-D view of the point cloud, the model's probabilities,
and buttons / keys for proton, carbon, other, skip and back. Every label is saved to the
labels file at once (atomically); a rerun resumes at the first event not labelled yet.
``--write-images OUT`` instead copies an image file (``preprocess`` of the same run
files) with its labels taken from the labels file, for ``train`` and ``evaluate``.
See docs/labelling.md.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from attpc_classify.commands.preprocess import add_reader_arguments

    parser.description = "Label events by hand in a local web page, least certain first."
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", metavar="RUN_FILE", help="point-cloud or image files")
    parser.add_argument(
        "--labels", required=True, type=Path, help="labels CSV (read, then added to)"
    )
    parser.add_argument("--model", metavar="RUN", help="run directory written by `train`")
    parser.add_argument(
        "--order",
        choices=("uncertain", "random", "file"),
        help="showing order (default: uncertain with --model, else file)",
    )
    parser.add_argument(
        "--random-share",
        type=float,
        default=0.2,
        help="uncertain order: share of places given to random events (default 0.2)",
    )
    parser.add_argument(
        "--predicted", action="append", default=[], metavar="CLASS",
        help="show only events the model calls CLASS (repeatable)",
    )  # fmt: skip
    parser.add_argument("--p-min", type=float, default=0.0, help="lowest p(predicted class)")
    parser.add_argument("--p-max", type=float, default=1.0, help="highest p(predicted class)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random order / share")
    parser.add_argument("--labeller", help="name written in each row (default: login name)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--skip-bad", action="store_true", help="leave out unreadable events")
    parser.add_argument("--device", default="cpu", help="model device: cpu | cuda | auto")
    parser.add_argument(
        "--write-images",
        type=Path,
        metavar="OUT",
        help="no page: copy the image file RUN_FILE to OUT with the labels file's labels",
    )
    add_reader_arguments(parser)


def _labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "anonymous")


def run(args: argparse.Namespace) -> int:
    import sys

    from attpc_classify.commands.preprocess import reader_options
    from data_prep.errors import InputError

    if args.labels.suffix.lower() != ".csv":
        raise InputError("the labels file must be a .csv", path=args.labels)
    if args.write_images is not None:
        from attpc_classify.label.store import apply_labels

        if len(args.inputs) != 1:
            raise InputError("--write-images takes exactly one image file")
        counts = apply_labels(args.inputs[0], args.labels, args.write_images)
        print(
            f"wrote {args.write_images}: {counts['labelled']} events labelled, "
            f"{counts['unlabelled']} without a label (-1), {counts['not_found']} label rows "
            "match no event of the image file"
        )
        return 0

    from tqdm import tqdm

    from attpc_classify.label.server import make_server, url
    from attpc_classify.label.session import Session, Settings

    settings = Settings(
        order=args.order or ("uncertain" if args.model else "file"),
        only=tuple(args.predicted),
        p_range=(args.p_min, args.p_max),
        random_share=args.random_share,
        seed=args.seed,
        skip_bad=args.skip_bad,
        labeller=args.labeller or _labeller(),
    )
    with tqdm(unit="ev", desc="reading", file=sys.stderr, leave=False) as bar:
        session = Session.open(
            args.inputs,
            args.labels,
            model=args.model,
            settings=settings,
            format=args.format,
            reader_options=reader_options(args),
            device=args.device,
            progress=bar.update,
        )
    try:
        server = make_server(session, args.port)
    except OSError as err:
        raise InputError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror}") from None
    state = session.state()
    print(
        f"{state['n_queue']} of {state['n_events']} events to review ({settings.order} order), "
        f"{state['n_labelled']} already labelled in {args.labels}"
        + (f"; skipped {session.n_skipped} bad events" if session.n_skipped else "")
    )
    print(f"open {url(server)} in a browser (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        session.close()
        print(f"{len(session.store)} events labelled in {args.labels}")
    return 0
