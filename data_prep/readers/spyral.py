"""Spyral point-cloud files (and attpc-engine's `SpyralWriter` output).

Layout::

    /cloud                     attrs min_event, max_event
    /cloud/cloud_<n>           float64 (N, 8): x, y, z [mm], amplitude, integral [ADC],
                               pad id, time bucket, pad scale
                               attrs (optional): label (our class id), orig_run, orig_event
    /cloud/labels_<n>          int64 (N,) per-point nucleus index (attpc-engine only)
    /  attrs (optional)        run, class_names (JSON list)

Events may be missing inside ``[min_event, max_event]`` (attpc-engine skips events with
no point above threshold). The reader finds out without touching every event: when the
group's link count (one O(1) call) equals the size of the id range (twice that with
``labels_<n>``), the run has no gaps and position ``i`` is event ``min_event + i``;
otherwise the group's names are listed once (~1 µs per name).

Reading is most of the preprocessing time, so the hot loop avoids h5py's per-call
overhead: it opens each dataset with the low-level API, and when the dataset is stored
contiguously (no chunking, no filter: how Spyral and attpc-engine write clouds) as
little-endian float64, it reads the bytes at the offset HDF5 reports with one
``os.preadv`` into the event's array. That is ~8 µs instead of ~35 µs per event;
anything else (chunked, compressed, other types) goes through ``H5Dread``.

Run number: root attribute ``run``, else the ``orig_run`` attribute of the file's first
cloud (attpc-engine writes one run per file), else the ``run=`` option, else a
``run_<n>`` file name, else 0.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from h5py import h5a, h5d, h5s, h5t

from data_prep.errors import BadEventError, InputError
from data_prep.events import Event
from data_prep.readers.base import (
    REASON_COLUMNS,
    REASON_LABEL,
    ReaderBase,
    SkipCallback,
    check_points,
    file_run,
    open_hdf5,
    parse_class_names,
    unreadable,
)

N_COLUMNS = 8  # x, y, z, amplitude, integral, pad id, time bucket, pad scale
PAD_COLUMN = 5  # in the file and in Event.points (either charge choice)
#: column order of Event.points for each charge choice (charge always 4th)
_ORDER = {
    "amplitude": None,  # the file's own order already has amplitude 4th: no copy
    "integral": np.array([0, 1, 2, 4, 3, 5, 6, 7]),
}


_F64LE = h5t.IEEE_F64LE


_SENTINEL = np.iinfo(np.int64).min


def _read_int_attr(obj_id, name: bytes) -> int | None:
    """A scalar integer attribute, or None when it is not a single number.

    HDF5 writes every element of the attribute into the buffer, so the buffer must hold
    them all: an attribute of at most 8 stored bytes has at most 8 elements, and a
    sentinel in the second slot shows whether more than one was written. This avoids
    asking for the attribute's dataspace, a third of the cost of reading a label.
    """
    aid = h5a.open(obj_id, name)
    if aid.get_storage_size() > 8:  # no scalar integer is that big
        return None
    out = np.full(8, _SENTINEL, dtype=np.int64)
    try:
        aid.read(out, mtype=h5t.NATIVE_INT64)
    except TypeError:  # a string or compound attribute
        return None
    return int(out[0]) if out[1] == _SENTINEL else None


class SpyralReader(ReaderBase):
    """Stream events from a Spyral point-cloud file.

    Parameters
    ----------
    path
        Spyral (or attpc-engine) point-cloud HDF5 file.
    run
        Run number to use when the file records none (root attribute ``run`` or the
        clouds' ``orig_run``); otherwise taken from a ``run_<n>`` file name, else 0.
    charge
        ``"amplitude"`` (column 3, default) or ``"integral"`` (column 4) becomes the
        charge column of `Event.points`; the other one moves to column 4.
    point_labels
        Also read attpc-engine's per-point ``labels_<n>`` into `Event.point_labels`
        (one more dataset read per event; preprocessing turns it off).

    Examples
    --------
    >>> with SpyralReader("run_0001.h5") as r:  # doctest: +SKIP
    ...     first = next(iter(r))
    """

    format = "spyral"
    options = frozenset({"run", "charge", "point_labels"})

    def __init__(
        self,
        path: str | Path,
        *,
        run: int | None = None,
        charge: str = "amplitude",
        point_labels: bool = True,
    ):
        super().__init__(path)
        if charge not in _ORDER:
            raise InputError(f"charge must be 'amplitude' or 'integral', got {charge!r}")
        self.charge = charge
        self.point_labels = point_labels
        self._file = open_hdf5(self.path)
        try:
            if "cloud" not in self._file:
                raise InputError("no group 'cloud' (not a Spyral point-cloud file)", path=path)
            self._group = self._file["cloud"]
            root = self._file.attrs
            self.class_names = parse_class_names(root.get("class_names"))
            self._index()
            self.run = self._find_run(run)
            fd = os.open(self.path, os.O_RDONLY)
            # Closed by close(), or when the reader is garbage-collected unclosed.
            self._close_fd = weakref.finalize(self, os.close, fd)
            self._fd = fd
        except BaseException:
            self._file.close()
            raise
        self._has_label = True  # until an event shows otherwise (then check first)
        self._direct: bool | None = None  # contiguous float64 LE? decided on first cloud

    def _find_run(self, option: int | None) -> int:
        root = self._file.attrs
        if "run" in root:
            return int(root["run"])
        if self._n:
            first_id = self._min if self._ids is None else int(self._ids[0])
            first = h5d.open(self._group.id, b"cloud_%d" % first_id)
            if h5a.exists(first, b"orig_run"):
                run = _read_int_attr(first, b"orig_run")
                if run is not None:
                    return run
        run, self.run_unknown = file_run(self.path, option)
        return run

    def _index(self) -> None:
        g = self._group
        attrs = g.attrs
        self._min = self._ids = None
        if "min_event" in attrs and "max_event" in attrs:
            lo, hi = int(attrs["min_event"]), int(attrs["max_event"])
            n_range = hi - lo + 1
            links = g.id.links
            has_labels = links.exists(b"labels_%d" % lo)
            expected = n_range * (2 if has_labels else 1)
            if (
                n_range > 0
                and g.id.get_num_objs() == expected
                and links.exists(b"cloud_%d" % lo)
                and links.exists(b"cloud_%d" % hi)
            ):
                self._min, self._n = lo, n_range  # dense: position i is event lo + i
                return
        names: list[bytes] = []
        g.id.links.iterate(names.append)  # append returns None, so iteration continues
        ids = [int(n[6:]) for n in names if n.startswith(b"cloud_") and n[6:].isdigit()]
        self._ids = np.array(sorted(ids), dtype=np.int64)
        self._n = len(self._ids)

    def __len__(self) -> int:
        return self._n

    def event_ids(self) -> np.ndarray:
        if self._ids is None:
            return np.arange(self._min, self._min + self._n, dtype=np.int64)
        return self._ids

    def _read_one(self, event_id: int) -> Event:
        try:
            did = h5d.open(self._group.id, b"cloud_%d" % event_id)
        except KeyError:
            raise InputError(
                f"dataset cloud/cloud_{event_id} is missing although the group's size "
                "says the run has no gaps (inconsistent file)",
                path=self.path,
                event=event_id,
            ) from None
        data = self._read_cloud(did, event_id)
        check_points(data, path=self.path, event_id=event_id, n_columns=N_COLUMNS)
        label = self._read_label(did, event_id)
        order = _ORDER[self.charge]
        points = data if order is None else data[:, order]
        n = data.shape[0]
        point_labels = self._read_point_labels(event_id, n) if self.point_labels else None
        return Event(
            run=self.run,
            event_id=event_id,
            points=points,
            label=label,
            point_labels=point_labels,
            source=str(self.path),
            pad_column=PAD_COLUMN,
        )

    def _read_cloud(self, did, event_id: int) -> np.ndarray:
        shape = did.get_space().shape
        if len(shape) != 2 or shape[1] != N_COLUMNS:
            raise BadEventError(
                f"cloud_{event_id} has shape {shape}, expected (N, {N_COLUMNS})",
                path=self.path,
                event=event_id,
                reason=REASON_COLUMNS,
            )
        data = np.empty(shape, dtype=np.float64)
        if shape[0] == 0:
            return data
        if self._direct is None:
            self._direct = bool(did.get_type().equal(_F64LE))
        offset = did.get_offset() if self._direct else None
        # Contiguous storage of exactly N x 8 float64: read the bytes where they lie.
        if offset is not None and did.get_storage_size() == data.nbytes:
            try:
                if os.preadv(self._fd, [data], offset) == data.nbytes:
                    return data
            except OSError:
                pass  # let HDF5 try, and report, below
        try:
            did.read(h5s.ALL, h5s.ALL, data)
        except (OSError, TypeError) as err:
            raise unreadable(f"cloud_{event_id}", err, path=self.path, event_id=event_id) from None
        return data

    def _read_label(self, did, event_id: int) -> int:
        if self._has_label:
            try:
                value = _read_int_attr(did, b"label")
            except KeyError:
                self._has_label = False  # unlabelled file: test existence from now on
                return -1
        elif h5a.exists(did, b"label"):
            value = _read_int_attr(did, b"label")
        else:
            return -1
        if value is None:
            raise BadEventError(
                "attribute 'label' is not one integer",
                path=self.path,
                event=event_id,
                reason=REASON_LABEL,
            )
        return self._check_label(value, event_id)

    def _read_point_labels(self, event_id: int, n: int) -> np.ndarray | None:
        name = b"labels_%d" % event_id
        if not self._group.id.links.exists(name):
            return None
        did = h5d.open(self._group.id, name)
        if did.shape != (n,):
            return None  # not per-point labels of this cloud; ignore rather than guess
        out = np.empty(n, dtype=np.int64)
        did.read(h5s.ALL, h5s.ALL, out)
        return out

    def _iter_range(
        self, start: int, stop: int, skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        if self._ids is None:  # contiguous ids: no table kept
            ids = range(self._min + start, self._min + stop)
        else:
            ids = self._ids[start:stop]
        return self._read_each(ids, skip_bad, on_skip)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()
        self._close_fd()  # idempotent
