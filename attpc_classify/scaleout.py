"""Run ``preprocess`` and ``classify`` on a Dask cluster: same tasks, same parts, same merge.

``--scheduler`` names the cluster::

    --scheduler local:4                 a LocalCluster of 4 one-thread worker processes here
    --scheduler tcp://head:8786         a running ``dask scheduler`` (dask-jobqueue, dask-mpi,
                                        or ``dask scheduler`` / ``dask worker`` by hand)
    --scheduler scheduler.json          a scheduler file written by ``dask scheduler
                                        --scheduler-file`` (shared file system)

Nothing here schedules: the work is planned as the same picklable tasks a local run uses,
and Dask's own `concurrent.futures` executor (``client.get_executor``, `dask_executor`)
runs them through the one task loop, `data_prep.tasks.run_tasks`. ``preprocess`` is
`data_prep.build.build_images` with that executor, so planning, part files, ``--resume``
and the final `merge_parts` are exactly those of a single-process run and so are the
counts. ``classify`` is `attpc_classify.predict.run_classification` with it: the same
`ClassifyTask` s (an input file, or an event range of one), whose rows come back as task
results and are appended in task order (file order, then event order) to the table.

Failures, and why nothing is lost or duplicated:

* a task's outcome is its result (a preprocess part is renamed into place under a name
  fixed by the task's index); a task that runs twice gives the same result, taken once;
* a worker that dies (killed, out of memory, node lost) takes its running tasks with it;
  the scheduler reruns them on another worker (up to ``distributed.scheduler.allowed-
  failures`` times, default 3, then ``KilledWorker``);
* a task that raises an ordinary exception (a flaky network file system) is retried
  ``retries`` times (Dask's ``retries``);
* bad input (`data_prep.errors.InputError`, e.g. a bad event without ``--skip-bad``) is
  not retried: the task returns the error instead of raising it (`data_prep.tasks`), the
  run stops and the command prints the one-line message (exit 2), exactly as a local
  run does.

Workers need the same environment (this package importable) and the same view of the
input and output paths (a shared file system), as with any Dask cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attpc_classify.predict import ClassifySummary, prepare_inputs, run_classification
from data_prep.build import BuildSummary, build_images
from data_prep.errors import InputError
from data_prep.images import ImageConfig

if TYPE_CHECKING:  # dask is imported when a cluster is used
    from distributed import Client

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


# --------------------------------------------------------------------------- the jobs


def dask_executor(client: Client, retries: int = DEFAULT_RETRIES) -> cf.Executor:
    """Dask's `concurrent.futures.Executor` over ``client``, with the retry policy above.

    Every call is a separate, impure task (``pure=False``: Dask never merges two calls)
    named after its function (``run_task-...``, ``classify_task-...`` on the dashboard);
    a task that raises is rerun ``retries`` times. ``shutdown(wait=False)`` cancels what
    is left.
    """
    if retries < 0:
        raise InputError(f"retries must be >= 0, got {retries}")
    return client.get_executor(pure=False, retries=retries)


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
    kwargs.pop("workers", None)
    with open_client(scheduler) as client:
        if on_client is not None:
            on_client(client)
        executor = dask_executor(client, retries)
        try:
            return build_images(inputs, out, config, executor=executor, **kwargs)
        finally:
            executor.shutdown(wait=False)


def classify_files_on(
    scheduler: str | Scheduler,
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    format: str = "auto",
    batch_size: int = 256,
    on_plan: Callable[[int], None] | None = None,
    reader_options: dict | None = None,
    events_per_task: int | None = None,
    retries: int = DEFAULT_RETRIES,
    on_client: Callable[[Client], None] | None = None,
    **kwargs: Any,
) -> ClassifySummary:
    """`attpc_classify.predict.classify_files` with its tasks run on a Dask cluster.

    Every check runs here first, on all inputs (as in a local run), before connecting;
    then each task runs on a worker, which loads the run's model once (``device`` there:
    ``cpu``, or ``auto`` / ``cuda`` for GPU workers). Rows and counts equal a local run's.

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
    **kwargs
        ``precision``, ``skip_bad``, ``progress``, ``device``, ``prefetch``, ``engine``
        of `run_classification`.

    Other parameters as for `classify_files`.
    """
    from attpc_classify.predict import load_predictor

    # the checks need the metadata only; the workers load the run with the same engine
    trained = load_predictor(run_dir, device="cpu", engine=kwargs.get("engine", "torch"))
    sources, options = prepare_inputs(
        trained, inputs, out, format=format, batch_size=batch_size,
        reader_options=reader_options,
    )  # fmt: skip
    if on_plan is not None:
        on_plan(sum(s.n_events for s in sources))
    if events_per_task is None:
        events_per_task = CLASSIFY_BATCHES_PER_TASK * batch_size
    with open_client(scheduler) as client:
        if on_client is not None:
            on_client(client)
        executor = dask_executor(client, retries)
        try:
            return run_classification(
                trained, sources, out, reader_options=options, executor=executor,
                events_per_task=events_per_task, batch_size=batch_size, **kwargs,
            )  # fmt: skip
        finally:
            executor.shutdown(wait=False)
