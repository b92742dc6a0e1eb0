"""pytpc HDF5 files (the AT-TPC's earlier Python analysis, used by Kuchera et al.).

Layout::

    /clean/<id>    float (N, 7): x, y [mm], z [time buckets], amplitude [ADC], pad,
                   number of neighbours, distance to the nearest neighbour

The drift coordinate is stored in GET time buckets; `DriftCalibration` turns it into mm
(defaults from the e15503b experiment: 12.5 MHz GET clock, 5.2 cm/µs drift velocity).

**Frame.** pytpc puts z = 0 at the micromegas with the beam travelling along -z; the
simulation (and Spyral, attpc-engine) put z = 0 at the window with the beam along +z.
`FRAMES` maps a file into the simulation frame by a *proper* rotation -- 180 deg about a
transverse axis (flip z and one transverse axis) -- so a track keeps its handedness: a
proton curls the same way whatever the file format. Flipping z alone would mirror the
event and reverse every curl. Which transverse axis pytpc's field sign goes with is not
documented for every file; ``frame="pytpc-flip-x"`` is the other proper choice and
``frame="simulation"`` reads the coordinates as stored.
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
    file_run,
    open_hdf5,
    unreadable,
)

N_COLUMNS = 7  # x, y, z (time bucket), amplitude, pad, n_neighbors, dist
PAD_COLUMN = 4  # in the file and in Event.points (not Spyral's 5: n_neighbors is there)
#: Frame of the file -> (sign of x, sign of y, z flipped to length - z): proper rotations
#: into the simulation frame (z = 0 at the window, beam along +z), or the identity.
FRAMES: dict[str, tuple[float, float, bool]] = {
    "pytpc": (1.0, -1.0, True),  # 180 deg about x: y -> -y, z -> L - z
    "pytpc-flip-x": (-1.0, 1.0, True),  # 180 deg about y: x -> -x, z -> L - z
    "simulation": (1.0, 1.0, False),  # already z = 0 at the window, beam along +z
}


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


def to_simulation_frame(
    points: np.ndarray, frame: str = "pytpc", length_mm: float = 1000.0
) -> np.ndarray:
    """x, y, z of ``points`` (first three columns, in place) from ``frame`` into the
    simulation frame; ``length_mm`` is the drift length (micromegas to window)."""
    sx, sy, flip = FRAMES[frame]
    points[:, 0] *= sx
    points[:, 1] *= sy
    if flip:
        points[:, 2] = length_mm - points[:, 2]
    return points


def check_frame(frame: str, length_mm: float) -> tuple[str, float]:
    """Validated ``(frame, length_mm)`` reader options; `InputError` otherwise."""
    if frame not in FRAMES:
        raise InputError(f"unknown frame {frame!r} (choose from {', '.join(FRAMES)})")
    if not np.isfinite(length_mm) or length_mm <= 0:
        raise InputError(f"length_mm must be a positive number, got {length_mm!r}")
    return frame, float(length_mm)


def from_simulation_frame(
    points: np.ndarray, frame: str = "pytpc", length_mm: float = 1000.0
) -> np.ndarray:
    """Inverse of `to_simulation_frame` (each map is its own inverse), in place."""
    return to_simulation_frame(points, frame, length_mm)


class PytpcReader(IdTableReader):
    """Stream events from a pytpc HDF5 file.

    Parameters
    ----------
    path
        pytpc file with a ``clean`` group.
    run
        Run number (the file records none); else from a ``run_<n>`` file name, else 0.
    calibration
        Drift calibration for the z column (time buckets -> mm from the micromegas).
    frame
        The file's frame, a key of `FRAMES` ("pytpc" by default); points come out in
        the simulation frame.
    length_mm
        Drift length [mm] (micromegas to window), about which z is flipped.

    Events yield ``points`` = x, y, z [mm], amplitude, then pad, n_neighbors, dist and
    the original time bucket as extra columns.
    """

    format = "pytpc"
    options = frozenset({"run", "calibration", "frame", "length_mm"})

    def __init__(
        self,
        path: str | Path,
        *,
        run: int | None = None,
        calibration: DriftCalibration | None = None,
        frame: str = "pytpc",
        length_mm: float = 1000.0,
    ):
        super().__init__(path)
        self.frame, self.length_mm = check_frame(frame, length_mm)
        self.calibration = calibration or DriftCalibration()
        self._file = open_hdf5(self.path)
        try:
            if "clean" not in self._file:
                raise InputError("no group 'clean' (not a pytpc file)", path=self.path)
            self._group = self._file["clean"]
            ids = [int(k) for k in self._group if k.isdigit()]
            self._ids = np.array(sorted(ids), dtype=np.int64)
            self.run, self.run_unknown = file_run(self.path, run)
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
        to_simulation_frame(points, self.frame, self.length_mm)
        points[:, 7] = data[:, 2]  # keep the time bucket
        check_points(points, path=self.path, event_id=event_id, n_columns=8)
        return Event(run=self.run, event_id=event_id, points=points, source=str(self.path),
                     pad_column=PAD_COLUMN)  # fmt: skip
