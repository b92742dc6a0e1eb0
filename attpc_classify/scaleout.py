"""Run ``preprocess`` and ``classify`` on a Dask cluster: same tasks, same parts, same merge.

``--scheduler`` names the cluster::

    --scheduler local:4                 a LocalCluster of 4 one-thread worker processes here
    --scheduler tcp://head:8786         a running ``dask scheduler`` (dask-jobqueue, dask-mpi,
                                        or ``dask scheduler`` / ``dask worker`` by hand)
    --scheduler scheduler.json          a scheduler file written by ``dask scheduler
                                        --scheduler-file`` (shared file system)

Nothing here schedules: the work is planned as the same picklable tasks a local run uses,
and Dask runs them. ``preprocess`` maps `data_prep.build.run_task` over
`data_prep.build.plan_tasks` through `DaskExecutor` (a `concurrent.futures.Executor`
that `data_prep.build.build_images` takes), so planning, part files, ``--resume`` and the
final `merge_parts` are exactly those of a single-process run and so are the counts.
``classify`` is cut into `ClassifyTask` s (an input file, or an event range of one);
each writes its predictions to a part file, and `merge_predictions` concatenates the
parts in task order (file order, then event order) into the final CSV or HDF5 table.

Failures, and why nothing is lost or duplicated:

* every task writes its part under a temporary name and renames it into place, under a
  name fixed by the task's index; a task that runs twice rewrites the same part, and the
  merge reads each task's part once;
* a worker that dies (killed, out of memory, node lost) takes its running tasks with it;
  the scheduler reruns them on another worker (up to ``distributed.scheduler.allowed-
  failures`` times, default 3, then ``KilledWorker``);
* a task that raises an ordinary exception (a flaky network file system) is retried
  ``retries`` times;
* bad input (`data_prep.errors.InputError`, e.g. a bad event without ``--skip-bad``) is
  not retried: the task returns the error instead of raising it, the run stops and the
  command prints the one-line message (exit 2), exactly as a local run does.

Workers need the same environment (this package importable) and the same view of the
input and output paths (a shared file system), as with any Dask cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from data_prep.errors import InputError

if TYPE_CHECKING:  # dask and torch are imported when a cluster is used
    from distributed import Client

    from attpc_classify.checkpoint import Trained
    from attpc_classify.predict import ClassifySummary
    from data_prep.build import BuildSummary
    from data_prep.images import ImageConfig

Progress = Callable[[int], None]

DEFAULT_RETRIES = 2  # reruns of a task that raised (not of bad input; lost workers: see above)
CONNECT_TIMEOUT_S = 30.0  # waiting for a remote scheduler to answer [s]
CLASSIFY_BATCHES_PER_TASK = 16  # classify task = this many batches of one input file


# --------------------------------------------------------------------------- the cluster


def add_scheduler_arguments(parser: Any) -> None:
    """``--scheduler`` and ``--retries`` (preprocess and classify)."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS|local:N",
        help="run the tasks on a Dask cluster: local:N starts N worker processes here; "
        "tcp://HOST:8786 or a scheduler .json file joins a running one (docs/scale-out.md)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="with --scheduler: reruns of a task that raised an error other than bad input "
        f"(default {DEFAULT_RETRIES}); tasks of a lost worker are rerun by the scheduler",
    )


def describe_client(client: Client) -> str:
    """One line: where the tasks run (for the commands' stderr)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return (
        f"dask: scheduler {client.scheduler.address}, {len(workers)} worker(s) / "
        f"{threads} thread(s) now, dashboard {client.dashboard_link}"
    )


@dataclass(frozen=True)
class Scheduler:
    """A parsed ``--scheduler`` value.

    Attributes
    ----------
    kind
        ``"local"`` (start a LocalCluster), ``"address"`` or ``"file"``.
    target
        Number of local workers, the scheduler address, or the scheduler file.
    """

    kind: str
    target: int | str

    def describe(self) -> str:
        if self.kind == "local":
            return f"a local Dask cluster of {self.target} worker process(es)"
        return f"the Dask scheduler at {self.target}"


def parse_scheduler(text: str) -> Scheduler:
    """``local:N`` | ``local`` (one worker per core) | ``ADDRESS`` | ``FILE.json``.

    Raises
    ------
    InputError
        ``local:`` with something other than a positive integer, or an empty value.
    """
    text = text.strip()
    if not text:
        raise InputError("--scheduler is empty; give local:N or a scheduler address")
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise InputError(f"--scheduler {text!r}: local:N needs a worker count N >= 1")
        return Scheduler("local", int(count))
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise InputError("scheduler file not found", path=text)
        return Scheduler("file", text)
    return Scheduler("address", text if "://" in text else f"tcp://{text}")


@contextlib.contextmanager
def open_client(
    scheduler: str | Scheduler, *, timeout_s: float = CONNECT_TIMEOUT_S
) -> Iterator[Client]:
    """A `distributed.Client` for ``--scheduler``; a ``local:N`` cluster lives as long as it.

    ``local:N`` starts N worker *processes* of one thread each (the tasks hold the GIL in
    h5py and NumPy; threads would not run them in parallel), without a fixed dashboard
    port (``client.dashboard_link`` says where it is).

    Raises
    ------
    InputError
        The scheduler cannot be reached within ``timeout_s``.
    """
    from distributed import Client, LocalCluster

    spec = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    if spec.kind == "local":
        with (
            LocalCluster(
                n_workers=int(spec.target),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        if spec.kind == "file":
            client = Client(scheduler_file=str(spec.target), timeout=timeout_s)
        else:
            client = Client(str(spec.target), timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"cannot reach the Dask scheduler at {spec.target}: {first}") from None
    with client:
        yield client


# --------------------------------------------------------------------------- the executor


@dataclass
class _Refused:
    """An `InputError` a task returned rather than raised, so Dask does not retry it."""

    error: InputError


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return fn(*args, **kwargs)
    except InputError as err:
        return _Refused(err)


class DaskExecutor(cf.Executor):
    """`concurrent.futures.Executor` over a Dask client, with the retry policy above.

    ``submit`` returns a `concurrent.futures.Future`, so code written for a process pool
    (`data_prep.build.build_images`, `merge_parts`) runs on the cluster unchanged. Every
    call is a separate, impure task (``pure=False``): Dask never merges two calls.

    Parameters
    ----------
    client
        A connected `distributed.Client` (`open_client`).
    retries
        Reruns of a task that raised an exception other than `InputError`.
    """

    def __init__(self, client: Client, *, retries: int = DEFAULT_RETRIES):
        if retries < 0:
            raise InputError(f"retries must be >= 0, got {retries}")
        self.client = client
        self.retries = retries
        self._futures: weakref.WeakSet = weakref.WeakSet()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        if self._shutdown:
            raise RuntimeError("cannot submit to a DaskExecutor after shutdown")
        name = getattr(fn, "__name__", "task")
        # the key names the function, so the dashboard shows run_task-..., not _call-...
        future = self.client.submit(
            _call, fn, args, kwargs, key=f"{name}-{uuid.uuid4().hex}", pure=False,
            retries=self.retries,
        )  # fmt: skip
        self._futures.add(future)
        out: cf.Future = cf.Future()

        def cancel_task(f: cf.Future) -> None:
            if f.cancelled():
                future.cancel()

        out.add_done_callback(cancel_task)
        future.add_done_callback(lambda f: _settle(f, out))
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; cancel the unfinished ones (``cancel_futures``) or wait."""
        if self._shutdown:
            return
        self._shutdown = True
        pending = [f for f in list(self._futures) if not f.done()]
        if cancel_futures:
            self.client.cancel(pending)
        elif wait and pending:
            from distributed import wait as dask_wait

            dask_wait(pending)


def _settle(future: Any, out: cf.Future) -> None:
    """Move a finished Dask future's outcome into ``out`` (runs on a Dask callback thread)."""
    if out.done():
        return
    try:
        if future.status == "cancelled":
            out.cancel()
            out.set_running_or_notify_cancel()  # wakes cf.wait / as_completed
            return
        if future.status == "error":
            out.set_exception(future.exception())
            return
        result = future.result()
    except BaseException as err:  # a lost scheduler: deliver rather than hang
        out.set_exception(err)
        return
    if isinstance(result, _Refused):
        out.set_exception(result.error)
    else:
        out.set_result(result)


# --------------------------------------------------------------------------- preprocess


def build_images_on(
    scheduler: str | Scheduler,
    inputs: Sequence[str | Path],
    out: str | Path,
    config: ImageConfig,
    *,
    retries: int = DEFAULT_RETRIES,
    on_client: Callable[[Client], None] | None = None,
    **kwargs: Any,
) -> BuildSummary:
    """`data_prep.build.build_images` with its tasks run on a Dask cluster.

    Parameters
    ----------
    scheduler
        ``local:N``, an address or a scheduler file (`parse_scheduler`).
    inputs, out, config
        As for `build_images`.
    retries
        Reruns of a task that raised something other than bad input.
    on_client
        Called with the connected client before the work starts (to print where it runs).
    **kwargs
        The other keyword options of `build_images` (``skip_bad``, ``resume``,
        ``progress``, ``events_per_task``, ...); ``workers`` is ignored.

    Workers keep up to two input files open per thread between tasks and runs (the
    reader cache of `data_prep.build`; a rewritten file is opened afresh).
    """
    from data_prep.build import build_images

    kwargs.pop("workers", None)
    with open_client(scheduler) as client:
        if on_client is not None:
            on_client(client)
        executor = DaskExecutor(client, retries=retries)
        try:
            return build_images(inputs, out, config, executor=executor, **kwargs)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- classify


@dataclass(frozen=True)
class ClassifyTask:
    """Events ``[start, stop)`` of one input (point-cloud or image file) -> one part."""

    index: int
    path: str
    kind: str  # "images" | "events"
    format: str
    start: int
    stop: int


@dataclass
class ClassifyPart:
    """What a finished `classify_task` wrote."""

    index: int
    part: str
    n_events: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_empty: int = 0
    predicted: list[int] = field(default_factory=list)  # events per output class


def plan_classify(
    sources: Sequence[Any], *, events_per_task: int, batch_size: int
) -> list[ClassifyTask]:
    """One task per ``events_per_task`` events of each input (rounded up to whole batches).

    Whole batches keep every batch the same as in a single-process run, so the
    probabilities are computed on the same batches too.
    """
    if events_per_task < 1:
        raise InputError(f"events per task must be >= 1, got {events_per_task}")
    per_task = batch_size * -(-events_per_task // batch_size)
    tasks: list[ClassifyTask] = []
    for src in sources:
        n = int(src.n_events)
        for start in range(0, max(n, 1), per_task):
            stop = min(n, start + per_task)
            tasks.append(ClassifyTask(len(tasks), str(src.path), src.kind, src.format, start, stop))
    return tasks


_TRAINED: dict[tuple, Trained] = {}
_TRAINED_LOCK = threading.Lock()


def _trained(run_dir: str, device: str) -> Trained:
    """The run's model, loaded once per worker process (tasks of one run share it).

    Keyed by the weights file's size and time too: a long-lived worker must not keep
    serving a model that was retrained into the same directory.
    """
    from attpc_classify.checkpoint import load_run

    weights = Path(run_dir).resolve() / "model.safetensors"
    st = weights.stat() if weights.exists() else None
    key = (str(weights), device, st and st.st_size, st and st.st_mtime_ns)
    with _TRAINED_LOCK:
        if key not in _TRAINED:
            _TRAINED.clear()  # one run at a time: do not pile up models in a worker
            _TRAINED[key] = load_run(run_dir, device=device)
        return _TRAINED[key]


def classify_part_path(parts_dir: str | Path, index: int) -> Path:
    return Path(parts_dir) / f"part_{index:06d}.h5"


def classify_task(
    task: ClassifyTask,
    run_dir: str,
    parts_dir: str,
    *,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 256,
    skip_bad: bool = False,
    reader_options: dict | None = None,
) -> ClassifyPart:
    """Classify one task's events and write ``run``, ``event_id``, ``proba`` to its part.

    The part is written under a temporary name and renamed into place (atomic); the
    counts go into its attributes as well as into the returned `ClassifyPart`.
    """
    from attpc_classify.predict import (
        _event_batches,
        _image_batches,
        _Source,
        decide_events,
        model_config,
        predict_batch,
    )

    trained = _trained(run_dir, device)
    info = trained.info
    source = _Source(Path(task.path), task.kind, task.stop - task.start, task.format)
    skipped: Counter[str] = Counter()

    def on_skip(event_id: int, reason: str) -> None:
        skipped[reason] += 1

    if task.kind == "images":
        batches = _image_batches(
            source, batch_size, info.input == "voxels", start=task.start, stop=task.stop
        )
    else:
        batches = _event_batches(
            source, model_config(info), batch_size, skip_bad=skip_bad, on_skip=on_skip,
            reader_options=dict(reader_options or {}), start=task.start, stop=task.stop,
        )  # fmt: skip
    runs, ids, probas, n_empty = [], [], [], 0
    for batch in batches:
        proba = predict_batch(trained, batch, precision=precision, batch_size=batch_size)
        runs.append(batch.run)
        ids.append(batch.event_id)
        probas.append(proba)
        n_empty += batch.n_empty
    k = len(info.output_names)
    proba = np.concatenate(probas) if probas else np.zeros((0, k), np.float32)
    predicted = np.bincount(
        decide_events(proba, info.output_names, info.proton_threshold), minlength=k + 1
    ).tolist()
    part = ClassifyPart(
        index=task.index,
        part=str(classify_part_path(parts_dir, task.index)),
        n_events=len(proba),
        skipped=dict(skipped),
        n_empty=n_empty,
        predicted=predicted,
    )
    final = Path(part.part)
    # pid and thread: two threads of one worker, or a rerun elsewhere, never share a temp
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with h5py.File(tmp, "w") as f:
            f["run"] = np.concatenate(runs).astype(np.int64) if runs else np.zeros(0, np.int64)
            f["event_id"] = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
            f["proba"] = proba
            f.attrs["task"] = json.dumps(task.__dict__)
            f.attrs["counts"] = json.dumps(part.__dict__)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return part


def merge_predictions(
    parts: Sequence[ClassifyPart],
    out: str | Path,
    output_names: Sequence[str],
    *,
    attrs: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    proton_threshold: float | None = None,
) -> Path:
    """Concatenate part files in task order into the prediction table ``out`` (atomic)."""
    from attpc_classify.predict import PredictionWriter

    with PredictionWriter(
        out, output_names, attrs=attrs, proton_threshold=proton_threshold
    ) as writer:
        for part in sorted(parts, key=lambda p: p.index):
            with h5py.File(part.part, "r") as f:
                writer.append(f["run"][()], f["event_id"][()], f["proba"][()])
        return writer.commit(summary=summary)


def classify_files_on(
    scheduler: str | Scheduler,
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    format: str = "auto",
    batch_size: int = 256,
    precision: str = "auto",
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_plan: Callable[[int], None] | None = None,
    reader_options: dict | None = None,
    device: str = "cpu",
    events_per_task: int | None = None,
    retries: int = DEFAULT_RETRIES,
    on_client: Callable[[Client], None] | None = None,
) -> ClassifySummary:
    """`attpc_classify.predict.classify_files` with the work spread over a Dask cluster.

    Every check runs here first, on all inputs (as in a local run); then each
    `ClassifyTask` runs on a worker, which loads the run's model once (``device`` there:
    ``cpu``, or ``auto`` / ``cuda`` for GPU workers) and writes a part; the parts are
    merged in file and event order into ``out``. Counts equal a local run's.

    Parameters
    ----------
    scheduler
        ``local:N``, an address or a scheduler file.
    run_dir
        The trained run (on a path the workers see).
    events_per_task
        Events per task (default: `CLASSIFY_BATCHES_PER_TASK` batches); a file with
        fewer events is one task.
    retries, on_client
        As for `build_images_on`.

    Other parameters as for `classify_files`.
    """
    from attpc_classify.checkpoint import load_run
    from attpc_classify.predict import prepare_inputs

    trained = load_run(run_dir, device="cpu")  # the checks need the metadata only
    out = Path(out)
    sources, options = prepare_inputs(
        trained, inputs, out, format=format, batch_size=batch_size,
        reader_options=reader_options,
    )  # fmt: skip
    if on_plan is not None:
        on_plan(sum(int(s.n_events) for s in sources))
    tasks = plan_classify(
        sources,
        events_per_task=(
            CLASSIFY_BATCHES_PER_TASK * batch_size if events_per_task is None else events_per_task
        ),
        batch_size=batch_size,
    )
    # Classification has no --resume: a rerun redoes every part, so parts never outlive a run.
    parts_dir = out.with_name(f".{out.name}.parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    try:
        return _classify_parts(
            scheduler, trained, sources, tasks, out, parts_dir, retries=retries,
            on_client=on_client, progress=progress, device=device, precision=precision,
            batch_size=batch_size, skip_bad=skip_bad, reader_options=options,
        )  # fmt: skip
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def _classify_parts(
    scheduler: str | Scheduler,
    trained: Trained,
    sources: Sequence[Any],
    tasks: Sequence[ClassifyTask],
    out: Path,
    parts_dir: Path,
    *,
    retries: int,
    on_client: Callable[[Client], None] | None,
    progress: Progress | None,
    **kwargs: Any,
) -> ClassifySummary:
    """Run the tasks, then merge their parts and add up their counts."""
    from attpc_classify.predict import ClassifySummary, count_predicted, output_attrs

    info = trained.info
    parts: list[ClassifyPart] = []
    with open_client(scheduler) as client:
        if on_client is not None:
            on_client(client)
        start = time.perf_counter()  # the work, as a local run times it (not the start-up)
        executor = DaskExecutor(client, retries=retries)
        futures = [
            executor.submit(classify_task, t, str(info.path), str(parts_dir), **kwargs)
            for t in tasks
        ]
        try:
            for fut in cf.as_completed(futures):
                parts.append(fut.result())
                if progress is not None:
                    progress(parts[-1].n_events)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    summary = ClassifySummary(out=out)
    skipped: Counter[str] = Counter()
    predicted = np.zeros(len(info.output_names) + 1, dtype=np.int64)  # + empty
    for p in parts:
        summary.n_events += p.n_events
        summary.n_empty += p.n_empty
        skipped.update(p.skipped)
        predicted += np.asarray(p.predicted, dtype=np.int64)
    summary.skipped = dict(skipped)
    summary.n_skipped = sum(skipped.values())
    summary.predicted = count_predicted(predicted, info.output_names)
    summary.wall_s = time.perf_counter() - start
    merge_predictions(
        parts, out, info.output_names, attrs=output_attrs(info, sources),
        summary=summary.to_dict(), proton_threshold=info.proton_threshold,
    )  # fmt: skip
    return summary
