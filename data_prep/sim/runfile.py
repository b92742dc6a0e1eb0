"""Labelled Spyral-format run files: the layout (docs/ARCHITECTURE.md) and its writer.

Spyral part, as attpc-engine's `SpyralWriter` writes it::

    /cloud                 attrs min_event, max_event
    /cloud/cloud_<n>       float64 (N, 8): x, y, z [mm], amplitude, integral [ADC], pad id,
                           time bucket, pad scale; attrs orig_run, orig_event, ic_* = -1
    /cloud/labels_<n>      int64 (N,): nucleus index per point (-1 = injected noise hit,
                           -2 = beam ion along the axis)

Our additions: attr ``label`` (class id) and ``channel`` on every ``cloud_<n>``; root
attrs (`ROOT_ATTRS`); and ``/events``, one row per event (`EVENT_DTYPE`), so nobody scans.
Files are written under a ``.partial`` name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES
from data_prep.sim.channels import CHANNELS
from data_prep.sim.config import TABLE_KNOBS
from data_prep.sim.physics import BEAM_POINT_LABEL, NOISE_POINT_LABEL, SimEvent

FORMAT = "attpc-classify-sim"
FORMAT_VERSION = 2
PARTIAL_SUFFIX = ".partial"

#: The event table ``/events``.
EVENT_DTYPE = np.dtype(
    [
        ("event", "<i8"),  # event number, = n of cloud_<n>
        ("label", "i1"),  # class id into class_names
        ("channel", "S16"),  # ASCII channel name, e.g. b"p_elastic"
        ("n_points", "<i4"),  # rows of cloud_<n>
        ("n_signal", "<i4"),  # points from reaction products
        ("n_noise", "<i4"),  # injected noise hits
        ("n_beam", "<i4"),  # points of beam ions along the axis (per-point label -2)
        ("draws", "<i4"),  # reaction draws; draws - 1 were rejected (too few points)
        ("vertex_x", "<f4"),  # mm, first reaction vertex (NaN for noise-only)
        ("vertex_y", "<f4"),
        ("vertex_z", "<f4"),
        # detector, beam and electronics settings used (randomised or fixed;
        # data_prep.sim.randomize); point_formation is a code: 0 peaks, 1 pad, 2 bucket
        *((name, "<f4") for name in TABLE_KNOBS),
    ]
)

#: Root attributes every run file carries (values set by `simulate`).
ROOT_ATTRS = (
    "format",
    "format_version",
    "class_names",
    "channels",
    "run",
    "seed",
    "simulation_config",
    "n_events_total",
    "events_per_file",
    "first_event",
    "n_events",
    "noise_point_label",
    "beam_point_label",
    "attpc_engine_version",
)

#: Root attributes that must match for a finished file to count as already done.
IDENTITY_ATTRS = ("simulation_config", "seed", "n_events_total", "events_per_file")


def run_path(out_dir: Path, run: int) -> Path:
    return Path(out_dir) / f"run_{run:04d}.h5"


def file_attrs(
    *,
    run: int,
    seed: int,
    config_json: str,
    n_events_total: int,
    events_per_file: int,
    first_event: int,
    n_events: int,
) -> dict[str, Any]:
    """Root attributes of one run file."""
    from importlib.metadata import version

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": json.dumps(list(CLASS_NAMES)),
        "channels": json.dumps({name: c.label for name, c in CHANNELS.items()}),
        "run": int(run),
        "seed": int(seed),
        "simulation_config": config_json,
        "n_events_total": int(n_events_total),
        "events_per_file": int(events_per_file),
        "first_event": int(first_event),
        "n_events": int(n_events),
        "noise_point_label": NOISE_POINT_LABEL,
        "beam_point_label": BEAM_POINT_LABEL,
        "attpc_engine_version": version("attpc-engine"),
    }


class RunFileWriter:
    """Writes one run file event by event; visible under its final name only on `commit`.

    Parameters
    ----------
    path
        Final path, ``.../run_0003.h5``.
    attrs
        Root attributes from `file_attrs`.

    Examples
    --------
    >>> with RunFileWriter(path, attrs) as w:  # doctest: +SKIP
    ...     w.write(0, event)
    ...     w.commit()
    """

    def __init__(self, path: Path, attrs: dict[str, Any]):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.run = int(attrs["run"])
        self.rows: list[tuple] = []
        # a .partial left by a killed run is simply overwritten
        self.file = h5py.File(self.tmp, "w")
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.cloud = self.file.create_group("cloud")

    def write(self, event_id: int, event: SimEvent) -> None:
        """Add ``cloud_<event_id>`` and ``labels_<event_id>``."""
        dset = self.cloud.create_dataset(f"cloud_{event_id}", data=event.points)
        dset.attrs["orig_run"] = self.run
        dset.attrs["orig_event"] = int(event_id)
        for key in ("ic_amplitude", "ic_multiplicity", "ic_integral", "ic_centroid"):
            dset.attrs[key] = -1.0  # no ion chamber in simulation (as SpyralWriter)
        dset.attrs["label"] = int(event.label)
        dset.attrs["channel"] = event.channel
        self.cloud.create_dataset(f"labels_{event_id}", data=event.point_labels)
        v = event.vertex
        self.rows.append(
            (
                event_id,
                event.label,
                event.channel.encode("ascii"),
                len(event.points),
                event.n_signal,
                event.n_noise,
                event.n_beam,
                event.draws,
                v[0],
                v[1],
                v[2],
                *event.knobs.row,
            )
        )

    def commit(self) -> np.ndarray:
        """Write ``min_event``/``max_event`` and ``/events``, close, rename into place.

        Returns
        -------
        numpy.ndarray
            The event table written.
        """
        table = np.array(self.rows, dtype=EVENT_DTYPE)
        if len(table):
            self.cloud.attrs["min_event"] = int(table["event"].min())
            self.cloud.attrs["max_event"] = int(table["event"].max())
        self.file.create_dataset("events", data=table)
        self.file.close()
        os.replace(self.tmp, self.path)
        return table

    def abort(self) -> None:
        """Close and remove the partial file."""
        if self.file.id.valid:
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> RunFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self.file.id.valid:
            self.abort()


def read_run_info(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Root attributes and event table of a finished run file.

    Raises
    ------
    InputError
        Not a run file of ours (unreadable, other format, no event table).
    """
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT or "events" not in f:
                raise InputError("not a simulation run file of attpc-classify", path=path)
            table = f["events"][()]
    except OSError as err:
        first = str(err).splitlines()[0] if str(err) else "unreadable"
        raise InputError(f"cannot read run file: {first}", path=path) from None
    return attrs, table


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
