"""Atomic output: write beside the target under a temporary name, rename when complete.

A reader (or a rerun after a crash) sees either the old file or the whole new one, never
half of it. Temporary names are ``.<name>.tmp-<pid>``: a process killed with SIGKILL
cannot clean up, so `remove_stale_temps` deletes those of processes that no longer run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from data_prep.interrupt import check_interrupt


def temp_path(target: str | Path) -> Path:
    """``.<name>.tmp-<pid>`` beside ``target`` (same file system, so rename is atomic)."""
    target = Path(target)
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``target`` on success, delete it on
    any error (including KeyboardInterrupt)."""
    target = Path(target)
    tmp = temp_path(target)
    try:
        yield tmp
        check_interrupt()  # a run stopped by a signal renames nothing into place
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(target: str | Path) -> int:
    """Delete ``.<name>.tmp-<pid>*`` files beside ``target`` whose process is gone."""
    target = Path(target)
    removed = 0
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0].split(".")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def check_writable(target: str | Path, *, directory: bool = False) -> None:
    """Refuse, before any work, an output that cannot be written.

    ``target`` is a file (``directory=False``: must not be an existing directory) or a
    directory to create or fill. The nearest existing ancestor must be a directory in
    which this process can create a file: a test file is created and removed there, which
    also catches read-only mounts and special file systems such as ``/proc``.

    Raises
    ------
    InputError
        Naming ``target`` and the reason.
    """
    from data_prep.errors import InputError

    target = Path(target)
    if directory and target.exists() and not target.is_dir():
        raise InputError("output directory is an existing file", path=target)
    if not directory and target.is_dir():
        raise InputError("output is an existing directory; give a file name", path=target)
    base = target if directory and target.is_dir() else target.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InputError(f"{base} is not a directory", path=target)
    probe = base / f".write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        raise InputError(f"cannot write in {base} ({err.strerror})", path=target) from None
    os.close(fd)
    probe.unlink(missing_ok=True)
