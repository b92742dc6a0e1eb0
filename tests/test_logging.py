"""Library lines go through stdlib logging; the command line shows them as plain lines off a
terminal and through ``tqdm.write`` on one (progress bars are redrawn, not torn)."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

from attpc_classify.cli import TqdmHandler, configure_logging, remove_logging


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream)
    try:
        assert type(handler) is logging.StreamHandler
        logging.getLogger("attpc_classify.engine").info("epoch 1/3  train_loss 0.5")
        logging.getLogger("attpc_classify.engine").debug("not shown at INFO")
        logging.getLogger("learngene.tleg").info("from the other library")
        logging.getLogger("someone.else").warning("not ours: left to the root logger")
    finally:
        remove_logging()
    assert stream.getvalue() == "epoch 1/3  train_loss 0.5\nfrom the other library\n"
    # undone: the package loggers propagate again and hold no handler of ours
    assert logging.getLogger("attpc_classify").handlers == []
    assert logging.getLogger("attpc_classify").propagate


def test_lines_clear_and_redraw_a_bar_on_a_terminal() -> None:
    stream = FakeTerminal()
    handler = configure_logging(stream)
    try:
        assert isinstance(handler, TqdmHandler)
        with tqdm(total=10, file=stream, desc="train", mininterval=0, ascii=True) as bar:
            bar.update(3)
            drawn = stream.getvalue()
            logging.getLogger("attpc_classify.demo").info("[2/6] preprocess")
            after = stream.getvalue()[len(drawn) :]
    finally:
        remove_logging()
    assert "train" in drawn  # the bar was on screen before the line
    # tqdm.write: the bar is cleared (carriage return), the line printed, the bar redrawn
    line_at = after.index("[2/6] preprocess\n")
    assert "\r" in after[:line_at] and "train" in after[line_at:]


def test_configure_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(first)
    configure_logging(second, level=logging.WARNING)
    try:
        logging.getLogger("attpc_classify.x").info("quiet")
        logging.getLogger("attpc_classify.x").warning("shown once")
    finally:
        remove_logging()
    assert first.getvalue() == "" and second.getvalue() == "shown once\n"


def test_a_second_copy_of_the_module_replaces_the_first_ones_handler() -> None:
    """Under ``python -m attpc_classify.cli`` the module is loaded twice (``__main__`` and
    ``attpc_classify.cli``); a command's own `configure_logging` from the other copy must
    still leave one handler, or every line prints twice."""
    import importlib.util

    import attpc_classify.cli as cli

    spec = importlib.util.spec_from_file_location("__main_copy__", cli.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    first, second = io.StringIO(), io.StringIO()
    copy.configure_logging(first)
    configure_logging(second)
    try:
        logging.getLogger("attpc_classify.x").info("once")
    finally:
        remove_logging()
    assert first.getvalue() == "" and second.getvalue() == "once\n"
    assert logging.getLogger("attpc_classify").handlers == []
