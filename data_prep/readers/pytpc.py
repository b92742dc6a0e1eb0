"""pytpc HDF5 files (the AT-TPC's earlier Python analysis, used by Kuchera et al.).

Layout::

    /clean/<id>    float (N, 7): x, y [mm], z [time buckets], amplitude [ADC], pad,
                   number of neighbours, distance to the nearest neighbour

The drift coordinate is stored in GET time buckets; `DriftCalibration` turns it into mm
(defaults from the e15503b experiment: 12.5 MHz GET clock, 5.2 cm/µs drift velocity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.errors import BadEventError, InputError
from data_prep.events import Event
from data_prep.readers.base import (
    REASON_COLUMNS,
    IdTableReader,
    check_points,
    open_hdf5,
    run_from_name,
    unreadable,
)

N_COLUMNS = 7  # x, y, z (time bucket), amplitude, pad, n_neighbors, dist


@dataclass(frozen=True)
class DriftCalibration:
    """Time bucket -> drift coordinate: ``z [mm] = z_offset + tb * mm_per_time_bucket``."""

    clock_mhz: float = 12.5  # MHz, GET sampling frequency (one time bucket = 80 ns)
    drift_velocity: float = 5.2  # cm/µs, electron drift velocity in the gas
    z_offset: float = 0.0  # mm, z of time bucket 0

    def __post_init__(self) -> None:
        if self.clock_mhz <= 0 or self.drift_velocity <= 0:
            raise InputError("drift calibration needs clock_mhz > 0 and drift_velocity > 0")

    @property
    def mm_per_time_bucket(self) -> float:
        """mm drifted per time bucket (10 mm/cm * cm/µs / MHz = 4.16 mm by default)."""
        return 10.0 * self.drift_velocity / self.clock_mhz

    def to_mm(self, time_bucket: np.ndarray) -> np.ndarray:
        return self.z_offset + time_bucket * self.mm_per_time_bucket

    def to_time_bucket(self, z_mm: np.ndarray) -> np.ndarray:
        return (z_mm - self.z_offset) / self.mm_per_time_bucket


class PytpcReader(IdTableReader):
    """Stream events from a pytpc HDF5 file.

    Parameters
    ----------
    path
        pytpc file with a ``clean`` group.
    run
        Run number (the file records none); else from a ``run_<n>`` file name, else 0.
    calibration
        Drift calibration for the z column (time buckets -> mm).

    Events yield ``points`` = x, y, z [mm], amplitude, then pad, n_neighbors, dist and
    the original time bucket as extra columns.
    """

    format = "pytpc"
    options = frozenset({"run", "calibration"})

    def __init__(
        self,
        path: str | Path,
        *,
        run: int | None = None,
        calibration: DriftCalibration | None = None,
    ):
        super().__init__(path)
        self.calibration = calibration or DriftCalibration()
        self._file = open_hdf5(self.path)
        try:
            if "clean" not in self._file:
                raise InputError("no group 'clean' (not a pytpc file)", path=self.path)
            self._group = self._file["clean"]
            ids = [int(k) for k in self._group if k.isdigit()]
            self._ids = np.array(sorted(ids), dtype=np.int64)
            self.run = run if run is not None else (run_from_name(self.path) or 0)
        except BaseException:
            self._file.close()
            raise

    def _read_one(self, event_id: int) -> Event:
        dset = self._group[str(event_id)]
        if dset.ndim != 2 or dset.shape[1] != N_COLUMNS:
            raise BadEventError(
                f"clean/{event_id} has shape {dset.shape}, expected (N, {N_COLUMNS})",
                path=self.path,
                event=event_id,
                reason=REASON_COLUMNS,
            )
        try:
            data = dset[()].astype(np.float64, copy=False)
        except OSError as err:
            raise unreadable(f"clean/{event_id}", err, path=self.path, event_id=event_id) from None
        points = np.empty((data.shape[0], 8), dtype=np.float64)
        points[:, [0, 1, 3, 4, 5, 6]] = data[:, [0, 1, 3, 4, 5, 6]]
        points[:, 2] = self.calibration.to_mm(data[:, 2])
        points[:, 7] = data[:, 2]  # keep the time bucket
        check_points(points, path=self.path, event_id=event_id, n_columns=8)
        return Event(run=self.run, event_id=event_id, points=points, source=str(self.path))
