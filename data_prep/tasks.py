"""Run planned tasks on any `concurrent.futures.Executor`: the one loop of every parallel job.

``preprocess`` (`data_prep.build`) and ``classify`` (`attpc_classify.predict`) plan their
work as picklable tasks and hand them to `run_tasks` with whatever executor the user
chose: our process pool, or Dask's (``client.get_executor(pure=False, retries=N)``,
`attpc_classify.scaleout`). Results arrive as tasks finish; the first failure cancels
the rest.

Bad input (`InputError`) comes back as the task's *result* (`Refused`) and is raised
here: an executor that reruns failed tasks (Dask's ``retries``) must not reread a bad
event N more times before the one-line error reaches the user, while a flaky file system
(``OSError``) is worth a rerun.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from data_prep.errors import InputError
from data_prep.interrupt import check_interrupt, deferred

T = TypeVar("T")


@dataclass
class Refused:
    """The `InputError` a task returned instead of raising it (not retried)."""

    error: InputError


class Refusing:
    """``fn`` with `InputError` returned as `Refused`; picklable, named like ``fn``.

    The name matters to Dask: a task's key (and its dashboard label) is the function's
    ``__name__`` plus a random suffix, e.g. ``run_task-1f0c...``.
    """

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "task")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except InputError as err:
            return Refused(err)


def result(future: Future) -> Any:
    """A finished task's result; its `InputError` raised (here, once)."""
    out = future.result()
    if isinstance(out, Refused):
        raise out.error
    return out


def run_tasks(
    executor: Executor,
    fn: Callable[..., Any],
    tasks: Iterable[T],
    *args: Any,
    on_result: Callable[[T, Any], None],
    poll: Callable[[], None] | None = None,
    **kwargs: Any,
) -> None:
    """Run ``fn(task, *args, **kwargs)`` for every task on ``executor``.

    Parameters
    ----------
    executor
        Any `concurrent.futures.Executor` whose workers see the same files.
    fn, args, kwargs
        The task function (picklable for process and Dask workers) and its arguments.
    on_result
        Called here with ``(task, result)`` as each task finishes (in any order).
    poll
        Called about every 0.2 s while tasks run (e.g. to drain a progress queue).

    Raises
    ------
    BaseException
        The first task's failure (or an interrupt): the tasks not yet finished are
        cancelled first; a `ProcessPoolExecutor`'s workers are terminated rather than
        left to finish what they hold (its pending tasks then fail as a broken pool).
    """
    task_fn = Refusing(fn)
    futures = {executor.submit(task_fn, task, *args, **kwargs): task for task in tasks}
    pending = set(futures)
    try:
        # signals are raised only by check_interrupt here, at least every 0.2 s: one
        # raised inside wait() could leave a future's lock held and hang the shutdown
        with deferred():
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                check_interrupt()
                if poll is not None:
                    poll()
                for future in finished:  # popped: a result is held no longer than needed
                    on_result(futures.pop(future), result(future))
    except BaseException:
        if isinstance(executor, ProcessPoolExecutor):
            # Stop now rather than after the tasks already queued to the workers: on
            # SIGTERM they delete their half-written output and exit (build._init_worker).
            # No future is cancelled first: the pool's manager thread then marks every
            # pending one broken, where a cancelled one made it raise InvalidStateError
            # (CPython 3.11's terminate_broken; a traceback on stderr after a SIGTERM).
            for proc in list((getattr(executor, "_processes", None) or {}).values()):
                proc.terminate()
            executor.shutdown(wait=True)
        else:
            for future in pending:
                future.cancel()
        raise
