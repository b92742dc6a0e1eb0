"""ROOT files with one entry per event (TTree, or RNTuple as uproot >= 5.4 writes).

Layout (branch names overridable with ``branches={"x": "hit_x", ...}``)::

    x, y, z   jagged float [mm]     one value per point
    charge    jagged float [ADC]
    event     int (optional)        event id; else the entry number
    run       int (optional)        run number; else ``run=`` / file name / 0
    label     int (optional)        class id; else -1

The tree is the file's only TTree/RNTuple, or the one named by ``tree=``. Entries are
read with uproot's ``iterate`` in steps of ``step_size`` (entries, or memory such as
``"50 MB"``), so memory stays bounded however large the file.

ATTPCROOT's own output (a ``cbmsim`` tree of ``AtEventH``/``AtEvent`` objects) needs
ROOT's class dictionaries; export it with ATTPCROOT's ``AtHDF5WriteTask`` and read the
HDF5 file instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.errors import BadEventError, InputError
from data_prep.events import Event
from data_prep.readers.base import (
    REASON_COLUMNS,
    ReaderBase,
    SkipCallback,
    check_points,
    file_run,
)

DEFAULT_BRANCHES: dict[str, str] = {
    "x": "x",
    "y": "y",
    "z": "z",
    "charge": "charge",
    "event": "event",
    "run": "run",
    "label": "label",
}
REQUIRED = ("x", "y", "z", "charge")
_TREE_CLASSES = ("TTree", "ROOT::RNTuple")
_ATTPCROOT_HINT = (
    "ATTPCROOT output (cbmsim tree of AtEvent objects) cannot be read without ROOT; "
    "export it with ATTPCROOT's AtHDF5WriteTask and pass that HDF5 file"
)


def _open_root(path: Path) -> Any:
    import uproot

    try:
        return uproot.open(path)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except Exception as err:  # uproot raises many types for corrupt files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"unreadable ROOT file ({first[:120]})", path=path) from None


def _trees(file: Any) -> dict[str, str]:
    classes = file.classnames(cycle=False, recursive=True)
    return {name: cls for name, cls in classes.items() if cls in _TREE_CLASSES}


def _is_attpcroot(file: Any, trees: dict[str, str]) -> bool:
    if "cbmsim" in trees:
        return True
    for name, cls in trees.items():
        if cls != "TTree":
            continue
        types = " ".join(str(t) for t in file[name].typenames(recursive=True).values())
        if "AtEvent" in types or "AtRawEvent" in types:
            return True
    return False


def check_root_file(path: str | Path) -> None:
    """Raise `InputError` for unreadable ROOT files and for ATTPCROOT ``cbmsim`` output."""
    path = Path(path)
    file = _open_root(path)
    with file:
        if _is_attpcroot(file, _trees(file)):
            raise InputError(_ATTPCROOT_HINT, path=path)


class RootReader(ReaderBase):
    """Stream events from a ROOT TTree/RNTuple with jagged per-point branches.

    Parameters
    ----------
    path
        ROOT file.
    tree
        Name of the tree; needed only when the file holds more than one.
    branches
        Our column name -> branch name, for files that use other names, e.g.
        ``{"charge": "hit_q", "event": "evt"}``. Keys: x, y, z, charge, event, run, label.
    run
        Run number when the tree has no ``run`` branch; else from a ``run_<n>`` file
        name, else 0.
    step_size
        Entries per read (int) or memory per read (``"50 MB"``).
    """

    format = "root"
    options = frozenset({"run", "tree", "branches", "step_size"})

    def __init__(
        self,
        path: str | Path,
        *,
        tree: str | None = None,
        branches: dict[str, str] | None = None,
        run: int | None = None,
        step_size: int | str = "50 MB",
    ):
        super().__init__(path)
        unknown = set(branches or {}) - set(DEFAULT_BRANCHES)
        if unknown:
            raise InputError(
                f"unknown branch role(s) {sorted(unknown)}; use {list(DEFAULT_BRANCHES)}"
            )
        self.step_size = step_size
        self._file = _open_root(self.path)
        try:
            self._open_tree(tree, branches or {})
            self.run, self.run_unknown = file_run(self.path, run)
            # a run branch gives each event its run (`_event`); self.run is the fallback
            self.run_unknown = self.run_unknown and "run" not in self._branches
        except BaseException:
            self._file.close()
            raise

    def _open_tree(self, tree: str | None, user_branches: dict[str, str]) -> None:
        trees = _trees(self._file)
        if _is_attpcroot(self._file, trees):
            raise InputError(_ATTPCROOT_HINT, path=self.path)
        if tree is None:
            if len(trees) != 1:
                listed = ", ".join(sorted(trees)) or "none"
                raise InputError(
                    f"file holds {len(trees)} trees ({listed}); choose one with --root-tree",
                    path=self.path,
                )
            tree = next(iter(trees))
        elif tree not in trees:
            listed = ", ".join(sorted(trees)) or "none"
            raise InputError(f"no tree {tree!r} in file (trees: {listed})", path=self.path)
        self.tree_name = tree
        self._tree = self._file[tree]
        available = set(self._tree.keys(recursive=True))
        names = {**DEFAULT_BRANCHES, **user_branches}
        self._branches: dict[str, str] = {}
        for role, branch in names.items():
            if branch in available:
                self._branches[role] = branch
            elif role in REQUIRED or role in user_branches:
                listed = ", ".join(sorted(available)) or "none"
                raise InputError(
                    f"tree {tree!r} has no branch {branch!r} (for {role}; branches: {listed}); "
                    f"name it with --root-branch {role}=NAME",
                    path=self.path,
                )
        self._n = int(self._tree.num_entries)

    def __len__(self) -> int:
        return self._n

    def event_ids(self) -> np.ndarray:
        if "event" not in self._branches:
            return np.arange(self._n, dtype=np.int64)
        out = self._tree[self._branches["event"]].array(library="np")
        return np.asarray(out, dtype=np.int64)

    def _iter_range(
        self, start: int, stop: int, skip_bad: bool, on_skip: SkipCallback | None
    ) -> Iterator[Event]:
        if start == stop:
            return
        import awkward as ak

        roles = list(self._branches)
        expressions = [self._branches[r] for r in roles]
        entry = start
        for chunk in self._tree.iterate(
            expressions,
            entry_start=start,
            entry_stop=stop,
            step_size=self.step_size,
            library="ak",
        ):
            n = len(chunk)
            counts, flat = {}, {}
            for role in REQUIRED:
                jagged = chunk[self._branches[role]]
                counts[role] = np.asarray(ak.num(jagged, axis=1), dtype=np.int64)
                flat[role] = np.asarray(ak.flatten(jagged, axis=None), dtype=np.float64)
            scalars = {
                role: np.asarray(chunk[self._branches[role]], dtype=np.int64)
                for role in ("event", "run", "label")
                if role in self._branches
            }
            # each branch has its own offsets: a mismatch in one event must not shift the rest
            offsets = {}
            for role in REQUIRED:
                offsets[role] = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(counts[role], out=offsets[role][1:])
            same = np.ones(n, dtype=bool)
            for role in ("y", "z", "charge"):
                same &= counts[role] == counts["x"]
            for i in range(n):
                event_id = int(scalars["event"][i]) if "event" in scalars else entry + i
                try:
                    event = self._event(i, event_id, offsets, flat, scalars, bool(same[i]))
                except BadEventError as err:
                    self._skip_or_raise(err, skip_bad, on_skip)
                    continue
                yield event
            entry += n

    def _event(
        self,
        i: int,
        event_id: int,
        offsets: dict[str, np.ndarray],
        flat: dict[str, np.ndarray],
        scalars: dict[str, np.ndarray],
        same_length: bool,
    ) -> Event:
        if not same_length:
            raise BadEventError(
                "branches x, y, z, charge have different lengths",
                path=self.path,
                event=event_id,
                reason=REASON_COLUMNS,
            )
        n_points = offsets["x"][i + 1] - offsets["x"][i]
        points = np.empty((n_points, 4), dtype=np.float64)
        for col, role in enumerate(REQUIRED):
            points[:, col] = flat[role][offsets[role][i] : offsets[role][i + 1]]
        check_points(points, path=self.path, event_id=event_id, n_columns=4)
        label = -1
        if "label" in scalars:
            label = self._check_label(int(scalars["label"][i]), event_id)
        run = int(scalars["run"][i]) if "run" in scalars else self.run
        return Event(run=run, event_id=event_id, points=points, label=label, source=str(self.path))

    def close(self) -> None:
        self._file.close()
