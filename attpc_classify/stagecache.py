"""One stage cache for the multi-stage pipelines (the demo, the transfer benchmark).

A stage's outputs are reused when the settings they were made with (its *key*: a dict of
the stage's own config and the keys or names of what it reads) equal the ones asked for.
Two layouts, one record format (``{"key": ..., **info}`` as JSON, written atomically):

* **named outputs** (`StageCache.matches` / `stamp` / `clear`): outputs live where a
  person expects them (``demo_out/data/train.h5``); the record is
  ``ROOT/.stamps/<stage>.json``. The caller deletes stale outputs when the key differs.
* **keyed directories** (`StageCache.get`): ``ROOT/<stage>-<hash of key>/`` is built in
  ``ROOT/.<stage>-<hash>.partial/`` and renamed into place when complete; the record is
  ``stage.json`` inside. Different keys live side by side, so any config sharing a stage
  reuses it, and a killed stage resumes from its partial directory (``make`` continues
  what it finds there).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attpc_classify.config import config_hash, to_dict
from data_prep.atomic import atomic_path
from data_prep.errors import InputError

log = logging.getLogger(__name__)

#: bump when a keyed stage's output changes meaning, so old caches are not reused
STAGE_VERSION = 1


@dataclass
class Stage:
    """A finished keyed stage: its directory and its ``stage.json``."""

    name: str
    path: Path
    info: dict[str, Any]
    reused: bool


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(path: Path, key: Any, info: dict[str, Any]) -> dict[str, Any]:
    record = {"key": key, **info}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return record


def _plain(key: dict[str, Any]) -> Any:
    """The key as JSON gives it back (dataclasses -> dicts, tuples -> lists, paths -> str),
    so a key compares equal to the one read from a record."""
    return json.loads(json.dumps(to_dict(key), default=str))


class StageCache:
    """Records of which settings each stage's outputs under ``root`` were made with."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- named outputs -----------------------------------------------------------------

    def _stamp(self, stage: str) -> Path:
        return self.root / ".stamps" / f"{stage}.json"

    def matches(self, stage: str, key: dict[str, Any]) -> bool:
        """True when ``stage`` was last made (or started) with ``key``."""
        record = _read_record(self._stamp(stage))
        return record is not None and record.get("key") == _plain(key)

    def stamp(self, stage: str, key: dict[str, Any], **info: Any) -> None:
        """Record that ``stage``'s outputs are (being) made with ``key``."""
        self._stamp(stage).parent.mkdir(parents=True, exist_ok=True)
        _write_record(self._stamp(stage), _plain(key), info)

    def clear(self, stage: str) -> None:
        """Forget ``stage`` (before remaking it: a kill then leaves no matching record)."""
        self._stamp(stage).unlink(missing_ok=True)

    # -- keyed directories -------------------------------------------------------------

    def key_dir(self, stage: str, key: dict[str, Any]) -> Path:
        return self.root / f"{stage}-{config_hash({'v': STAGE_VERSION, **key})}"

    def get(self, stage: str, key: dict[str, Any], make: Callable[[Path], dict[str, Any]]) -> Stage:
        """The stage for ``key``: reused when finished, else made by ``make(partial_dir)``.

        ``make`` may find the partial directory of an interrupted attempt and continue it;
        it returns what ``stage.json`` records (costs, counts). One process builds a
        stage at a time: another one asking for it while it is built gets a one-line
        `InputError` (a cache may be shared by several runs; two writers in one partial
        directory would corrupt each other's files).
        """
        final = self.key_dir(stage, key)
        if (final / "stage.json").exists():
            return self._finished(stage, final)
        partial = final.with_name(f".{final.name}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        with _building(partial / LOCK_NAME, stage):
            if (final / "stage.json").exists():  # finished by another process meanwhile
                shutil.rmtree(partial, ignore_errors=True)
                return self._finished(stage, final)
            log.info("%s: building %s", stage, final.name)
            t0 = time.perf_counter()
            info = make(partial)
            info = {"stage": stage, "stage_wall_s": time.perf_counter() - t0, **info}
            info = _write_record(partial / "stage.json", _plain(key), info)
            if final.exists():  # an empty leftover (never a finished one: checked above)
                shutil.rmtree(final)
            os.replace(partial, final)  # a directory: atomic_path handles files only
            # the lock went along, still held: a process that comes now finds the record
            (final / LOCK_NAME).unlink()
        return Stage(stage, final, info, reused=False)

    @staticmethod
    def _finished(stage: str, final: Path) -> Stage:
        record = _read_record(final / "stage.json")
        if record is None:  # never deleted: a finished stage whose record was damaged
            raise InputError("not a valid stage record (JSON object)", path=final / "stage.json")
        return Stage(stage, final, record, reused=True)


#: the lock file in a stage's partial directory, held by the process that builds it
LOCK_NAME = ".building.lock"


@contextmanager
def _building(lock: Path, stage: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (released when the process ends, however it
    ends, so a killed build never leaves a stale lock), or raise `InputError` at once."""
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"stage {stage} is being built by another process; wait for it to finish "
                "or give this run another --cache",
                path=lock.parent,
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
