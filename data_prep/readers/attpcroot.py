"""ATTPCROOT's HDF5 export (``AtHDF5WriteTask``).

Layout::

    /Event_[<n>]               one group per event (literal brackets), n = event id
    /Event_[<n>]/HitArray      compound (N,): x, y, z f8 [mm]; t i4; A f8 (charge);
                               trackID, pointIDMC i4; energyMC, elossMC, angleMC f8;
                               AMC, ZMC i4
    /Event_[<n>]/Trace         f4 [512] per pad (not read: the hits are what we project)

ATTPCROOT's own ROOT output (``cbmsim`` tree of ``AtEventH`` objects) cannot be read
without ROOT's dictionaries; export it with ``AtHDF5WriteTask`` and read that instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data_prep.errors import BadEventError, InputError
from data_prep.events import Event
from data_prep.readers.base import (
    REASON_COLUMNS,
    IdTableReader,
    check_points,
    file_run,
    open_hdf5,
    unreadable,
)
from data_prep.readers.pytpc import check_frame, to_simulation_frame

_GROUP = re.compile(r"^Event_\[(\d+)\]$")
_FIELDS = ("x", "y", "z", "A")  # -> x, y, z, charge


class AttpcRootReader(IdTableReader):
    """Stream events from an ATTPCROOT HDF5 export.

    Parameters
    ----------
    path
        File written by ``AtHDF5WriteTask``.
    run
        Run number (the export records none); else from a ``run_<n>`` file name, else 0.
    frame, length_mm
        The file's frame (`data_prep.readers.pytpc.FRAMES`; default "simulation": read as
        stored, z = 0 at the window as AtPSA computes it from the entrance bucket -- pass
        "pytpc" for a file with z = 0 at the micromegas) and the drift length [mm].
    """

    format = "attpcroot"
    options = frozenset({"run", "frame", "length_mm"})

    def __init__(
        self,
        path: str | Path,
        *,
        run: int | None = None,
        frame: str = "simulation",
        length_mm: float = 1000.0,
    ):
        super().__init__(path)
        self.frame, self.length_mm = check_frame(frame, length_mm)
        self._file = open_hdf5(self.path)
        try:
            ids = [int(m.group(1)) for k in self._file if (m := _GROUP.match(k))]
            if not ids:
                raise InputError(
                    "no 'Event_[n]' groups (not an ATTPCROOT HDF5 export)", path=self.path
                )
            self._ids = np.array(sorted(ids), dtype=np.int64)
            self.run, self.run_unknown = file_run(self.path, run)
        except BaseException:
            self._file.close()
            raise

    def _read_one(self, event_id: int) -> Event:
        group = self._file[f"Event_[{event_id}]"]
        if "HitArray" not in group:
            raise InputError(
                f"group Event_[{event_id}] has no HitArray dataset", path=self.path, event=event_id
            )
        dset = group["HitArray"]
        names = dset.dtype.names or ()
        missing = [f for f in _FIELDS if f not in names]
        if missing:
            raise BadEventError(
                f"HitArray lacks field(s) {', '.join(missing)} (has {', '.join(names) or 'none'})",
                path=self.path,
                event=event_id,
                reason=REASON_COLUMNS,
            )
        if dset.ndim != 1:
            raise BadEventError(
                f"HitArray has shape {dset.shape}, expected (N,)",
                path=self.path,
                event=event_id,
                reason=REASON_COLUMNS,
            )
        try:
            hits = dset[()]
        except OSError as err:
            raise unreadable("HitArray", err, path=self.path, event_id=event_id) from None
        points = np.empty((hits.shape[0], 4), dtype=np.float64)
        for col, name in enumerate(_FIELDS):
            points[:, col] = hits[name]
        check_points(points, path=self.path, event_id=event_id, n_columns=4)
        to_simulation_frame(points, self.frame, self.length_mm)
        return Event(run=self.run, event_id=event_id, points=points, source=str(self.path))
