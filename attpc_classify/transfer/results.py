"""``results.csv``: one row per strategy x size x task x budget x seed (x training size).

The file is rewritten whole after every finished cell (temporary file, fsync,
`os.replace`), so a killed run leaves the previous complete file and never a torn line;
a cell's rows appear together or not at all, and `ResultsFile.done` tells a resumed run
which cells to skip.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attpc_classify.transfer.grid import COLUMNS, KEY_COLUMNS, cell_key
from data_prep.atomic import atomic_path
from data_prep.errors import InputError

INT_COLUMNS = (
    "depth",
    "width",
    "n_train",
    "budget_epochs",
    "seed",
    "train_images",
    "shared_images",
    "params_stored",
    "model_params",
    "headline",
)
FLOAT_COLUMNS = ("proton_f1", "macro_f1", "accuracy", "wall_s", "shared_wall_s")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results.csv with numbers parsed; [] when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"not a benchmark results file (no {missing[0]} column)", path=path)
        rows = []
        for row in reader:
            for c in INT_COLUMNS:
                row[c] = int(float(row[c]))
            for c in FLOAT_COLUMNS:
                row[c] = float(row[c])
            rows.append(row)
    return rows


class ResultsFile:
    """The rows of one benchmark run, kept in memory and mirrored to disk atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows = read_rows(self.path)
        self.done = {cell_key(r) for r in self.rows}

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add the rows of one finished cell and rewrite the file."""
        rows = list(rows)
        seen = {tuple(r[c] for c in KEY_COLUMNS) for r in self.rows}
        for r in rows:
            key = tuple(r[c] for c in KEY_COLUMNS)
            if key in seen:  # a bug, not a user error: every cell runs once
                raise RuntimeError(f"duplicate results row {key}")
            seen.add(key)
        self.rows.extend(rows)
        self.done.update(cell_key(r) for r in rows)
        self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({c: _format(r[c]) for c in COLUMNS})
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
