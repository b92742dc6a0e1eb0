"""`data_prep.tasks.run_tasks`, the one loop of preprocess and classify, without Dask (the
cluster's retries are tested in tests/test_scaleout.py)."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from data_prep.errors import InputError
from data_prep.tasks import Refused, Refusing, run_tasks


def _bad_event(task: int, ran: list[int]) -> int:
    """Task 1 is bad input; the later ones are slow enough to be cancelled."""
    ran.append(task)
    if task == 1:
        raise InputError("bad event", path="run.h5", event=task)
    if task > 1:
        time.sleep(0.5)
    return task * 10


def test_bad_input_travels_as_a_result_named_like_the_task() -> None:
    wrapped = pickle.loads(pickle.dumps(Refusing(_bad_event)))  # as a worker receives it
    assert wrapped.__name__ == "_bad_event"  # Dask names its task after this
    out = wrapped(1, [])
    assert isinstance(out, Refused) and str(out.error) == "run.h5: event 1: bad event"
    assert wrapped(0, []) == 0


def test_results_arrive_and_the_first_failure_cancels_the_rest() -> None:
    got: dict[int, int] = {}
    with ThreadPoolExecutor(2) as ex:
        run_tasks(ex, _bad_event, [0, 2, 3], [], on_result=got.__setitem__)
    assert got == {0: 0, 2: 20, 3: 30}

    ran: list[int] = []
    with ThreadPoolExecutor(1) as ex, pytest.raises(InputError, match="event 1: bad event"):
        run_tasks(ex, _bad_event, range(6), ran, on_result=got.__setitem__)
    assert ran[:2] == [0, 1] and 4 not in ran and 5 not in ran  # cancelled before they ran
