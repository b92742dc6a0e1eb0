"""Point-cloud files -> one image file: planned as tasks, run in parallel, merged atomically.

The work is a list of `Task` s, each a few thousand consecutive events of the inputs
(taken in order, so a task may end in one file and go on in the next)::

    plan_tasks(inputs)  ->  [Task, ...]                      cheap: reads metadata only
    run_task(task)      ->  .OUT.parts/part_000007.h5         read -> project -> write
    merge_parts(parts)  ->  OUT                               copy, rename into place

Every step writes under a temporary name and renames into place (``os.replace``), so a
killed run leaves finished parts and no file under the final name, and ``resume=True``
redoes only the missing parts: every event ends up in the output exactly once. The task
functions take and return plain picklable values so any executor can map them over the
plan (`data_prep.tasks.run_tasks`: our `ProcessPoolExecutor`, or a Dask cluster's).

Merging is cheap because parts hold whole compressed HDF5 chunks: a task covers a
multiple of `chunk_events` events, so when no event is skipped every part starts on a
chunk boundary of the output and its chunks are copied as stored bytes
(``read_direct_chunk``/``write_direct_chunk``), never decompressed. Chunks that do not line
up (after skipped bad events) are rebuilt, in parallel, by `rebuild_rows`.

Accounting: every event of the inputs is either *written* or *skipped* (a bad event,
counted by reason, only with ``skip_bad``). A written event whose points all fall outside
the image ranges is *empty*: it is still written, as blank images, so a physicist finds a
row for every good event and the counts add up; points dropped by the range cuts are
counted as *out-of-range points*. An event with no points at all in the file is bad
(reason "no points"), not empty.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep import quantiles
from data_prep.atomic import atomic_path, check_writable, temp_path
from data_prep.beamaxis import FileAxis
from data_prep.errors import InputError, plural
from data_prep.events import CLASS_NAMES, Event
from data_prep.imagefile import ImageWriter, chunk_events
from data_prep.images import ImageConfig, project
from data_prep.interrupt import check_interrupt
from data_prep.readers import EventReader, all_options, detect_format, open_events
from data_prep.readers.base import warn_unknown_run
from data_prep.structured import find_hot_pads
from data_prep.tasks import run_tasks

PLAN_VERSION = 1
DEFAULT_BATCH = 128  # events projected at once (64-256 measured fastest)
TASK_EVENTS = 2048  # events per task before rounding up to whole chunks
REBUILD_CHUNKS = 16  # output chunks per rebuild job
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Segment:
    """Positions ``[start, stop)`` of one input file."""

    path: str
    format: str
    start: int
    stop: int


@dataclass(frozen=True)
class Task:
    """One unit of work: consecutive events (one or more segments) -> one part file."""

    index: int
    segments: tuple[Segment, ...]
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def n_events(self) -> int:
        return sum(s.stop - s.start for s in self.segments)

    def to_json(self) -> list:
        return [[s.path, s.format, s.start, s.stop] for s in self.segments]


@dataclass
class TaskResult:
    """What a finished task wrote (also stored in its part file's attributes)."""

    index: int
    part: str
    written: int
    skipped: dict[str, int]
    empty: int
    out_of_range_points: int
    nonpositive_points: int = 0  # inside the ranges, charge <= 0: clipped to zero
    sparks: int = 0  # events whose spark the structured-noise rules removed


@dataclass
class BuildSummary:
    """Counts of one `build_images` run."""

    out: str
    written: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    empty: int = 0
    out_of_range_points: int = 0
    nonpositive_points: int = 0
    sparks: int = 0  # events with a spark (structured_noise=rules): a detector-health count
    files: int = 0
    seconds: float = 0.0
    tasks: int = 0
    reused_tasks: int = 0  # finished parts taken over from an interrupted run (resume)
    discarded_parts: int = 0  # finished parts of an earlier run deleted (no resume)
    # beam_axis=run: per input file, its fitted beam line (x0, ax, y0, ay) and how found
    beam_axes: dict[str, FileAxis] = field(default_factory=dict)
    # charge_calibration=proton_band: per input file, its charge unit (ADC/mm) and how found
    charge_units: dict[str, quantiles.ChargeUnit] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def describe(self) -> str:
        """One line: events written, skipped (and why), empty, out-of-range points."""
        rate = (self.written + self.skipped) / self.seconds if self.seconds > 0 else 0.0
        why = ", ".join(f"{n:,} {r}" for r, n in sorted(self.skipped_by_reason.items()))
        skipped = f"skipped {self.skipped:,}" + (f" ({why})" if why else "")
        return (
            f"{plural(self.written, 'event')} written to {self.out}, {skipped}, "
            f"{self.empty:,} empty (no point with charge > 0 inside the image ranges), "
            f"{plural(self.out_of_range_points, 'out-of-range point')} dropped, "
            f"{plural(self.nonpositive_points, 'non-positive charge point')} ignored"
            + (f", {plural(self.sparks, 'spark')} removed" if self.sparks else "")
            + f"; {plural(self.files, 'file')} in {self.seconds:.1f} s ({rate:,.0f} events/s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- inputs and plan ------------------------------------------------------------------------


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: each path itself, or a directory's non-hidden files (sorted).

    The same file named twice is an error (its events would be written twice).
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                names = list(p.iterdir())
            except OSError as err:
                raise InputError(f"cannot list directory ({err.strerror})", path=p) from None
            files = sorted(c for c in names if c.is_file() and not c.name.startswith("."))
            if not files:
                raise InputError("directory has no files", path=p)
            out.extend(files)
        else:
            out.append(p)
    seen: dict[Path, Path] = {}
    for p in out:
        key = p.resolve()
        if key in seen:
            raise InputError(f"input given twice (also as {seen[key]})", path=p)
        seen[key] = p
    if not out:
        raise InputError("no input files")
    return out


def check_memory(config: ImageConfig, fraction: float = 0.5) -> None:
    """Refuse image settings whose projection of one event would not fit in memory.

    One event needs a float64 scratch entry and an output value per pixel and voxel;
    ``--size 100000`` asks for ~300 GiB, found here instead of by the allocator.
    """
    per_event = config.n_channels * config.size**2 + config.voxel_grid**3
    need = per_event * (8 + np.dtype(config.dtype).itemsize)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return
    if need > fraction * total:
        raise InputError(
            f"images of {config.n_channels} x {config.size}^2 pixels"
            + (f" + {config.voxel_grid}^3 voxels" if config.voxel_grid else "")
            + f" need {need / 2**30:.1f} GiB per event; this machine has "
            f"{total / 2**30:.0f} GiB: choose a smaller size or voxel grid"
        )


def default_task_events(config: ImageConfig) -> int:
    """`TASK_EVENTS` rounded up to whole output chunks (so merging copies chunks as is)."""
    c = chunk_events(config)
    return c * math.ceil(TASK_EVENTS / c)


def reader_options_for(config: ImageConfig, options: dict[str, Any] | None) -> dict[str, Any]:
    """Reader options for preprocessing: the user's, plus charge from the config.

    Spyral's per-point labels are not needed for images, so they are not read unless
    asked for.
    """
    options = dict(options or {})
    unknown = set(options) - all_options()
    if unknown:
        raise InputError(f"unknown reader option(s): {', '.join(sorted(unknown))}")
    charge = options.pop("charge", None)
    if charge is not None and charge != config.charge_column:
        raise InputError(
            f"reader option charge={charge!r} disagrees with the image config's "
            f"charge_column={config.charge_column!r}; set charge_column instead"
        )
    options["charge"] = config.charge_column
    options.setdefault("point_labels", False)
    return options


def plan_tasks(
    inputs: Sequence[str | Path],
    config: ImageConfig,
    *,
    format: str = "auto",
    events_per_task: int | None = None,
    reader_options: dict[str, Any] | None = None,
    keep_open: bool = False,
) -> list[Task]:
    """Cut the inputs (in order) into tasks of ``events_per_task`` events.

    Opens every file once for its event count and class names (metadata only);
    ``keep_open`` leaves the readers in this thread's cache for `run_task` (not before
    forking worker processes: HDF5 files must not be open across a fork).

    Raises
    ------
    InputError
        Unreadable/unknown files, image files (already preprocessed), or inputs that
        declare different class names.
    """
    per_task = default_task_events(config) if events_per_task is None else events_per_task
    if per_task < 1:
        raise InputError(f"events per task must be >= 1, got {per_task}")
    files: list[tuple[str, str, int]] = []
    class_names: tuple[str, ...] | None = None
    named_by: str | None = None
    for path in map(Path, inputs):
        fmt = detect_format(path) if format == "auto" else format
        if fmt == "images":
            raise InputError("already an image file; preprocess takes point-cloud files", path=path)
        if keep_open:
            reader = _cached_reader(str(path), fmt, reader_options or {})
            n, names = len(reader), reader.class_names
            warn_unknown_run(reader)
        else:
            with open_events(path, fmt, **(reader_options or {})) as reader:
                n, names = len(reader), reader.class_names
                warn_unknown_run(reader)
        if names is not None:
            if class_names is not None and names != class_names:
                raise InputError(
                    f"class names {list(names)} differ from {list(class_names)} in {named_by}",
                    path=path,
                )
            class_names, named_by = names, str(path)
        files.append((str(path), fmt, n))
    class_names = class_names or CLASS_NAMES

    tasks: list[Task] = []
    segments: list[Segment] = []
    room = per_task
    for path, fmt, n in files:
        pos = 0
        while pos < n:
            take = min(room, n - pos)
            segments.append(Segment(path, fmt, pos, pos + take))
            pos += take
            room -= take
            if room == 0:
                tasks.append(Task(len(tasks), tuple(segments), class_names))
                segments, room = [], per_task
    if segments:
        tasks.append(Task(len(tasks), tuple(segments), class_names))
    return tasks


# -- one task -------------------------------------------------------------------------------

# Readers stay open between tasks of the same process (per thread: Dask runs tasks in
# threads): listing a gapped Spyral file's event names is paid once, not once per task.
_READER_CACHE = threading.local()
_READER_CACHE_SIZE = 2


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **asdict(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _file_identity(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # open_events reports the missing file
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _cached_reader(path: str, fmt: str, options: dict[str, Any]) -> EventReader:
    cache: OrderedDict[tuple, EventReader] | None
    cache = getattr(_READER_CACHE, "readers", None)
    if cache is None:
        cache = _READER_CACHE.readers = OrderedDict()
    # The file's identity is part of the key: a long-lived Dask worker keeps its cache
    # between runs and must not read a file rewritten since through an old reader.
    key = (path, fmt, json.dumps(_jsonable(options), sort_keys=True), _file_identity(path))
    reader = cache.pop(key, None)
    if reader is None:
        reader = open_events(path, fmt, **options)
        while len(cache) >= _READER_CACHE_SIZE:
            cache.popitem(last=False)[1].close()
    cache[key] = reader
    return reader


def close_cached_readers() -> None:
    """Close the readers `run_task` keeps open in this thread."""
    cache = getattr(_READER_CACHE, "readers", None)
    while cache:
        cache.popitem()[1].close()


_HEAP_TUNED = False


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the OS.

    Each projected batch allocates ~15 MB of temporaries. With glibc's defaults they are
    fresh ``mmap`` s whose pages the kernel zero-fills on first touch, and that doubled
    the projection time (measured: 91 -> 45 µs/event) once reads were interleaved.
    Process-wide (memory is reused, the peak stays the same); a no-op where the C
    library is not glibc. A library call must not retune its caller's process, so only
    processes this package or the CLI own call it: `build_images`' pool workers (at start)
    and ``attpc-classify preprocess``.
    """
    global _HEAP_TUNED
    if _HEAP_TUNED:
        return
    _HEAP_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        libc.mallopt(m_mmap_threshold, 64 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):
        pass


def part_path(parts_dir: str | Path, index: int) -> Path:
    return Path(parts_dir) / f"part_{index:06d}.h5"


def run_task(
    task: Task,
    config: ImageConfig,
    parts_dir: str | Path,
    *,
    skip_bad: bool = False,
    reader_options: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    beam_axes: dict[str, Sequence[float]] | None = None,
    charge_units: dict[str, float] | None = None,
) -> TaskResult:
    """Read, project and write one task's events into its part file (atomically).

    Parameters
    ----------
    task
        From `plan_tasks`.
    config
        Image configuration.
    parts_dir
        Directory of part files; the part is ``part_<index>.h5`` there.
    skip_bad
        Skip and count bad events instead of raising `BadEventError`.
    reader_options
        As for `open_events` (use `reader_options_for` to add the config's charge).
    batch_size
        Events projected at once.
    progress
        Called with the number of events read (written or skipped) after each batch.
    beam_axes
        ``beam_axis=run``: each input file's beam axis (by path, `quantiles.beam_axes`).
    charge_units
        ``charge_calibration=proton_band``: each input file's charge unit (by path,
        `quantiles.charge_units`).

    Returns
    -------
    TaskResult
        The part's path and counts.
    """
    options = reader_options or {}
    skipped: Counter[str] = Counter()
    counts = dict.fromkeys(("written", "empty", "out_of_range_points", "nonpositive_points",
                            "sparks"), 0)  # fmt: skip
    skipped_at_flush = 0

    def on_skip(event_id: int, reason: str) -> None:
        skipped[reason] += 1

    part = part_path(parts_dir, task.index)
    extra = {"task": json.dumps(task.to_json()), "task_index": task.index}
    batch: list[Event] = []
    file_config = config  # the config of the file being read (its beam axis)

    def flush(writer: ImageWriter) -> None:
        nonlocal skipped_at_flush
        check_interrupt()
        if batch:
            proj = project(batch, file_config, hot_pads)
            writer.append(
                proj.images,
                np.fromiter((e.event_id for e in batch), np.int64, len(batch)),
                np.fromiter((e.run for e in batch), np.int32, len(batch)),
                np.fromiter((e.label for e in batch), np.int8, len(batch)),
                proj.voxels,
                proj.features,
            )
            counts["written"] += len(batch)
            counts["empty"] += int(proj.empty.sum())
            counts["out_of_range_points"] += int(proj.n_outside.sum())
            counts["nonpositive_points"] += int(proj.n_nonpositive.sum())
            if proj.sparked is not None:
                counts["sparks"] += int(proj.sparked.sum())
        n_skipped = sum(skipped.values())
        if progress is not None:
            progress(len(batch) + n_skipped - skipped_at_flush)
        skipped_at_flush = n_skipped
        batch.clear()

    hot_pads: dict[int, np.ndarray] = {}  # run -> its hot pads (structured_noise="rules")
    with ImageWriter(part, config, class_names=task.class_names, extra_attrs=extra) as writer:
        for seg in task.segments:
            reader = _cached_reader(seg.path, seg.format, options)
            if config.beam_axis == "run" or config.charge_calibration != "none":
                flush(writer)  # a batch is of one file: the events share its axis and unit
                file_config = config
            if config.beam_axis == "run":
                file_config = replace(file_config, run_beam_axis=(beam_axes or {})[seg.path])
            if config.charge_calibration != "none":
                file_config = replace(file_config, run_charge_unit=(charge_units or {})[seg.path])
            axis = file_config.run_beam_axis
            if config.structured_noise != "none":
                # from the whole file's sample, so a task sees what any other task sees
                found = find_hot_pads(reader, config.hot_pad_fraction, config.hot_pad_sample, axis)
                for run, pads in found.items():
                    hot_pads[run] = np.union1d(hot_pads.get(run, pads), pads)
            events = reader.iter_events(seg.start, seg.stop, skip_bad=skip_bad, on_skip=on_skip)
            for event in events:
                batch.append(event)
                if len(batch) == batch_size:
                    flush(writer)
        flush(writer)
        summary = {**counts, "skipped": dict(skipped)}
        writer.commit(sources=[s.path for s in task.segments], summary=summary)
    return TaskResult(index=task.index, part=str(part), skipped=dict(skipped), **counts)


def read_part(path: str | Path) -> TaskResult:
    """The `TaskResult` recorded in a finished part file."""
    with h5py.File(path, "r") as f:
        summary = json.loads(f.attrs["summary"])
        index = int(f.attrs["task_index"])
    return TaskResult(
        index=index,
        part=str(path),
        written=int(summary["written"]),
        skipped={k: int(v) for k, v in summary["skipped"].items()},
        empty=int(summary["empty"]),
        out_of_range_points=int(summary["out_of_range_points"]),
        nonpositive_points=int(summary.get("nonpositive_points", 0)),
        sparks=int(summary.get("sparks", 0)),  # parts written before the count have none
    )


def first_duplicate(run: np.ndarray, event_id: np.ndarray) -> tuple[int, int] | None:
    """Rows ``(i, j)``, ``i < j``, of the first repeated ``(run, event_id)`` pair, or None."""
    keys = np.stack([np.asarray(run, np.int64), np.asarray(event_id, np.int64)], axis=1)
    if len(keys) < 2:
        return None
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    same = np.flatnonzero((keys[order][1:] == keys[order][:-1]).all(axis=1))
    if same.size == 0:
        return None
    a, b = order[same[0]], order[same[0] + 1]
    return int(min(a, b)), int(max(a, b))


def check_unique_events(results: Sequence[TaskResult], tasks: Sequence[Task]) -> None:
    """Refuse an output in which one ``(run, event)`` pair would appear twice.

    A renamed copy of a run file (or two files that record the same run number) would
    otherwise put the same events in the training data twice; pairs are the key that
    `classify`, `evaluate --sim` and every join downstream rely on.
    """
    parts = [r for r in sorted(results, key=lambda r: r.index) if r.written > 0]
    by_index = {t.index: t for t in tasks}
    runs, ids, owner = [], [], []  # owner: the file each row came from, where known
    for r in parts:
        with h5py.File(r.part, "r") as f:
            runs.append(f["run"][()])
            ids.append(f["event_id"][()])
        segments = by_index[r.index].segments
        if sum(s.stop - s.start for s in segments) == r.written:  # nothing skipped
            owner += [s.path for s in segments for _ in range(s.stop - s.start)]
        else:
            owner += [" or ".join(sorted({s.path for s in segments}))] * r.written
    if not parts:
        return
    run, event_id = np.concatenate(runs), np.concatenate(ids)
    dup = first_duplicate(run, event_id)
    if dup is None:
        return
    where = [owner[i] for i in dup]
    source = where[0] if where[0] == where[1] else f"{where[0]} and in {where[1]}"
    raise InputError(
        f"run {int(run[dup[0]])} event {int(event_id[dup[0]])} appears twice (in {source}): "
        "every (run, event) must be unique; drop the copy, or give the files their own run "
        "numbers (--run, simulate --first-run)"
    )


# -- merge ----------------------------------------------------------------------------------

_PER_EVENT = ("images", "voxels")
_SMALL = ("event_id", "run", "label")


def rebuild_rows(
    parts: Sequence[tuple[str, int, int]],
    start: int,
    stop: int,
    out: str | Path,
    config: ImageConfig,
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> str:
    """Write output rows ``[start, stop)`` into their own file, aligned on chunks.

    ``parts`` lists ``(path, first output row, n rows)`` of every part. The new file's
    chunks are then copied into the output like a part's. Memory: ``stop - start`` rows.
    """
    with ImageWriter(out, config, class_names=class_names) as writer:
        for path, offset, n in parts:
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo >= hi:
                continue
            with h5py.File(path, "r") as f:
                sel = slice(lo - offset, hi - offset)
                voxels = f["voxels"][sel] if "voxels" in f else None
                features = f["features"][sel] if "features" in f else None
                writer.append(
                    f["images"][sel], f["event_id"][sel], f["run"][sel], f["label"][sel], voxels,
                    features,
                )  # fmt: skip
        writer.commit()
    return str(out)


def _same_dataset_layout(src: h5py.Dataset, dst: h5py.Dataset) -> bool:
    return (
        src.chunks == dst.chunks
        and src.dtype == dst.dtype
        and src.shape[1:] == dst.shape[1:]
        and src.compression == dst.compression
        and src.compression_opts == dst.compression_opts
        and src.shuffle == dst.shuffle
    )


def merge_parts(
    results: Sequence[TaskResult],
    out: str | Path,
    config: ImageConfig,
    *,
    class_names: tuple[str, ...] = CLASS_NAMES,
    sources: Sequence[str] = (),
    summary: dict[str, Any] | None = None,
    executor: Executor | None = None,
    scratch_dir: str | Path | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Concatenate part files (in task order) into the image file ``out``, atomically.

    Output chunks that line up with a part's chunks are copied as stored (compressed)
    bytes; the others are rebuilt by `rebuild_rows` (on ``executor`` when given) into
    scratch files under ``scratch_dir`` and copied from there. ``attrs``: more root
    attributes of the image file.
    """
    out = Path(out)
    scratch = Path(scratch_dir) if scratch_dir is not None else out.parent
    parts = [r for r in sorted(results, key=lambda r: r.index) if r.written > 0]
    offsets = np.cumsum([0] + [r.written for r in parts]).tolist()
    total = offsets[-1]
    chunk = chunk_events(config)
    rebuilt: list[str] = []
    with ImageWriter(out, config, class_names=class_names, extra_attrs=attrs) as writer:
        writer.resize(total)
        dst = writer.file
        names = [n for n in _PER_EVENT if n in dst]
        usable = [_same_layout(r.part, dst, names) for r in parts]

        # Where each output chunk comes from: (file, chunk index in that file).
        source_of: list[tuple[str, int]] = []
        to_rebuild: list[int] = []
        i = 0
        for k in range(math.ceil(total / chunk)):
            row = k * chunk
            while offsets[i + 1] <= row:
                i += 1
            local = row - offsets[i]
            if usable[i] and local % chunk == 0 and offsets[i + 1] >= min(row + chunk, total):
                source_of.append((parts[i].part, local // chunk))
            else:
                source_of.append(("", -1))
                to_rebuild.append(k)

        jobs = _rebuild_jobs(to_rebuild)
        part_rows = [(r.part, offsets[j], r.written) for j, r in enumerate(parts)]
        args = [
            (part_rows, k0 * chunk, min(k1 * chunk, total), str(scratch / f".rebuild_{k0:09d}.h5"))
            for k0, k1 in jobs
        ]
        try:
            if executor is not None and len(args) > 1:
                futures = [executor.submit(rebuild_rows, *a, config, class_names) for a in args]
                rebuilt = [f.result() for f in futures]
            else:
                rebuilt = [rebuild_rows(*a, config, class_names) for a in args]
            for (k0, k1), path in zip(jobs, rebuilt, strict=True):
                for k in range(k0, k1):
                    source_of[k] = (path, k - k0)
            _copy_chunks(dst, names, source_of, chunk)
            row = 0
            for r in parts:
                with h5py.File(r.part, "r") as f:
                    for name in _SMALL + (("features",) if "features" in dst else ()):
                        dst[name][row : row + r.written] = f[name][()]
                row += r.written
            writer.commit(sources=list(sources), summary=summary)
        finally:
            for path in rebuilt:
                Path(path).unlink(missing_ok=True)
    return out


def _same_layout(path: str, dst: h5py.File, names: Sequence[str]) -> bool:
    """True when the part's chunks can be copied into ``dst`` byte for byte.

    Parts made by another version (other chunking or compression) are rebuilt instead.
    """
    with h5py.File(path, "r") as f:
        for name in names:
            if name not in f:
                return False
            if not _same_dataset_layout(f[name], dst[name]):
                return False
    return True


def _rebuild_jobs(chunks: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive chunk indices, at most `REBUILD_CHUNKS` long."""
    jobs: list[tuple[int, int]] = []
    for k in chunks:
        if jobs and jobs[-1][1] == k and k - jobs[-1][0] < REBUILD_CHUNKS:
            jobs[-1] = (jobs[-1][0], k + 1)
        else:
            jobs.append((k, k + 1))
    return jobs


def _copy_chunks(
    dst: h5py.File, names: Sequence[str], source_of: list[tuple[str, int]], chunk: int
) -> None:
    """Copy stored chunks: output chunk ``k`` <- chunk ``local`` of file ``path``."""
    targets = {name: dst[name] for name in names}
    current, src = None, None
    try:
        for k, (path, local) in enumerate(source_of):
            if path != current:
                if src is not None:
                    src.close()
                src, current = h5py.File(path, "r"), path
            for name, target in targets.items():
                tail = (0,) * (target.ndim - 1)
                mask, raw = src[name].id.read_direct_chunk((local * chunk, *tail))
                target.id.write_direct_chunk((k * chunk, *tail), raw, mask)
    finally:
        if src is not None:
            src.close()


# -- the whole run --------------------------------------------------------------------------


def parts_dir_for(out: str | Path) -> Path:
    """``.OUT.parts/`` next to the output: where unfinished runs keep their parts."""
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


def _plan_record(
    inputs: Sequence[Path],
    tasks: Sequence[Task],
    config: ImageConfig,
    reader_options: dict[str, Any],
) -> dict[str, Any]:
    files = []
    for p in inputs:
        st = p.stat()
        files.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return {
        "plan_version": PLAN_VERSION,
        "config": config.to_dict(),
        "reader_options": _jsonable(reader_options),
        "inputs": files,
        "tasks": [t.to_json() for t in tasks],
        "class_names": list(tasks[0].class_names) if tasks else list(CLASS_NAMES),
    }


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _plan_difference(old: Any, new: dict[str, Any]) -> str:
    """What differs between two plan records, in words (for the refused --resume)."""
    if not isinstance(old, dict):
        return "settings (its plan.json is unreadable)"
    if old.get("inputs") != new["inputs"]:
        was = {f["path"] for f in old.get("inputs", [])}
        now = {f["path"] for f in new["inputs"]}
        if was != now:
            return f"input files ({len(was)} then, {len(now)} now)"
        return "versions of the input files (size or modification time changed)"
    for group in ("config", "reader_options"):
        a, b = old.get(group) or {}, new[group] or {}
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if keys:
            k = keys[0]
            return f"setting {k}={a.get(k)!r} (now {b.get(k)!r})"
    return "task split (--events-per-task) or class names"


def _prepare_parts(
    parts_dir: Path, plan: dict[str, Any], tasks: Sequence[Task], resume: bool, skip_bad: bool
) -> tuple[dict[int, TaskResult], int]:
    """Finished parts to reuse (resume), and how many finished parts were discarded."""
    plan_file = parts_dir / "plan.json"
    discarded = 0
    if parts_dir.exists() and resume and plan_file.exists():
        try:
            old = json.loads(plan_file.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        new = json.loads(json.dumps(plan))
        if old != new:
            raise InputError(
                f"the interrupted run there used other {_plan_difference(old, new)}; "
                "drop --resume to start over",
                path=parts_dir,
            )
        for tmp in parts_dir.glob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)  # half-written parts of the killed run
        done: dict[int, TaskResult] = {}
        for task in tasks:
            path = part_path(parts_dir, task.index)
            if not path.exists():
                continue
            try:
                result = read_part(path)
            except (OSError, KeyError, ValueError):
                path.unlink()  # unreadable part: redo it
                continue
            if result.index != task.index or (sum(result.skipped.values()) and not skip_bad):
                path.unlink()  # made with skip_bad; without it the task must fail again
                continue
            done[task.index] = result
        return done, discarded
    if parts_dir.exists():
        discarded = len(list(parts_dir.glob("part_*.h5")))
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True)
    _atomic_write_text(plan_file, json.dumps(plan, indent=1))
    return {}, discarded


# Set in pool workers by _init_worker: where run_task reports progress.
_PROGRESS_QUEUE: Any = None


def _init_worker(progress_queue: Any, parts_dir: str | None = None, parent: int = 0) -> None:
    """Pool worker set-up: progress queue, and death with the parent process.

    The worker asks the kernel for SIGTERM when its parent dies (Linux
    ``PR_SET_PDEATHSIG``; even a SIGKILLed parent), and on SIGTERM deletes its own
    half-written part and exits at once: no orphan keeps computing, nothing half-written
    stays in the parts directory.
    """
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    keep_freed_memory()  # our own worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle

    def die(signum: int, frame: object) -> None:
        if parts_dir is not None:
            for tmp in Path(parts_dir).glob(f".*.tmp-{os.getpid()}"):
                tmp.unlink(missing_ok=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, die)
    _die_with_parent()
    if parent and os.getppid() != parent:  # the parent died before the request took
        die(signal.SIGTERM, None)


def _die_with_parent() -> None:
    """SIGTERM to this process when its parent exits (Linux only; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def remove_unfinished(parts_dir: Path) -> None:
    """After a failed or interrupted run: delete half-written parts; keep the parts
    directory only when it holds finished parts that ``--resume`` can reuse."""
    if not parts_dir.is_dir():
        return
    for tmp in parts_dir.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)
    if not any(parts_dir.glob("part_*.h5")):
        shutil.rmtree(parts_dir, ignore_errors=True)


def _run_task_in_worker(task: Task, *args: Any, **kwargs: Any) -> TaskResult:
    q = _PROGRESS_QUEUE
    return run_task(task, *args, progress=None if q is None else q.put, **kwargs)


def _drain(q: Any, progress: Progress | None) -> None:
    while True:
        try:
            n = q.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(n)


def pool_context() -> mp.context.BaseContext:
    # fork starts workers in milliseconds (no re-import of numpy/h5py); no HDF5 file is
    # open in this process while the pool starts. Elsewhere use the platform default.
    if "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context()


def _check_build(
    inputs: Sequence[str | Path], out: Path, config: ImageConfig, *, batch_size: int, workers: int
) -> list[Path]:
    """Refuse, before any work, settings and outputs that cannot work; the input files."""
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    inputs = expand_inputs(inputs)
    if any(p.resolve() == out.resolve() for p in inputs):
        raise InputError("output file is also an input", path=out)
    if not out.parent.is_dir():
        raise InputError("output directory does not exist", path=out.parent)
    check_writable(out)
    check_memory(config)
    return inputs


@contextlib.contextmanager
def _task_executor(
    executor: Executor | None, workers: int, n_todo: int, parts_dir: Path
) -> Iterator[tuple[Executor | None, Any]]:
    """Where tasks and merge jobs run: ``(executor, progress queue)``.

    The caller's executor (progress per finished task); else our own process pool when
    there are workers and tasks for it (progress per batch through a queue); else
    ``(None, None)``: everything in this process.
    """
    if executor is not None:
        yield executor, None
    elif workers > 1 and n_todo > 1:
        ctx = pool_context()
        progress_queue = ctx.Queue()
        with ProcessPoolExecutor(
            max_workers=min(workers, n_todo),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(progress_queue, str(parts_dir), os.getpid()),
        ) as pool:
            yield pool, progress_queue
    else:
        yield None, None


def build_images(
    inputs: Sequence[str | Path],
    out: str | Path,
    config: ImageConfig,
    *,
    format: str = "auto",
    workers: int = 1,
    skip_bad: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    reader_options: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH,
    events_per_task: int | None = None,
    on_plan: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> BuildSummary:
    """Preprocess point-cloud files into one image file.

    Parameters
    ----------
    inputs
        Point-cloud files (any supported format, mixed formats allowed), in order.
    out
        The image file to write; it appears only when complete.
    config
        Views, size, ranges, charge transform (recorded in the file).
    format
        ``"auto"`` (detect each file by content) or one format for all.
    workers
        Processes; 1 runs everything in this process.
    skip_bad
        Skip bad events (counted by reason) instead of stopping at the first.
    resume
        Reuse the finished parts of an interrupted run with the same plan and config.
    progress
        Called with the number of newly read events (reused parts count at once).
    reader_options
        Reader options (`open_events`), e.g. ``{"tree": "T", "run": 12}``.
    batch_size
        Events projected at once.
    events_per_task
        Events per task (default: ~2k, rounded to whole output chunks).
    on_plan
        Called once with the total number of input events, after planning (to size a
        progress bar).
    executor
        Run tasks and merge jobs on this `concurrent.futures.Executor` instead of our own
        process pool (``workers`` is then ignored), e.g. a Dask cluster's
        ``client.get_executor()``. Its workers must see the same file system.

    Returns
    -------
    BuildSummary
        Counts and timing; `BuildSummary.describe` gives the one-line summary.
    """
    t0 = time.perf_counter()
    out = Path(out)
    inputs = _check_build(inputs, out, config, batch_size=batch_size, workers=workers)
    options = reader_options_for(config, reader_options)
    # beam_axis=run: each input file is a run with its own beam line
    fits = quantiles.beam_axes(config, inputs, format=format, reader_options=options)
    axes = {p: fit.axis for p, fit in fits.items()}
    # charge_norm=quantile: the inputs are one run; its quantiles go into the file's config
    config = quantiles.for_run(config, inputs, format=format, reader_options=options, axes=axes)
    parts_dir: Path | None = None  # set once planning succeeded: then this run owns it
    try:
        tasks = plan_tasks(
            inputs,
            config,
            format=format,
            events_per_task=events_per_task,
            reader_options=options,
            keep_open=executor is None and workers == 1,  # the same readers then run the tasks
        )
        class_names = tasks[0].class_names if tasks else CLASS_NAMES
        if on_plan is not None:
            on_plan(sum(t.n_events for t in tasks))
        parts_dir = parts_dir_for(out)
        plan = _plan_record(inputs, tasks, config, options)
        results, discarded = _prepare_parts(parts_dir, plan, tasks, resume, skip_bad)
        reused = len(results)
        for stale in out.parent.glob(f".{out.name}.tmp-*"):
            stale.unlink(missing_ok=True)  # a killed merge's temporary output
        if progress is not None and results:
            progress(sum(t.n_events for t in tasks if t.index in results))

        todo = [t for t in tasks if t.index not in results]
        kwargs = dict(skip_bad=skip_bad, reader_options=options, batch_size=batch_size)
        if axes:
            kwargs["beam_axes"] = axes
        merge = dict(
            class_names=class_names, sources=[str(p) for p in inputs], scratch_dir=parts_dir
        )
        attrs = {}
        if axes:  # for the physicist: which line each file's images are centred on
            attrs["beam_axes"] = json.dumps({p: list(a) for p, a in axes.items()})
        with _task_executor(executor, workers, len(todo), parts_dir) as (pool, progress_queue):
            # charge_calibration=proton_band: each input file is a run with its own
            # charge unit, measured on the workers (a sample's features per file)
            found = quantiles.charge_units(config, inputs, axes=axes, format=format,
                                           reader_options=options, executor=pool)  # fmt: skip
            units = {p: u.unit for p, u in found.items()}
            if units:
                kwargs["charge_units"] = units
                # for the physicist: in which unit each file's charges are (null: none)
                attrs["charge_units"] = json.dumps(quantiles.units_json(found))
            if attrs:
                merge["attrs"] = attrs
            if pool is None:  # in this process, with the readers planning opened
                for t in todo:
                    r = run_task(t, config, parts_dir, progress=progress, **kwargs)
                    results[r.index] = r
                close_cached_readers()
            else:
                _run_tasks(pool, todo, results, config, parts_dir, kwargs, progress, progress_queue)
            _check_or_discard(results, tasks, parts_dir)
            counts = _totals(results.values())
            merge_parts(list(results.values()), out, config, summary=counts, executor=pool, **merge)
    except BaseException:
        if parts_dir is not None:
            remove_unfinished(parts_dir)
        temp_path(out).unlink(missing_ok=True)  # a merge's temporary output
        raise
    finally:
        close_cached_readers()
    shutil.rmtree(parts_dir, ignore_errors=True)
    return BuildSummary(
        out=str(out),
        files=len(inputs),
        seconds=time.perf_counter() - t0,
        tasks=len(tasks),
        reused_tasks=reused,
        discarded_parts=discarded,
        beam_axes=fits,
        charge_units=found,
        **counts,
    )


def _check_or_discard(
    results: dict[int, TaskResult], tasks: Sequence[Task], parts_dir: Path
) -> None:
    """`check_unique_events`; on refusal the parts are deleted (no resume can fix it)."""
    try:
        check_unique_events(list(results.values()), tasks)
    except InputError:
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise


def _run_tasks(
    executor: Executor,
    todo: Sequence[Task],
    results: dict[int, TaskResult],
    config: ImageConfig,
    parts_dir: Path,
    kwargs: dict[str, Any],
    progress: Progress | None,
    progress_queue: Any = None,
) -> None:
    """Map `run_task` over ``todo`` on ``executor`` (`data_prep.tasks.run_tasks`).

    With our own pool, workers report progress per batch through ``progress_queue``;
    on any other executor (e.g. Dask's) progress comes per finished task.
    """

    def done(task: Task, r: TaskResult) -> None:
        results[r.index] = r
        if progress_queue is None and progress is not None:
            progress(task.n_events)

    fn = run_task if progress_queue is None else _run_task_in_worker
    poll = None if progress_queue is None else functools.partial(_drain, progress_queue, progress)
    run_tasks(executor, fn, todo, config, parts_dir, on_result=done, poll=poll, **kwargs)
    if poll is not None:
        poll()  # the last batches' progress


def _totals(results: Iterable[TaskResult]) -> dict[str, Any]:
    skipped: Counter[str] = Counter()
    written = empty = outside = nonpositive = sparks = 0
    for r in results:
        written += r.written
        empty += r.empty
        outside += r.out_of_range_points
        nonpositive += r.nonpositive_points
        sparks += r.sparks
        skipped.update(r.skipped)
    return {
        "written": written,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "empty": empty,
        "out_of_range_points": outside,
        "nonpositive_points": nonpositive,
        "sparks": sparks,
    }
