"""Functions and a worker plugin that Dask workers import by name in tests/test_scaleout.py.

They live in a module of their own (not the test module) so that worker processes can
unpickle them without importing pytest fixtures; every side effect goes to files under
the test's tmp_path, the only state shared between the test and the workers.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from distributed import WorkerPlugin

from data_prep.errors import InputError


def _count(path: str) -> int:
    """Append one line to ``path`` and return how many lines it now has."""
    with open(path, "a") as f:
        f.write("call\n")
    return len(Path(path).read_text().splitlines())


def flaky(path: str, failures: int) -> int:
    """Raise OSError on the first ``failures`` calls (a flaky file system), then succeed."""
    n = _count(path)
    if n <= failures:
        raise OSError(f"flaky file system, call {n}")
    return n


def refuse(path: str) -> None:
    """Bad input: must reach the client at once, never be retried."""
    _count(path)
    raise InputError("bad event", path=path, event=3)


class KillWorkerMidTask(WorkerPlugin):
    """Kill the worker process while it writes a part, once (a ``kill -9`` of a node).

    When a task whose key starts with ``prefix`` starts executing and ``marker`` does not
    exist yet, a thread waits until this process's temporary part file appears in
    ``parts_dir`` (the task is writing it), records it in ``marker`` and ends the process
    with ``os._exit``.
    """

    name = "kill-worker-mid-task"

    def __init__(self, marker: str, parts_dir: str, prefix: str = "run_task-"):
        self.marker = marker
        self.parts_dir = parts_dir
        self.prefix = prefix

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # once, ever
        except FileExistsError:
            return
        threading.Thread(target=self._kill_when_writing, args=(fd,), daemon=True).start()

    def _kill_when_writing(self, fd: int) -> None:
        deadline = time.monotonic() + 20.0
        seen: list[str] = []
        mine = f".part_*.tmp-{os.getpid()}"  # this process's half-written part
        while time.monotonic() < deadline and not seen:
            seen = [p.name for p in Path(self.parts_dir).glob(mine)]
            time.sleep(0.0005)
        os.write(fd, f"killed pid {os.getpid()} while writing {seen}\n".encode())
        os.close(fd)
        os._exit(1)
