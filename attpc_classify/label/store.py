"""The labels file: ``run,event_id,label,labeller,time``, rewritten atomically per click.

One row per labelled event (a later label of the same event replaces the earlier one), in
the order the events were first labelled. The whole file is written to a temporary name
and renamed into place after every change, so a crash or kill leaves either the old or
the new file, never half a row. A few thousand rows take well under a millisecond.

`apply_labels` joins a labels file with an image file (made by ``preprocess`` from the
same run files) by run and event id, so that ``train`` and ``evaluate`` read the labels.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from data_prep.errors import InputError
from data_prep.imagefile import read_info

COLUMNS: tuple[str, ...] = ("run", "event_id", "label", "labeller", "time")


@dataclass
class LabelRow:
    """One labelled event."""

    run: int
    event_id: int
    label: str
    labeller: str
    time: str  # ISO 8601, UTC


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def read_labels(path: str | Path, class_names: tuple[str, ...] | None = None) -> list[LabelRow]:
    """Rows of a labels file; a bad header, row or class name is a one-line `InputError`."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InputError("labels file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read labels file ({type(err).__name__})", path=path) from None
    if not rows:
        return []
    if tuple(rows[0]) != COLUMNS:
        raise InputError(f"labels file header must be {','.join(COLUMNS)}", path=path)
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            raise InputError(f"line {line}: expected {len(COLUMNS)} fields", path=path)
        try:
            run, event_id = int(row[0]), int(row[1])
        except ValueError:
            raise InputError(f"line {line}: run and event_id must be integers", path=path) from None
        if class_names is not None and row[2] not in class_names:
            raise InputError(
                f"line {line}: label {row[2]!r} is not one of {list(class_names)}",
                path=path,
                event=event_id,
            )
        out.append(LabelRow(run, event_id, row[2], row[3], row[4]))
    return out


class LabelStore:
    """The labels of one session, kept in memory and saved after every change.

    Parameters
    ----------
    path
        The labels CSV; an existing file is read first (resume).
    class_names
        Allowed labels.
    labeller
        Written in every new row (who labelled it).
    """

    def __init__(self, path: str | Path, class_names: tuple[str, ...], labeller: str):
        self.path = Path(path)
        self.class_names = tuple(class_names)
        self.labeller = labeller
        self.rows: dict[tuple[int, int], LabelRow] = {}
        if self.path.exists():
            for row in read_labels(self.path, self.class_names):
                self.rows[(row.run, row.event_id)] = row
        elif not self.path.parent.is_dir():
            raise InputError("directory of the labels file does not exist", path=self.path)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, run: int, event_id: int) -> str | None:
        row = self.rows.get((run, event_id))
        return None if row is None else row.label

    def set(self, run: int, event_id: int, label: str) -> LabelRow:
        """Label an event (replacing an earlier label) and save the file."""
        if label not in self.class_names:
            raise InputError(f"label {label!r} is not one of {list(self.class_names)}")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        row = LabelRow(int(run), int(event_id), label, self.labeller, now)
        self.rows[(row.run, row.event_id)] = row
        self.save()
        return row

    def save(self) -> None:
        """Write the whole file under a temporary name, then rename it into place."""
        tmp = _tmp(self.path)
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for r in self.rows.values():
                writer.writerow((r.run, r.event_id, r.label, r.labeller, r.time))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def apply_labels(images: str | Path, labels: str | Path, out: str | Path) -> dict[str, int]:
    """Write a copy of an image file whose ``/label`` comes from a labels file.

    Events are joined by (run, event id); events without a row get -1 (unknown), which
    ``train`` and ``evaluate`` leave out. Returns counts: ``labelled``, ``unlabelled`` and
    ``not_found`` (rows naming no event of the image file).
    """
    images, out = Path(images), Path(out)
    if images.resolve() == out.resolve():
        raise InputError("output image file is the input; write a new file", path=out)
    names = tuple(read_info(images)["class_names"])
    rows = read_labels(labels, names)
    index = {name: k for k, name in enumerate(names)}
    wanted = {(r.run, r.event_id): index[r.label] for r in rows}
    tmp = _tmp(out)
    shutil.copyfile(images, tmp)
    try:
        with h5py.File(tmp, "r+") as f:
            run = f["run"][()].astype(np.int64)
            event_id = f["event_id"][()].astype(np.int64)
            new = np.full(len(run), -1, dtype=f["label"].dtype)
            found = 0
            for k, key in enumerate(zip(run.tolist(), event_id.tolist(), strict=True)):
                if key in wanted:
                    new[k] = wanted[key]
                    found += 1
            f["label"][...] = new
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"labelled": found, "unlabelled": len(run) - found, "not_found": len(wanted) - found}
