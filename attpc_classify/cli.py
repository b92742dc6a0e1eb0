"""``attpc-classify``: one entry point, one module per sub-command.

Each command module under `attpc_classify.commands` defines ``add_arguments(parser)`` and
``run(args) -> int``; its one-line help lives here (`HELP`), so that ``--help`` imports no
command module. Modules are imported only when their command runs, so ``preprocess``
never pays for importing torch.

Library modules log through ``logging.getLogger(__name__)``; `configure_logging` (called
by `main`) sends those lines to stdout: plain lines when it is not a terminal (logs of
batch jobs), through ``tqdm.write`` when it is, so progress bars are cleared and redrawn
around each line instead of being torn.

Errors in what the user gave us (`data_prep.errors.InputError`) and file operations the
system refuses (`OSError`: disk full, permissions) become one line on stderr and exit
code 2, never a traceback. SIGTERM unwinds like Ctrl-C (exit 143, 130 for Ctrl-C;
`data_prep.interrupt`, which also catches a signal whose exception Python dropped); a
closed pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

from data_prep.errors import InputError
from data_prep.interrupt import Terminated, check_interrupt, handle_signals

#: command name -> module under attpc_classify.commands
COMMANDS: dict[str, str] = {
    "preprocess": "preprocess",
    "show": "show",
    "chips": "chips",
    "health": "health",
    "simulate": "simulate",
    "train": "train",
    "evaluate": "evaluate",
    "classify": "classify",
    "export": "export",
    "adapt": "adapt",
    "label": "label",
    "compare": "compare",
    "demo": "demo",
    "learngene": "learngene",
    "benchmark": "benchmark",
    "federate": "federate",
}

#: commands with sub-commands of their own (``learngene train``)
NESTED = frozenset({"learngene"})

#: one-line help per command, kept here so `--help` imports nothing heavy
HELP: dict[str, str] = {
    "preprocess": "point-cloud files -> image file (streaming, parallel, resumable)",
    "show": "save a PNG of one event: 3-D point cloud and its image views",
    "chips": "learn a run's AGET chips from its own chip fires (an electronics map CSV)",
    "health": "detector health of run files (pads, chips, sparks, beam, unit) vs a reference",
    "simulate": "labelled AT-TPC events with attpc-engine (proton / carbon / other)",
    "train": "train a classifier on an image file",
    "evaluate": "metrics, intervals and figures for a trained run on an image file",
    "classify": "per-event predictions for point-cloud or image files",
    "export": "a trained run as ONNX (fp32, optional int8) for `classify --engine onnxruntime`",
    "adapt": "adapt a run to an unlabelled target run (AdaBN + confident self-training)",
    "label": "label events by hand in a local web page, least certain first (active learning)",
    "compare": "binary vs 3-class results of several runs side by side",
    "demo": "simulate, preprocess, train, evaluate and report on a small built-in set",
    "learngene": "condense a teacher ViT into a learngene (TLEG, LeTs, inheritance)",
    "benchmark": "transfer-strategy benchmark: strategies x sizes x tasks",
    "federate": "GENE-FL vs FedAvg across labs with private data (Flower simulation)",
}


#: the packages whose loggers the command line shows (INFO and up)
LOGGED_PACKAGES = ("attpc_classify", "data_prep", "learngene")


class TqdmHandler(logging.StreamHandler):
    """A stream handler that writes through ``tqdm.write`` (bars stay intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # as logging.StreamHandler: report, never raise into the caller
            self.handleError(record)


def configure_logging(
    stream=None, *, formatter: logging.Formatter | None = None, level: int = logging.INFO
) -> logging.Handler:
    """Show the package loggers' lines on ``stream`` (default: the current stdout).

    Replaces the handler an earlier call installed (commands may call it again with their
    own stream or format); `remove_logging` takes it away.
    """
    stream = sys.stdout if stream is None else stream
    tty = getattr(stream, "isatty", lambda: False)()
    handler = TqdmHandler(stream) if tty else logging.StreamHandler(stream)
    handler.setFormatter(formatter or logging.Formatter("%(message)s"))
    handler._attpc_classify = True  # type: ignore[attr-defined]
    remove_logging()
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False  # one line per record, whatever the root logger has
    return handler


def remove_logging() -> None:
    """Undo `configure_logging` (the loggers go back to the root logger's handlers).

    The handlers are found on the loggers by their mark, not in a module-level list:
    under ``python -m attpc_classify.cli`` this module is loaded twice (``__main__`` and
    ``attpc_classify.cli``), and each copy must remove the other's handler too."""
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, "_attpc_classify", False)]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="attpc-classify",
        description="Classify AT-TPC events: readers, images, simulation, models, learngene.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {name: sub.add_parser(name, help=HELP[name]) for name in COMMANDS}
    return parser, subparsers


def parse_command(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; argparse's usual exit (code 2, one message) on bad input.

    The command name is found first, then only that module adds its arguments. Options
    and positionals may be mixed (``train --config gbt --out r a=b --quiet c=d``): a
    plain parse takes one run of positionals and refuses a second.
    """
    parser, subparsers = build_parser()
    name = next((a for a in argv if not a.startswith("-")), None)
    if name not in COMMANDS or argv[0] != name:
        return parser.parse_args(argv)  # help, or argparse's "invalid choice"
    module = importlib.import_module(f"attpc_classify.commands.{COMMANDS[name]}")
    sub = subparsers[name]
    module.add_arguments(sub)
    sub.set_defaults(_run=module.run, command=name)
    rest = argv[1:]
    if name in NESTED:  # a command with sub-commands of its own: argparse cannot intermix
        return sub.parse_args(rest)
    return sub.parse_intermixed_args(rest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_command(argv)
    if not getattr(args, "_run", None):
        build_parser()[0].print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    configure_logging()
    try:
        with handle_signals():
            code = int(args._run(args) or 0)
            check_interrupt()  # a signal whose exception was swallowed (data_prep.interrupt)
            sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
            return code
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `... | head`: the reader is gone. Point stdout at /dev/null so that the flush
        # at exit does not raise again, and end quietly as `yes | head` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as err:
        # The system refused a file operation (disk full, permissions, a vanished file):
        # one line naming the file, as for bad input.
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    finally:
        remove_logging()


if __name__ == "__main__":
    raise SystemExit(main())
