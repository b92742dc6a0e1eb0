"""Writers of every input format, in the real layouts, for tests (no mocks).

Each writer takes a list of `Event` and writes it with the library the format's real
producer uses (h5py for the HDF5 layouts, uproot for ROOT), so the readers are tested
against files that look like the ones physicists have. Other test modules reuse these:

>>> events = make_events(np.random.default_rng(0), 5)
>>> write_spyral(tmp_path / "run_0007.h5", events)  # doctest: +SKIP

Columns not carried by `Event` (integral, pad id, ...) are filled with plausible values
derived from the event so the files are complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from data_prep.events import Event
from data_prep.padplane import pads_at
from data_prep.readers.pytpc import DriftCalibration, from_simulation_frame
from data_prep.structured import pad_ids

CALIBRATION = DriftCalibration()

__all__ = [
    "CALIBRATION",
    "WRITERS",
    "make_events",
    "write_attpcroot",
    "write_cbmsim",
    "write_get_traces",
    "write_pytpc",
    "write_root",
    "write_spyral",
]


def make_events(
    rng: np.random.Generator,
    n: int,
    *,
    n_points: tuple[int, int] = (20, 60),
    first_id: int = 0,
    run: int = 7,
    n_classes: int = 3,
    calibration: DriftCalibration = CALIBRATION,
) -> list[Event]:
    """Random labelled events whose z values are exact time-bucket multiples.

    z = ``calibration.to_mm(tb)`` for integer time buckets, so a pytpc file (z stored in
    time buckets) maps back to bit-identical coordinates and every format gives the
    same images.
    """
    events = []
    for i in range(n):
        m = int(rng.integers(*n_points))
        tb = rng.integers(0, 230, m).astype(np.float64)
        points = np.column_stack(
            [
                rng.uniform(-250.0, 250.0, m),
                rng.uniform(-250.0, 250.0, m),
                calibration.to_mm(tb),
                rng.uniform(10.0, 3000.0, m),
            ]
        )
        label = int(rng.integers(0, n_classes)) if n_classes else -1
        events.append(Event(run=run, event_id=first_id + i, points=points, label=label))
    return events


def _spyral_columns(
    points: np.ndarray, calibration: DriftCalibration, pads: bool = False
) -> np.ndarray:
    n = points.shape[0]
    out = np.empty((n, 8), dtype=np.float64)
    out[:, :4] = points[:, :4]
    out[:, 4] = points[:, 3] * 3.5  # integral: a fixed multiple of the amplitude
    # pad id: the pad under each point, or any id (tests that need no pad plane)
    out[:, 5] = pads_at(points[:, :2]) if pads else np.arange(n) % 10240
    out[:, 6] = calibration.to_time_bucket(points[:, 2])  # time bucket
    out[:, 7] = 1.0  # pad scale
    return out


def write_spyral(
    path: str | Path,
    events: Sequence[Event],
    *,
    run_attr: int | None = None,
    class_names: Sequence[str] | None = None,
    engine: bool = False,
    labels: bool = True,
    min_event: int | None = None,
    max_event: int | None = None,
    calibration: DriftCalibration = CALIBRATION,
    pads: bool = False,
) -> Path:
    """Spyral point-cloud layout: ``cloud/cloud_<n>`` (N, 8) with min/max_event attrs.

    Parameters
    ----------
    run_attr
        Write root attribute ``run`` (else the run is left to the file name / datasets).
    class_names
        Write root attribute ``class_names`` (JSON list).
    engine
        Also write what attpc-engine's SpyralWriter adds: ``labels_<n>`` per point
        (from ``event.point_labels`` or zeros) and ``orig_run``/``orig_event`` attrs.
    labels
        Write our per-event ``label`` attribute for events with ``label >= 0``.
    min_event, max_event
        Override the group attributes (default: smallest and largest id written).
    pads
        Write the id of the pad under each point (`data_prep.padplane.pads_at`) as
        Spyral does, not a running number.
    """
    path = Path(path)
    ids = [e.event_id for e in events]
    with h5py.File(path, "w") as f:
        if run_attr is not None:
            f.attrs["run"] = run_attr
        if class_names is not None:
            f.attrs["class_names"] = json.dumps(list(class_names))
        g = f.create_group("cloud")
        g.attrs["min_event"] = min(ids) if min_event is None else min_event
        g.attrs["max_event"] = max(ids) if max_event is None else max_event
        for e in events:
            d = g.create_dataset(
                f"cloud_{e.event_id}", data=_spyral_columns(e.points, calibration, pads)
            )
            if labels and e.label >= 0:
                d.attrs["label"] = np.int64(e.label)
            if engine:
                d.attrs["orig_run"] = e.run
                d.attrs["orig_event"] = e.event_id
                for key in ("ic_amplitude", "ic_multiplicity", "ic_integral", "ic_centroid"):
                    d.attrs[key] = -1.0
                pl = e.point_labels
                pl = np.zeros(e.n_points, np.int64) if pl is None else np.asarray(pl, np.int64)
                g.create_dataset(f"labels_{e.event_id}", data=pl)
    return path


_HIT_DTYPE = np.dtype(
    [
        ("x", "f8"),
        ("y", "f8"),
        ("z", "f8"),
        ("t", "i4"),
        ("A", "f8"),
        ("trackID", "i4"),
        ("pointIDMC", "i4"),
        ("energyMC", "f8"),
        ("elossMC", "f8"),
        ("angleMC", "f8"),
        ("AMC", "i4"),
        ("ZMC", "i4"),
    ]
)


def write_attpcroot(
    path: str | Path, events: Sequence[Event], *, calibration: DriftCalibration = CALIBRATION
) -> Path:
    """ATTPCROOT ``AtHDF5WriteTask`` layout: ``/Event_[n]/HitArray`` + ``Trace``."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        for e in events:
            g = f.create_group(f"Event_[{e.event_id}]")
            hits = np.zeros(e.n_points, dtype=_HIT_DTYPE)
            hits["x"], hits["y"], hits["z"] = e.points[:, 0], e.points[:, 1], e.points[:, 2]
            hits["A"] = e.points[:, 3]
            hits["t"] = np.rint(calibration.to_time_bucket(e.points[:, 2])).astype(np.int32)
            hits["trackID"] = -1
            g.create_dataset("HitArray", data=hits)
            g.create_dataset("Trace", data=np.zeros((4, 512), dtype=np.float32))
    return path


def write_pytpc(
    path: str | Path,
    events: Sequence[Event],
    *,
    calibration: DriftCalibration = CALIBRATION,
    frame: str = "pytpc",
) -> Path:
    """pytpc layout: ``/clean/<id>`` (N, 7) with z in time buckets, in pytpc's frame
    (z = 0 at the micromegas, beam along -z: `data_prep.readers.pytpc.FRAMES`)."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("clean")
        for e in events:
            n = e.n_points
            data = np.empty((n, 7), dtype=np.float64)
            xyz = from_simulation_frame(e.points[:, :3].copy(), frame)
            data[:, 0], data[:, 1] = xyz[:, 0], xyz[:, 1]
            data[:, 2] = calibration.to_time_bucket(xyz[:, 2])
            data[:, 3] = e.points[:, 3]
            # pad: the event's own where it has them (a copy of a Spyral run), else made up
            data[:, 4] = pad_ids(e) if e.pad_column >= 0 else np.arange(n) % 10240
            data[:, 5] = 2  # neighbours
            data[:, 6] = 5.0  # distance to nearest neighbour [mm]
            g.create_dataset(str(e.event_id), data=data)
    return path


def write_root(
    path: str | Path,
    events: Sequence[Event],
    tree: str = "events",
    *,
    branches: dict[str, str] | None = None,
    with_event: bool = True,
    with_run: bool = True,
    with_label: bool = True,
    extra_trees: Sequence[str] = (),
    rntuple: bool = False,
) -> Path:
    """ROOT TTree written by uproot: jagged x, y, z, charge; scalar event, run, label.

    ``branches`` renames columns (our name -> branch name); ``extra_trees`` adds small
    unrelated trees (to test tree selection); ``rntuple`` writes ROOT's newer RNTuple
    (what ``file[name] = arrays`` makes in uproot >= 5.4) instead of a TTree.
    """
    import awkward as ak
    import uproot

    path = Path(path)
    names = {"x": "x", "y": "y", "z": "z", "charge": "charge"}
    names.update({"event": "event", "run": "run", "label": "label"})
    names.update(branches or {})
    counts = np.array([e.n_points for e in events], dtype=np.int64)
    data: dict[str, object] = {}
    types: dict[str, str] = {}
    for col, role in enumerate(("x", "y", "z", "charge")):
        flat = np.concatenate([e.points[:, col] for e in events]) if events else np.zeros(0)
        data[names[role]] = ak.unflatten(flat, counts)
        types[names[role]] = "var * float64"
    scalars = {
        "event": (with_event, np.int64, [e.event_id for e in events]),
        "run": (with_run, np.int32, [e.run for e in events]),
        "label": (with_label, np.int32, [e.label for e in events]),
    }
    for role, (wanted, dtype, values) in scalars.items():
        if wanted:
            data[names[role]] = np.array(values, dtype=dtype)
            types[names[role]] = np.dtype(dtype).name
    with uproot.recreate(path) as f:
        if rntuple:
            f[tree] = data
        else:
            f.mktree(tree, types)
            f[tree].extend(data)
        for name in extra_trees:
            f.mktree(name, {"a": "int32"})
            f[name].extend({"a": np.arange(3, dtype=np.int32)})
    return path


def write_get_traces(path: str | Path, n_events: int = 2) -> Path:
    """attpc_merger layout: ``events/event_<n>/get/pads`` int16 (N, 517)."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g.attrs["min_event"], g.attrs["max_event"] = 0, n_events - 1
        for i in range(n_events):
            get = g.create_group(f"event_{i}").create_group("get")
            get.create_dataset("pads", data=np.zeros((3, 517), dtype=np.int16))
    return path


def write_cbmsim(path: str | Path) -> Path:
    """A ROOT file with ATTPCROOT's tree name ``cbmsim`` (its objects need ROOT itself)."""
    import uproot

    path = Path(path)
    with uproot.recreate(path) as f:
        f.mktree("cbmsim", {"EventHeader": "int32"})
        f["cbmsim"].extend({"EventHeader": np.arange(3, dtype=np.int32)})
    return path


#: format name -> writer(path, events)
WRITERS = {
    "spyral": write_spyral,
    "attpcroot": write_attpcroot,
    "pytpc": write_pytpc,
    "root": write_root,
}
