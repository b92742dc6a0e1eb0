"""The AT-TPC pad plane: which pad a point sits on, for formats that store no pad id.

Spyral and pytpc clouds carry each point's pad id; ATTPCROOT's HDF5 export and ROOT
trees carry only x, y, z and charge. Their points still sit at pad centres (a hit is
placed at its pad's centre), so the pad is found from (x, y): the pad centre within
`PAD_MATCH_MM`. The centres are the AT-TPC's 10,240 pads as attpc-engine ships them
(``attpc_engine/detector/data/padxy.csv``, row = pad id; Spyral ships the same file),
the simulation frame's. The plane is symmetric under x -> -x and y -> -y, so a file
stored mirrored still finds a pad for every point (another pad, the same one every event,
which is what the hot-pad rule needs). A point farther than `PAD_MATCH_MM` from every
centre (positions not at pad centres: another detector, smeared hits) gets no pad (-1).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

#: Half the closest spacing of two pad centres is 1.23 mm: within 1 mm, one pad at most.
PAD_MATCH_MM = 1.0


@functools.cache
def pad_centres() -> np.ndarray:
    """(10240, 2) x, y [mm] of each pad's centre (row = pad id), read-only."""
    handle = resources.files("attpc_engine.detector.data").joinpath("padxy.csv")
    with resources.as_file(handle) as path:
        centres = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    centres.setflags(write=False)
    return centres


@functools.cache
def _tree():
    from scipy.spatial import cKDTree

    return cKDTree(pad_centres())


def pads_at(xy: np.ndarray, tolerance_mm: float = PAD_MATCH_MM) -> np.ndarray:
    """(N,) id of the pad whose centre lies within ``tolerance_mm`` of each (x, y), -1
    where none does."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not len(xy):
        return np.zeros(0, dtype=np.int64)
    distance, pad = _tree().query(xy, distance_upper_bound=tolerance_mm)
    return np.where(distance <= tolerance_mm, pad, -1).astype(np.int64)
