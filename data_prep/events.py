"""The one in-memory event type every reader yields and every projection consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Class ids are positions in this list (ARCHITECTURE.md). -1 means unknown (real data).
CLASS_NAMES: tuple[str, ...] = ("proton", "carbon", "other")
UNKNOWN_LABEL = -1

#: Columns of ``Event.points``; readers may append extra columns after these four.
COLUMNS: tuple[str, ...] = ("x", "y", "z", "charge")  # mm, mm, mm, ADC


def binary_labels(labels: np.ndarray) -> np.ndarray:
    """Proton (0) vs rest (1) derived from 3-class labels; unknown (-1) stays -1."""
    labels = np.asarray(labels)
    return np.where(labels < 0, labels, (labels != 0).astype(labels.dtype))


@dataclass(slots=True)
class Event:
    """One AT-TPC event as a point cloud.

    Attributes
    ----------
    run
        Run number, preserved exactly from the source file.
    event_id
        Event number, preserved exactly from the source file.
    points
        ``(N, 4+)`` float64 array: x, y, z [mm], charge [ADC], then any extra columns.
    label
        Class id into `CLASS_NAMES`, or -1 when unknown.
    point_labels
        Optional ``(N,)`` int per-point truth (attpc-engine's nucleus index).
    source
        The file the event came from, for error messages.
    pad_column
        The column of ``points`` holding each point's pad id, -1 where the format stores
        none: the structured-noise rules find hot pads and chip fires by it
        (`data_prep.structured.pad_ids`). Each reader says where its format keeps it.
    pad_order
        ``(10240,)`` each pad's place in the run's electronics (chip x 64 + channel;
        `data_prep.padplane.electronics_order`) where the reader option
        ``pad_electronics`` names the detector's map; None: pad ids as stored.
    """

    run: int
    event_id: int
    points: np.ndarray
    label: int = UNKNOWN_LABEL
    point_labels: np.ndarray | None = None
    source: str = field(default="", repr=False)
    pad_column: int = field(default=-1, repr=False)
    pad_order: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])
