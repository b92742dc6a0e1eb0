"""``attpc-classify learngene``: condense a trained teacher into a learngene, or inspect one.

Examples::

    attpc-classify learngene train --method tleg --teacher runs/vit_multiclass \\
        --data sim.h5 --config configs/learngene/tleg.yaml --out learngenes/tleg
    attpc-classify learngene train --method lets --teacher runs/vit_multiclass \\
        --data sim.h5 --config configs/learngene/lets.yaml --out learngenes/lets
    attpc-classify learngene train --method inherit --teacher runs/vit_multiclass \\
        --data sim.h5 --out learngenes/heur learngene.learngene_depth=2
    attpc-classify learngene info learngenes/tleg
    attpc-classify train --data sim.h5 model.name=vit model.init=learngene:learngenes/tleg \\
        model.depth=6

The work is `attpc_classify.transfer.learngene.train_learngene`; this module parses the
arguments and draws the progress bar.

Settings: defaults in code <- ``--config`` YAML <- ``key=value`` <- the options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attpc_classify.transfer.learngene import (
    METHODS,
    LearngeneConfig,
    info_lines,
    train_learngene,
)
from data_prep.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="make a learngene from a trained teacher run")
    train.add_argument("--method", choices=METHODS, help="learngene.method")
    train.add_argument(
        "--teacher",
        required=True,
        type=Path,
        metavar="RUN",
        help="run directory of the teacher (ancestry) model",
    )
    train.add_argument("--data", help="training image file (data.path)")
    train.add_argument("--val", help="separate validation image file (data.val_path)")
    train.add_argument("--config", type=Path, help="YAML of LearngeneConfig overrides")
    train.add_argument(
        "--out",
        required=True,
        type=Path,
        help="learngene path: writes OUT.safetensors, OUT.json, OUT.aux/",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue an interrupted Aux-Net training in OUT.aux/"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="e.g. learngene.depth=12 distill.alpha=0.9",
    )
    info = sub.add_parser("info", help="print a learngene's metadata and parameter counts")
    info.add_argument("path", type=Path, help="learngene file (.safetensors/.json) or stem")


def run(args: argparse.Namespace) -> int:
    import learngene

    try:
        if args.action == "info":
            for line in info_lines(learngene.load_learngene(args.path)):
                print(line)
            return 0
        return _train(args)
    except learngene.LearngeneError as err:
        raise InputError(str(err)) from None


def resolve_config(args: argparse.Namespace) -> LearngeneConfig:
    """Defaults <- ``--config`` <- ``key=value`` <- ``--method/--data/--val``."""
    from attpc_classify.config import from_dict, load_config, to_dict

    data = to_dict(load_config(LearngeneConfig, args.config, args.overrides))
    if args.method is not None:
        data["learngene"]["method"] = args.method
    if args.data is not None:
        data["data"]["path"] = args.data
    if args.val is not None:
        data["data"]["val_path"] = args.val
    return from_dict(LearngeneConfig, data)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    cfg = resolve_config(args)
    out = args.out.with_suffix("") if args.out.suffix in (".safetensors", ".json") else args.out
    aux_dir = out.with_name(out.name + ".aux")
    if not args.resume and out.with_name(out.name + ".json").exists():
        raise InputError("a learngene is already there: choose another --out", path=out)
    bar = (
        None if args.quiet else tqdm(unit="img", desc="learngene", dynamic_ncols=True, leave=False)
    )

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        path = train_learngene(
            cfg,
            teacher_dir=args.teacher,
            out=out,
            aux_dir=aux_dir,
            resume=args.resume,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    import learngene

    gene = learngene.load_learngene(path)
    print(f"{path}: {gene.method} learngene, {gene.num_parameters:,} parameters")
    return 0
