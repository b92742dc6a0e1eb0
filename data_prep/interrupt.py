"""Signals that stop a run: SIGTERM raises `Terminated`, Ctrl-C `KeyboardInterrupt`, and
both are remembered.

Why remembered: Python runs a signal handler between any two bytecodes of the main
thread, also inside a weakref callback or a ``__del__`` method, and an exception raised
there is printed as "Exception ignored in ..." and dropped. CI saw it: a SIGTERM that
landed in a `weakref.WeakValueDictionary` callback let ``classify`` run to its end and
exit 0. So long loops call `check_interrupt` once per batch: it raises the remembered
signal's exception again, and the run stops at the next batch at the latest.

The Python documentation's note on signal handlers and exceptions describes the hazard;
a flag checked at safe points is its standard cure. The handler still raises at once,
so a run blocked in one long call (reading a file, a model step) stops without waiting
for a check; inside `deferred` it only remembers, for loops that check often and whose
calls take locks an exception must not leave held (`concurrent.futures.wait` locks every
future while it registers its waiter: a lock left held there stalls the pool's manager
thread, and the shutdown that joins it never returns).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit): unwound like Ctrl-C, so that
    workers stop, temporary files go and finished parts stay for ``--resume``."""


#: signals received while `handle_signals` is active, oldest first
_PENDING: list[int] = []
#: how many `deferred` blocks are open: while > 0 the handler only remembers
_DEFERRED = 0


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: object) -> None:
    _PENDING.append(signum)  # before raising: the raise may be swallowed
    if not _DEFERRED:
        raise _exception(signum)


def check_interrupt() -> None:
    """Raise the exception of a SIGTERM or Ctrl-C received earlier, if any.

    Does nothing outside `handle_signals` (library use in a notebook, a worker)."""
    if _PENDING:
        raise _exception(_PENDING[0])


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block a SIGTERM or Ctrl-C is only remembered; the block's own
    `check_interrupt` calls raise it (and any call after the block). For a loop that
    checks at least every fraction of a second, such as `data_prep.tasks.run_tasks`."""
    global _DEFERRED
    _DEFERRED += 1
    try:
        yield
    finally:
        _DEFERRED -= 1


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise (and are remembered) while the block runs; the previous
    handlers come back after it. Only the main thread may set handlers: elsewhere (a
    test runner's thread, an app server) the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _PENDING.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _PENDING.clear()
