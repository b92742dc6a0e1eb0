"""Errors for bad input: one line that names the file and, where known, the event.

The application turns any `InputError` into that one line on stderr and exit code 2;
library code raises them and never prints.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A problem with something the user gave us (file, config, option), not a bug.

    Parameters
    ----------
    message
        What is wrong, in one line.
    path
        The file it concerns, if any.
    event
        The event id it concerns, if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, event: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.event = event
        super().__init__(str(self))

    def __reduce__(self):
        # Rebuild with the keyword arguments, so errors raised in worker processes
        # (ProcessPoolExecutor, Dask) arrive intact instead of failing to unpickle.
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.event is not None:
            where.append(f"event {self.event}")
        return ": ".join([*where, self.message])


class BadEventError(InputError):
    """One event cannot be used (NaN coordinates, wrong columns, empty, ...).

    Readers raise it for that event only; with ``skip_bad`` the caller counts it by
    ``reason`` and goes on with the next event.
    """

    def __init__(self, message: str, *, path: str | Path, event: int, reason: str = "bad"):
        self.reason = reason
        super().__init__(message, path=path, event=event)


def _rebuild(cls: type, message: str, state: dict) -> InputError:
    err = cls.__new__(cls)
    InputError.__init__(err, message, path=state.get("path"), event=state.get("event"))
    err.__dict__.update(state)
    return err


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``"1 event"``, ``"2 events"``, ``"1,000 run files"``: a count with its noun."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
