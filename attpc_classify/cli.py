"""``attpc-classify``: one entry point, one module per sub-command.

Each command module under `attpc_classify.commands` defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
command runs, so ``preprocess`` never pays for importing torch.

Errors in what the user gave us (`data_prep.errors.InputError`) become one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from data_prep.errors import InputError

#: command name -> module under attpc_classify.commands
COMMANDS: dict[str, str] = {
    "preprocess": "preprocess",
    "show": "show",
    "simulate": "simulate",
    "train": "train",
    "evaluate": "evaluate",
    "classify": "classify",
    "label": "label",
    "compare": "compare",
    "demo": "demo",
    "learngene": "learngene",
    "benchmark": "benchmark",
}

#: one-line help per command, kept here so `--help` imports nothing heavy
HELP: dict[str, str] = {
    "preprocess": "point-cloud files -> image file (streaming, parallel, resumable)",
    "show": "save a PNG of one event: 3-D point cloud and its image views",
    "simulate": "labelled AT-TPC events with attpc-engine (proton / carbon / other)",
    "train": "train a classifier on an image file",
    "evaluate": "metrics, intervals and figures for a trained run on an image file",
    "classify": "per-event predictions for point-cloud or image files",
    "label": "label events by hand in a local web page, least certain first (active learning)",
    "compare": "binary vs 3-class results of several runs side by side",
    "demo": "simulate, preprocess, train, evaluate and report on a small built-in set",
    "learngene": "condense a teacher ViT into a learngene (TLEG, LeTs, inheritance)",
    "benchmark": "transfer-strategy benchmark: strategies x sizes x tasks",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="attpc-classify",
        description="Classify AT-TPC events: readers, images, simulation, models, learngene.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {name: sub.add_parser(name, help=HELP[name]) for name in COMMANDS}
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, subparsers = build_parser()
    # Parse the command name first, then let only that module add its arguments.
    name = next((a for a in argv if not a.startswith("-")), None)
    if name in COMMANDS:
        module = importlib.import_module(f"attpc_classify.commands.{COMMANDS[name]}")
        module.add_arguments(subparsers[name])
        subparsers[name].set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
