"""``attpc-classify chips``: learn a run's AGET chips from its own chip fires.

Examples::

    attpc-classify chips run_0042.h5 --out chips.csv
    attpc-classify classify RUN run_0042.h5 --out calls.csv --pad-electronics chips.csv
    attpc-classify chips runs/ --out chips.csv --format pytpc

Where the detector's electronics map (Spyral's ``pad_electronics.csv``) is at hand, give
it to ``--pad-electronics`` and skip this. Without it, the chip-fire rule takes 64
consecutive pad ids for a chip, which the AT-TPC is not wired as. A chip that fires
lights its 64 pads at one instant, again and again: this finds such groups in the files
(`data_prep.chipmap`) and writes them as an electronics map. Learn from the run itself,
all its events (a chip must have fired whole at least ``--min-fires`` times), or from any
run of the same detector. docs/sim-to-real.md, "Chips learned from the run".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attpc_classify.commands.preprocess import add_reader_arguments, reader_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Learn a run's AGET chips from its chip fires; write them as a map."
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", type=Path, help="point-cloud files or directories")
    parser.add_argument("--out", "-o", type=Path, required=True, help="electronics map CSV")
    parser.add_argument(
        "--min-fires", type=int, default=3, help="whole fires a chip needs to be learned (3)"
    )
    add_reader_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from data_prep.atomic import check_writable
    from data_prep.build import expand_inputs
    from data_prep.chipmap import ChipLearning, describe, learn_map
    from data_prep.errors import InputError

    if args.min_fires < 1:
        raise InputError("--min-fires must be at least 1")
    check_writable(args.out)
    files = expand_inputs(args.inputs)
    rules = ChipLearning(min_fires=args.min_fires)
    learned = learn_map(files, args.out, args.format, rules, **reader_options(args))
    print(f"{describe(learned, len(files))} -> {args.out}")
    if not learned.n_chips:
        print("no chip fired whole: the map groups pads as the rule does without one")
    return 0
