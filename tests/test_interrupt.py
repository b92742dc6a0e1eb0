"""data_prep.interrupt: SIGTERM raises at once, or, inside `deferred`, at the next
`check_interrupt`; `run_tasks` stops at its next check and cancels what it had not run."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from data_prep.interrupt import Terminated, check_interrupt, deferred, handle_signals
from data_prep.tasks import run_tasks


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs in the main thread between two bytecodes


def test_deferred_signal_is_raised_by_the_next_check_only() -> None:
    with handle_signals():
        with pytest.raises(Terminated):
            _deliver(signal.SIGTERM)  # outside deferred: at once
        with deferred():
            _deliver(signal.SIGTERM)  # remembered, not raised
            with pytest.raises(Terminated):
                check_interrupt()
        with pytest.raises(Terminated):
            check_interrupt()  # still remembered after the block


def _slow(task: int) -> int:
    time.sleep(0.3)
    return task


def test_run_tasks_stops_at_its_next_check_and_cancels_the_rest() -> None:
    done: list[int] = []
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    with handle_signals(), ThreadPoolExecutor(max_workers=2) as pool:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(Terminated):
            run_tasks(pool, _slow, range(40), on_result=lambda task, out: done.append(out))
        stopped = time.monotonic() - t0
    timer.join()
    # 40 tasks of 0.3 s on two threads take 6 s; the stop comes within a check (0.2 s)
    # of the signal, plus the tasks the two threads hold
    assert stopped < 1.5 and len(done) < 10
