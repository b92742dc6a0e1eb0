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

import csv
import functools
from importlib import resources
from pathlib import Path

import numpy as np

from data_prep.errors import InputError

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


#: Columns of an electronics map, as Spyral's ``pad_electronics.csv`` names them.
ELECTRONICS_COLUMNS = ("cobo", "asad", "aget", "aget channel", "pad")
#: Pads per AGET chip (68 channels, 4 of them fixed-pattern noise, no pad).
CHIP_PADS = 64


def electronics_order(path: str | Path) -> np.ndarray:
    """(10240,) each pad's place in the detector's electronics: chip x `CHIP_PADS` + the
    rank of its channel on the chip (chips and channels in sorted order), -1 for a pad
    the map does not list. The rules know pads by this id where the run's map is given
    (reader option ``pad_electronics``), so that 64 consecutive ids are one AGET chip as
    the chip-fire rule reads them. ``path``: a CSV with the columns
    `ELECTRONICS_COLUMNS` (Spyral's ``pad_electronics.csv`` layout)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise InputError(f"cannot read the electronics map ({err.strerror})", path=path) from None
    return _electronics_order(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _electronics_order(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """`electronics_order` of one version of a file (cached: every reader asks)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the electronics map ({err})", path=path) from None
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if any(c not in header for c in ELECTRONICS_COLUMNS):
        raise InputError(f"electronics map needs the columns {', '.join(ELECTRONICS_COLUMNS)}; "
                         f"found {', '.join(header) or 'none'}", path=path)  # fmt: skip
    cols = [header.index(c) for c in ELECTRONICS_COLUMNS]
    try:
        table = np.array([[int(r[c]) for c in cols] for r in rows[1:] if r], dtype=np.int64)
    except (ValueError, IndexError):
        raise InputError("electronics map has a row that is not five integers", path=path) from None
    n_pads = len(pad_centres())
    pads = table[:, 4] if len(table) else np.zeros(0, np.int64)
    if len(pads) == 0 or pads.min() < 0 or pads.max() >= n_pads:
        raise InputError(f"electronics map: pad ids must lie in 0..{n_pads - 1}", path=path)
    if len(np.unique(pads)) != len(pads):
        raise InputError("electronics map lists a pad twice", path=path)
    _, chip, per_chip = np.unique(table[:, :3], axis=0, return_inverse=True, return_counts=True)
    if per_chip.max() > CHIP_PADS:
        raise InputError(f"electronics map: a chip with {per_chip.max()} pads (at most "
                         f"{CHIP_PADS})", path=path)  # fmt: skip
    chip = chip.reshape(-1)
    order = np.lexsort((table[:, 3], chip))  # by chip, then channel
    rank = np.empty(len(table), dtype=np.int64)
    starts = np.searchsorted(chip[order], np.arange(len(per_chip)))
    rank[order] = np.arange(len(table)) - np.repeat(starts, per_chip)
    out = np.full(n_pads, -1, dtype=np.int64)
    out[pads] = chip * CHIP_PADS + rank
    out.setflags(write=False)
    return out
