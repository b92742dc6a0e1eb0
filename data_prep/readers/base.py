"""The reader contract: `EventReader`, `ReaderBase` and the per-event checks.

Every point-cloud format has one module in this package with one reader class that
satisfies `EventReader` (the Spyral habit: a `Protocol`, and a factory,
`data_prep.readers.formats.open_events`, that chooses the class by looking inside the
file, never at its name). Readers stream: they hold an open
file and at most one event (or one ``step_size`` of a ROOT tree) in memory, so a 50 GB
run costs what one event costs.

Positions versus ids
--------------------
``iter_events(start, stop)`` takes *positions* ``0 <= start <= stop <= len(reader)`` in
the file's own event order (ascending event id for HDF5 layouts, entry order for ROOT),
so a run can be cut into ranges and the ranges handed to separate processes. The events
yielded carry the file's real event ids and run numbers, unchanged.

Bad events
----------
A per-event problem (wrong number of columns, NaN/inf coordinates or charge, an event
with no points, an unreadable dataset) raises `BadEventError` with a ``reason``; with
``skip_bad=True`` the reader calls ``on_skip(event_id, reason)`` and goes on. Problems
with the whole file (not HDF5/ROOT, missing group or branch, GET traces, ATTPCROOT's
``cbmsim`` tree) raise `InputError` when the reader is opened.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import h5py
import numpy as np

from data_prep.errors import BadEventError, InputError
from data_prep.events import CLASS_NAMES, Event

logger = logging.getLogger(__name__)

#: Bad-event reasons, as counted in preprocessing summaries.
REASON_COLUMNS = "wrong columns"
REASON_NONFINITE = "non-finite values"
REASON_NO_POINTS = "no points"
REASON_UNREADABLE = "unreadable"
REASON_LABEL = "bad label"

SkipCallback = Callable[[int, str], None]


@runtime_checkable
class EventReader(Protocol):
    """What every reader offers (``open_events`` returns one).

    Attributes
    ----------
    path
        The file being read.
    format
        One of `FORMATS`.
    class_names
        Class names the file declares for its labels, or None (then `CLASS_NAMES`).
    """

    path: Path
    format: str
    class_names: tuple[str, ...] | None

    def __len__(self) -> int:
        """Number of events, from metadata where the format stores it."""
        ...

    def iter_events(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        skip_bad: bool = False,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[Event]:
        """Yield the events at positions ``[start, stop)`` in file order."""
        ...

    def event_ids(self) -> np.ndarray:
        """``(len,)`` int64 event ids in position order."""
        ...

    def read_event(self, event_id: int) -> Event:
        """The event with this id (InputError if the file has none)."""
        ...

    def __iter__(self) -> Iterator[Event]: ...

    def close(self) -> None: ...

    def __enter__(self) -> EventReader: ...

    def __exit__(self, *exc: object) -> None: ...


class ReaderBase(ABC):
    """Shared plumbing: context manager, ``__iter__``, range checks, `read_event`.

    Subclasses set ``format`` and ``options`` (the keyword options they accept) and
    implement ``__len__``, ``event_ids`` and ``_iter_range(start, stop, skip_bad, on_skip)``.
    """

    format: str = ""
    options: frozenset[str] = frozenset()
    class_names: tuple[str, ...] | None = None
    #: each pad's place in the run's electronics (`open_events`' ``pad_electronics``)
    pad_order: np.ndarray | None = None
    #: the file, its name and the options gave no run number: its events are run 0
    run_unknown: bool = False

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def __len__(self) -> int:
        """Number of events in the file."""

    @abstractmethod
    def event_ids(self) -> np.ndarray:
        """``(len,)`` int64 event ids in position order."""

    @abstractmethod
    def _iter_range(
        self, start: int, stop: int, skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        """Yield the events at positions ``[start, stop)`` (already range-checked)."""

    @abstractmethod
    def close(self) -> None:
        """Release the file."""

    # -- shared -------------------------------------------------------------------------
    def iter_events(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        skip_bad: bool = False,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[Event]:
        """Yield the events at positions ``[start, stop)`` in file order.

        Parameters
        ----------
        start, stop
            Positions (not event ids); ``stop=None`` means the end of the file.
        skip_bad
            Skip events that fail validation instead of raising `BadEventError`.
        on_skip
            Called as ``on_skip(event_id, reason)`` for every skipped event.
        """
        n = len(self)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise InputError(f"event range [{start}, {stop}) outside 0..{n}", path=self.path)
        events = self._guarded(self._iter_range(start, stop, skip_bad, on_skip))
        return events if self.pad_order is None else self._with_pad_order(events)

    def _guarded(self, events: Iterator[Event]) -> Iterator[Event]:
        """``events``, with HDF5's errors on a damaged file (a B-tree or heap that no
        longer parses, where no single event is to blame) as one-line `InputError`s that
        name the last event read."""
        last = None
        try:
            for event in events:
                last = event.event_id
                yield event
        except (OSError, RuntimeError) as err:
            if not from_hdf5(err):
                raise
            where = "" if last is None else f" after event {last}"
            raise InputError(
                f"unreadable {self.format} file{where}: {first_line(err)}", path=self.path
            ) from err

    def _with_pad_order(self, events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            event.pad_order = self.pad_order  # shared, not copied
            yield event

    def __iter__(self) -> Iterator[Event]:
        return self.iter_events()

    def read_event(self, event_id: int) -> Event:
        """The event with id ``event_id``; bad events raise `BadEventError`."""
        ids = self.event_ids()
        where = np.flatnonzero(ids == event_id)
        if where.size == 0:
            lo_hi = f" (ids {ids.min()}..{ids.max()})" if ids.size else " (file has no events)"
            raise InputError(f"no event {event_id} in this file{lo_hi}", path=self.path)
        pos = int(where[0])
        return next(iter(self.iter_events(pos, pos + 1)))

    def __enter__(self) -> ReaderBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    # -- helpers for subclasses ---------------------------------------------------------
    def _read_each(
        self, event_ids: Iterable[int], skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        """Yield ``self._read_one(id)`` for each id, skipping or raising bad events.

        For formats that store one object per event (Spyral, ATTPCROOT, pytpc).
        """
        for event_id in event_ids:
            try:
                event = self._read_one(int(event_id))
            except BadEventError as err:
                self._skip_or_raise(err, skip_bad, on_skip)
                continue
            yield event

    def _skip_or_raise(
        self, err: BadEventError, skip_bad: bool, on_skip: SkipCallback | None
    ) -> None:
        if not skip_bad:
            raise err
        if on_skip is not None:
            on_skip(int(err.event), err.reason)

    def _check_label(self, label: int, event_id: int) -> int:
        names = self.class_names or CLASS_NAMES
        if not -1 <= label < len(names):
            raise BadEventError(
                f"label {label} is not -1 or a class id 0..{len(names) - 1}",
                path=self.path,
                event=event_id,
                reason=REASON_LABEL,
            )
        return label


def from_hdf5(err: BaseException) -> bool:
    """Whether HDF5 (h5py's compiled layer) raised ``err``: its innermost frame is in h5py.
    Only those are a damaged file; a reader's own RuntimeError (a bug, a generator's
    StopIteration) must surface as what it is."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "h5py" in tb.tb_frame.f_code.co_filename


def first_line(err: BaseException) -> str:
    """The first line of an error's message (HDF5's run to several), or its type."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def unreadable(what: str, err: BaseException, *, path: Path, event_id: int) -> BadEventError:
    """The error for an event whose data HDF5 cannot read (first line of HDF5's reason)."""
    return BadEventError(
        f"cannot read {what}: {first_line(err)}", path=path, event=event_id,
        reason=REASON_UNREADABLE,
    )  # fmt: skip


def check_points(points: np.ndarray, *, path: Path, event_id: int, n_columns: int) -> None:
    """Raise `BadEventError` unless ``points`` is ``(N>0, n_columns)`` with finite x,y,z,q.

    ``points`` must already have x, y, z, charge as its first four columns.
    """
    if points.ndim != 2 or points.shape[1] != n_columns:
        raise BadEventError(
            f"point array has shape {points.shape}, expected (N, {n_columns})",
            path=path,
            event=event_id,
            reason=REASON_COLUMNS,
        )
    if points.shape[0] == 0:
        raise BadEventError(
            "event has no points", path=path, event=event_id, reason=REASON_NO_POINTS
        )
    # One fast pass over the whole array first (NaN/inf propagate into the sum); only a
    # non-finite sum (a bad value anywhere, or an overflow) pays for the exact test.
    if not math.isfinite(float(points.sum())) and not np.isfinite(points[:, :4]).all():
        raise BadEventError(
            "NaN or infinite x, y, z or charge",
            path=path,
            event=event_id,
            reason=REASON_NONFINITE,
        )


_RUN_IN_NAME = re.compile(r"run_?(\d+)", re.IGNORECASE)


def run_from_name(path: Path) -> int | None:
    """Run number from a file name such as ``run_0012.h5`` (None if there is none)."""
    m = _RUN_IN_NAME.search(path.stem)
    return int(m.group(1)) if m else None


def file_run(path: Path, option: int | None) -> tuple[int, bool]:
    """The run of a file that records none itself: the ``run`` option, else its name's
    number, else 0; and whether it fell to 0 (`warn_unknown_run` says so)."""
    if option is not None:
        return option, False
    named = run_from_name(path)
    return (0, True) if named is None else (named, False)


def warn_unknown_run(reader: EventReader) -> None:
    """One line for a file whose events got run 0 for want of any run number: runs
    group the events of `classify`'s counts and of `evaluate --resample runs`."""
    if getattr(reader, "run_unknown", False):
        logger.warning(f"{reader.path}: no run number in the file or its name: its events "
                       "are run 0 (--run N gives them one)")  # fmt: skip


def parse_class_names(value: object) -> tuple[str, ...] | None:
    """Class names from an HDF5 attribute (JSON string or array of strings)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [v.strip() for v in value.split(",")]
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value)]
    return tuple(names) or None


METADATA_CACHE_BYTES = 2 << 20  # per open input file (HDF5's default grows to 32 MB)


def open_hdf5(path: Path) -> h5py.File:
    """Open read-only, turning h5py's errors into one-line `InputError`s.

    Readers visit every event's object header once, so HDF5's metadata cache only fills
    up: with the default limit it grew by ~70 MB of RSS over 20k events. A 2 MB cache
    keeps the group's index nodes (what lookups need) at no measured cost in speed.
    """
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, ValueError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt or truncated"
        raise InputError(f"unreadable HDF5 file ({reason})", path=path) from None
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = METADATA_CACHE_BYTES // 2
    config.max_size = METADATA_CACHE_BYTES
    f.id.set_mdc_config(config)
    return f


class IdTableReader(ReaderBase):
    """An HDF5 file with one object per event, indexed by a sorted id table.

    Subclasses open ``self._file``, fill ``self._ids`` (sorted int64 event ids) and
    implement ``_read_one(event_id)``.
    """

    _file: h5py.File
    _ids: np.ndarray

    def __len__(self) -> int:
        return len(self._ids)

    def event_ids(self) -> np.ndarray:
        return self._ids

    def _iter_range(
        self, start: int, stop: int, skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        return self._read_each(self._ids[start:stop], skip_bad, on_skip)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()
