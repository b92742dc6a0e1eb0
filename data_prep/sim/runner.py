"""`simulate`: plan the events, split them into run files, run the files in parallel.

Every event draws from its own generator ``default_rng([seed, EVENT_STREAM, event])``
and the plan (which channel each event is) from ``default_rng([seed, PLAN_STREAM,
n_events])``, so the files are a pure function of (config, n_events, seed,
events_per_file): the worker count changes only the wall time.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.errors import InputError
from data_prep.events import CLASS_NAMES
from data_prep.interrupt import check_interrupt
from data_prep.sim.channels import CHANNEL_NAMES, plan_channels
from data_prep.sim.config import SimConfig, validate_config
from data_prep.sim.physics import EventGenerator, check_physics
from data_prep.sim.randomize import draw_electronics, draw_faults, draw_knobs, fixed_knobs
from data_prep.sim.runfile import (
    IDENTITY_ATTRS,
    PARTIAL_SUFFIX,
    RunFileWriter,
    file_attrs,
    read_run_info,
    run_path,
)

PLAN_STREAM = 0x5EED_0001
EVENT_STREAM = 0x5EED_0002
KNOB_STREAM = 0x5EED_0003
FAULT_STREAM = 0x5EED_0004
ELECTRONICS_STREAM = 0x5EED_0005
DEFAULT_EVENTS_PER_FILE = 100


def event_rng(seed: int, event: int) -> np.random.Generator:
    """The generator of one event: depends on nothing but the seed and the event number."""
    return np.random.default_rng([seed, EVENT_STREAM, event])


def knob_rng(seed: int, event: int, first_event: int, per: str) -> np.random.Generator:
    """The generator of the randomised knobs: one per event, or one per run file (keyed on
    the file's first event, so the files of one simulation draw different settings)."""
    key = event if per == "event" else first_event
    return np.random.default_rng([seed, KNOB_STREAM, int(per == "file"), key])


def fault_rng(seed: int, first_event: int) -> np.random.Generator:
    """The generator of one run file's detector faults (``randomize.faults: file``): keyed
    on the seed and the file's first event, so every file is its own faulty detector and
    the same seed gives the same faults."""
    return np.random.default_rng([seed, FAULT_STREAM, first_event])


def electronics_rng(seed: int, first_event: int) -> np.random.Generator:
    """The generator of one run file's electronics (point formation, shaping time): its
    own stream, so drawing them moves neither the physics nor the other knobs."""
    return np.random.default_rng([seed, ELECTRONICS_STREAM, first_event])


@dataclass
class SimSummary:
    """What `simulate` produced (resumed files included).

    Attributes
    ----------
    n_events
        Events in all run files.
    classes, channels
        Events per class name / per channel name.
    rejected, rejected_channels
        Reaction draws discarded for too few points above threshold, per class / channel.
    mean_points
        Mean points per event per class.
    files
        All run files, in run order.
    resumed
        Files found finished and kept.
    seconds
        Wall time of this call.
    """

    n_events: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_channels: dict[str, int] = field(default_factory=dict)
    mean_points: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def from_tables(cls, tables: list[np.ndarray], **kwargs: Any) -> SimSummary:
        table = np.concatenate(tables) if tables else np.empty(0)
        summary = cls(n_events=len(table), **kwargs)
        channel = np.array([c.decode() for c in table["channel"]]) if len(table) else []
        for i, name in enumerate(CLASS_NAMES):
            mask = table["label"] == i if len(table) else np.zeros(0, bool)
            summary.classes[name] = int(mask.sum())
            summary.rejected[name] = int((table["draws"][mask] - 1).sum()) if mask.any() else 0
            summary.mean_points[name] = float(table["n_points"][mask].mean()) if mask.any() else 0.0
        for name in CHANNEL_NAMES:
            mask = channel == name if len(table) else np.zeros(0, bool)
            summary.channels[name] = int(np.sum(mask))
            summary.rejected_channels[name] = (
                int((table["draws"][mask] - 1).sum()) if np.any(mask) else 0
            )
        return summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "classes": self.classes,
            "channels": self.channels,
            "rejected": self.rejected,
            "rejected_channels": self.rejected_channels,
            "mean_points": {k: round(v, 1) for k, v in self.mean_points.items()},
            "files": [str(p) for p in self.files],
            "resumed": [str(p) for p in self.resumed],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _FileTask:
    run: int
    first_event: int
    channels: np.ndarray  # channel ids of the file's events
    path: Path
    attrs: dict[str, Any]


# one generator per process, built on first use (numba compiles once per process)
_GENERATOR: tuple[str, EventGenerator] | None = None
_QUEUE: Any = None


def _generator(config: SimConfig) -> EventGenerator:
    global _GENERATOR
    key = config.to_json()
    if _GENERATOR is None or _GENERATOR[0] != key:
        _GENERATOR = (key, EventGenerator(config))
    return _GENERATOR[1]


def _run_file(
    task: _FileTask, config: SimConfig, seed: int, progress: Callable[[int], None] | None
) -> np.ndarray:
    """Simulate and write one run file; returns its event table."""
    generator = _generator(config)
    per = config.randomize.per
    randomised = bool(config.randomize.active)
    knobs = None
    faults = None
    file_values: dict[str, float] = {}  # settings of the whole run file
    if config.randomize.faults == "file":
        faults, file_values = draw_faults(
            config, generator.noise_pads, fault_rng(seed, task.first_event)
        )
    if config.randomize.electronics:
        file_values.update(draw_electronics(config, electronics_rng(seed, task.first_event)))
    if file_values:
        knobs = fixed_knobs(config)
    if randomised and per == "file":
        knobs = draw_knobs(config, knob_rng(seed, task.first_event, task.first_event, per))
    elif randomised and config.randomize.per_run:
        # the file's draw (the stream per: file would use), kept for the listed knobs; the
        # events' own draws are made as before and overwritten
        run = draw_knobs(config, knob_rng(seed, task.first_event, task.first_event, "file"))
        file_values.update({k: getattr(run, k) for k in config.randomize.per_run})
    with RunFileWriter(task.path, task.attrs) as writer:
        for offset, channel_id in enumerate(task.channels):
            event_id = task.first_event + offset
            if randomised and per == "event":
                knobs = draw_knobs(config, knob_rng(seed, event_id, task.first_event, per))
            if faults is not None:
                knobs.faults = faults  # the run file's own detector
            # the run file's own settings (draws of the knobs above are unchanged)
            for name, value in file_values.items():
                setattr(knobs, name, value)
            check_interrupt()
            event = generator.generate(CHANNEL_NAMES[channel_id], event_rng(seed, event_id), knobs)
            writer.write(event_id, event)
            if progress is not None:
                progress(1)
        return writer.commit()


def _worker_init(progress_queue: Any) -> None:
    global _QUEUE
    _QUEUE = progress_queue


def _worker_run(task: _FileTask, config: SimConfig, seed: int) -> np.ndarray:
    return _run_file(task, config, seed, _QUEUE.put)


def _check_finished(path: Path, expected: dict[str, Any]) -> np.ndarray:
    """Event table of a finished file if it belongs to this simulation, else InputError."""
    attrs, table = read_run_info(path)
    differ = [k for k in IDENTITY_ATTRS if attrs.get(k) != expected[k]]
    if differ:
        raise InputError(
            f"was written by a different simulation ({', '.join(differ)} "
            f"{'differs' if len(differ) == 1 else 'differ'}); "
            "use another output directory or remove it",
            path=path,
        )
    return table


def check_config(config: SimConfig) -> None:
    """Every check `simulate` makes on a config before work (values, nuclei, beam range).

    Raises
    ------
    InputError
        The first problem found, in one line.
    """
    validate_config(config)
    check_physics(config)


def simulate(
    config: SimConfig,
    n_events: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    events_per_file: int = DEFAULT_EVENTS_PER_FILE,
    resume: bool = False,
    first_run: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SimSummary:
    """Simulate ``n_events`` labelled events into Spyral-format run files.

    Writes ``out_dir/run_0000.h5``, ``run_0001.h5``, ... (from ``first_run``) with
    ``events_per_file`` events each (layout: docs/ARCHITECTURE.md, "Simulated run
    files"). Same arguments, same bytes.

    Parameters
    ----------
    config
        Physics, detector, noise and class mix (`SimConfig`); checked before any work.
    n_events
        Events in total, split over the classes exactly as ``config.mix`` says.
    out_dir
        Output directory, created if missing.
    seed
        Non-negative integer; with the other arguments it fixes every file byte.
    workers
        Processes, one run file per task; results do not depend on it.
    events_per_file
        Events per run file (the unit of parallelism and of resuming).
    resume
        Keep finished run files of the same simulation and write only the missing ones;
        without it an ``out_dir`` holding run files is an error.
    first_run
        Run number of the first file. Events depend only on the seed and their index, not
        on it; it keeps (run, event) unique when several simulations feed one image file.
    progress
        Called with the number of newly simulated events (kept files count at once).

    Returns
    -------
    SimSummary
        Counts per class and channel, rejected draws, files, wall time.

    Raises
    ------
    InputError
        Bad config or arguments, or ``out_dir`` holding files of another simulation.

    Examples
    --------
    >>> summary = simulate(SimConfig(), 300, Path("sim"), seed=1, workers=2)  # doctest: +SKIP
    >>> summary.classes  # doctest: +SKIP
    {'proton': 74, 'carbon': 38, 'other': 188}
    """
    start = time.perf_counter()
    check_config(config)
    _check_counts(
        n_events=(n_events, 1),
        seed=(seed, 0),
        workers=(workers, 1),
        events_per_file=(events_per_file, 1),
        first_run=(first_run, 0),
    )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a directory", path=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob("run_*.h5"))
    if existing and not resume:
        raise InputError(
            "already holds run files; pass --resume to finish that simulation "
            "or choose an empty directory",
            path=out_dir,
        )

    tasks = _plan_files(config, n_events, out_dir, seed, events_per_file, first_run)
    tables = _finished_tables(existing, tasks, progress)
    resumed = [t.path for t in tasks if t.run in tables]
    pending = [t for t in tasks if t.run not in tables]

    n_workers = min(workers, len(pending))
    if n_workers <= 1:
        for task in pending:
            tables[task.run] = _run_file(task, config, seed, progress)
    else:
        tables.update(_run_pool(pending, config, seed, n_workers, progress))

    # leftovers of killed runs that this call did not overwrite (e.g. run numbers beyond n)
    for stale in out_dir.glob(f"run_*.h5{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)
    return SimSummary.from_tables(
        [tables[t.run] for t in tasks],
        files=[t.path for t in tasks],
        resumed=resumed,
        seconds=time.perf_counter() - start,
    )


def _check_counts(**values: tuple[Any, int]) -> None:
    """Each ``name=(value, lowest)`` must be an integer (not a bool) >= lowest."""
    for name, (value, low) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")


def _plan_files(
    config: SimConfig,
    n_events: int,
    out_dir: Path,
    seed: int,
    events_per_file: int,
    first_run: int,
) -> list[_FileTask]:
    """One task per run file: its events' channels (the whole plan is drawn at once, so it
    does not depend on the file size or the worker count) and its root attributes."""
    plan = plan_channels(config.mix, n_events, np.random.default_rng([seed, PLAN_STREAM, n_events]))
    config_json = config.to_json()
    tasks = []
    for run, first in enumerate(range(0, n_events, events_per_file), start=first_run):
        channels = plan[first : first + events_per_file]
        attrs = file_attrs(
            run=run,
            seed=seed,
            config_json=config_json,
            n_events_total=n_events,
            events_per_file=events_per_file,
            first_event=first,
            n_events=len(channels),
        )
        tasks.append(_FileTask(run, first, channels, run_path(out_dir, run), attrs))
    return tasks


def _finished_tables(
    existing: list[Path], tasks: list[_FileTask], progress: Callable[[int], None] | None
) -> dict[int, np.ndarray]:
    """Event tables of the finished run files, by run; every run file present must belong
    to this simulation (same attributes, a planned run number)."""
    planned = {t.path: t for t in tasks}
    tables: dict[int, np.ndarray] = {}
    for path in existing:
        expected = planned[path].attrs if path in planned else tasks[0].attrs
        table = _check_finished(path, expected)
        if path not in planned:
            raise InputError("is not part of this simulation (run number too high)", path=path)
        tables[planned[path].run] = table
        if progress is not None:
            progress(len(table))
    return tables


def _run_pool(
    tasks: list[_FileTask],
    config: SimConfig,
    seed: int,
    n_workers: int,
    progress: Callable[[int], None] | None,
) -> dict[int, np.ndarray]:
    """Run file tasks in ``n_workers`` spawned processes; forward their progress."""
    # spawn: workers start clean (no inherited HDF5 handles or numba state)
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    results: dict[int, np.ndarray] = {}

    def drain(timeout: float) -> None:
        try:
            n = progress_queue.get(timeout=timeout)
        except queue_module.Empty:
            return
        while True:
            if progress is not None:
                progress(n)
            try:
                n = progress_queue.get_nowait()
            except queue_module.Empty:
                return

    executor = ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(progress_queue,),
    )
    try:
        futures = {executor.submit(_worker_run, t, config, seed): t.run for t in tasks}
        pending = set(futures)
        while pending:
            drain(0.2)
            check_interrupt()
            done, pending = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
        drain(0.05)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    # progress put just before a worker returned may still be in the pipe
    while True:
        try:
            n = progress_queue.get(timeout=0.05)
        except queue_module.Empty:
            break
        if progress is not None:
            progress(n)
    return results
