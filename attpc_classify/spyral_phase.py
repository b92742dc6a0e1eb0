"""A Spyral phase that classifies every event of PointcloudPhase's artifacts.

`ClassifyPhase` sits in a Spyral `Pipeline` between ``PointcloudPhase`` and
``ClusterPhase``. For each run it reads ``workspace/Pointcloud/run_NNNN.h5``, classifies
every event with a trained run (the run's own preprocessing and decision rule, through
the one classify path of `attpc_classify.predict`), and writes::

    workspace/Classify/run_NNNN.h5             predictions: the columns of
                                               ``attpc-classify classify`` (run, event_id,
                                               label, p_<class>), one row per event
    workspace/Classify/run_NNNN_pointcloud.h5  with ``keep``: only the events whose label
                                               is kept, in PointcloudPhase's layout

and hands the next phase the point clouds to go on with: the selected file with
``keep``, else PointcloudPhase's own. Its schemas are PointcloudPhase's (in and out), so
``Pipeline.validate`` accepts ``ClusterPhase`` after it. The work of one run is
`classify_pointcloud` (no Spyral needed); the phase adds Spyral's conventions: progress
as `StatusMessage`s on the process's queue, messages in Spyral's per-process logs
(``workspace/log/``), a run whose input is bad marked failed (``successful=False``) so
later phases skip it while the other runs go on.

Spyral runs each process's stack of runs one after the other (``start_pipeline(...,
n_procs)``); the model is loaded once per process, on first use, so the phase pickles
small (Spyral's documented ``spawn`` start method) and never initialises a GPU in the
parent.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import SimpleQueue
from pathlib import Path

import h5py
import numpy as np
from numpy.random import Generator
from spyral.core.phase import PhaseLike
from spyral.core.run_stacks import form_run_string
from spyral.core.schema import PhaseResult, ResultSchema
from spyral.core.status_message import StatusMessage
from spyral.phases.schema import POINTCLOUD_SCHEMA

from attpc_classify.predict import (
    EMPTY_LABEL,
    ClassifySummary,
    loaded_run,
    prepare_inputs,
    read_predictions,
    run_classification,
)
from data_prep.atomic import atomic_path
from data_prep.errors import InputError, plural
from data_prep.health import Known

#: Spyral's loggers live under "spyral" (``spyral.core.spy_log``): a child of it writes
#: into the workspace's per-process log files, as Spyral's own phases do.
log = logging.getLogger("spyral.attpc_classify")

#: key of the predictions file in the phase's `PhaseResult.artifacts`
PREDICTIONS = "classification"
#: suffix of the selected point clouds: ``run_NNNN_pointcloud.h5``
SELECTED_SUFFIX = "_pointcloud"


# --------------------------------------------------------------------------------------
# One run's work, without Spyral
# --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What `classify_pointcloud` did for one point-cloud file."""

    classified: ClassifySummary
    selected: Path | None = None  # the selected point-cloud file (None without keep)
    n_selected: int = 0
    kept: tuple[str, ...] = ()
    # the file's health against the run's health.json: the report and the numbers outside
    health: Path | None = None
    outside: list[tuple[str, float, float, float]] = field(default_factory=list)


def check_run(run_dir: str | Path, keep: Sequence[str] | None) -> tuple[str, ...]:
    """Check a trained run before any event is read; return its output names.

    Reads ``model.json`` and verifies the weights' sha256 (`attpc_classify.checkpoint`),
    and that every ``keep`` label is one the run can give. Raises a one-line
    `InputError`.
    """
    from attpc_classify.checkpoint import read_run  # torch-heavy

    info, _ = read_run(run_dir)
    _check_keep(info.output_names, keep, info.path)
    return info.output_names


def _check_keep(output_names: Sequence[str], keep: Sequence[str] | None, run: Path) -> None:
    labels = (*output_names, EMPTY_LABEL)
    unknown = [k for k in keep or () if k not in labels]
    if unknown:
        raise InputError(
            f"keep {unknown} is not a label of this run; its labels are {list(labels)}",
            path=run,
        )


def classify_pointcloud(
    run_dir: str | Path,
    pointcloud: str | Path,
    predictions: str | Path,
    *,
    keep: Sequence[str] | None = None,
    selected: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    precision: str = "auto",
    skip_bad: bool = False,
    pad_electronics: str | Path | None = None,
    learn_chips: bool = False,
    check_health: bool = True,
    on_plan: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Classify every event of one Spyral point-cloud file; optionally keep a selection.

    Parameters
    ----------
    run_dir
        A trained run (``attpc-classify train --out RUN``); loaded once per process.
    pointcloud
        PointcloudPhase's artifact (``cloud/cloud_<n>``, any Spyral point-cloud file).
    predictions
        The prediction table (``.h5`` or ``.csv``), written atomically, with the columns
        and attributes of ``attpc-classify classify``.
    keep
        Labels to keep (e.g. ``["proton"]``): the events whose ``label`` is one of them
        are copied to ``selected``, dataset by dataset with their attributes, under a
        ``cloud`` group with the source's ``min_event``/``max_event``.
    selected
        Where the selected point clouds go (needed with ``keep``), atomically.
    device, batch_size, precision, skip_bad
        As for `attpc_classify.predict.classify_files`.
    pad_electronics
        The detector's electronics map (a CSV as Spyral's ``pad_electronics.csv``): the
        chip-fire rule then groups the real AGET chips (reader option
        ``pad_electronics``; None: 64 consecutive pad ids, the simulation's chips).
    learn_chips
        Without the map: learn the chips from the file's own chip fires first
        (`data_prep.chipmap`), written beside ``predictions`` as ``<stem>_chips.csv``,
        and read with that map.
    check_health
        Where the trained run keeps its training simulation's health report
        (``RUN/health.json``, ``attpc-classify health``): measure the file's detector
        health against it, written beside ``predictions`` as ``<stem>_health.json``,
        its numbers outside the report's ranges in the result.
    on_plan, progress
        Called with the number of events to classify, then with each batch's count.

    Raises
    ------
    InputError
        Unreadable file, a bad event (without ``skip_bad``: ``FILE: event N: why``), a
        model that does not fit; nothing is written then.
    """
    if keep is not None and selected is None:
        raise InputError("keep needs a file for the selected point clouds")
    trained = loaded_run(str(run_dir), device)
    _check_keep(trained.info.output_names, keep, trained.info.path)
    if learn_chips:
        from data_prep.chipmap import learn_map, map_beside

        if pad_electronics is not None:
            raise InputError("give pad_electronics or learn_chips, not both")
        pad_electronics = map_beside(predictions)
        learn_map([pointcloud], pad_electronics, "spyral")
    options = {} if pad_electronics is None else {"pad_electronics": str(pad_electronics)}
    sources, reader_options = prepare_inputs(
        trained, [pointcloud], predictions, format="spyral", batch_size=batch_size,
        reader_options=options,
    )  # fmt: skip
    if on_plan is not None:
        on_plan(sum(s.n_events for s in sources))
    summary = run_classification(
        trained, sources, predictions, reader_options=reader_options, batch_size=batch_size,
        precision=precision, skip_bad=skip_bad, progress=progress, device=device,
    )  # fmt: skip
    result = RunResult(classified=summary)
    if check_health:
        known = Known(summary.charge_units, summary.beam_axes).of([pointcloud])
        result.health, result.outside = _health(
            trained.info, pointcloud, predictions, options, known
        )
    if keep is None:
        return result
    # Select from the written table: the file a user reads and the selection cannot differ.
    table = read_predictions(predictions)
    ids = table["event_id"][np.isin(table["label"], list(keep))]
    attrs = {
        "attpc_classify_run": str(trained.info.path),
        "attpc_classify_keep": json.dumps(list(keep)),
        "attpc_classify_source": str(pointcloud),
    }
    write_selected(pointcloud, selected, ids, attrs=attrs)
    result.selected, result.n_selected, result.kept = Path(selected), len(ids), tuple(keep)
    return result


def _health(
    info, pointcloud: str | Path, predictions: str | Path, options: dict, known: Known
) -> tuple[Path | None, list]:
    """The file's health against the run's ``health.json`` (None, [] without one);
    ``known``: the charge unit and beam line classify measured, reused."""
    from data_prep.health import (
        MODEL_REFERENCE,
        check_files,
        health_beside,
        not_measured,
        read_health,
        write_health,
    )

    reference = Path(info.path) / MODEL_REFERENCE
    if not reference.is_file():
        return None, []
    try:
        [(health, found)] = check_files([pointcloud], info.image_config, reference,
                                        format="spyral", reader_options=options,
                                        known=known)  # fmt: skip
    except Exception as err:  # the calls are written: the run does not fail for this
        log.warning(f"health not measured: {not_measured(pointcloud, err)}")
        return None, []
    report = health_beside(predictions)
    write_health(report, [health], info.image_config, read_health(reference))
    return report, found


def write_selected(
    source: str | Path, out: str | Path, event_ids: np.ndarray, *, attrs: dict | None = None
) -> Path:
    """Copy the clouds ``cloud_<id>`` of ``event_ids`` into a new point-cloud file.

    PointcloudPhase's layout: a ``cloud`` group with the source's attributes
    (``min_event``, ``max_event``) and one dataset per event, copied as stored (dtype,
    storage, attributes ``orig_run``, ``orig_event``, ``ic_*``...). ``attrs`` go on the
    file's root, which Spyral's readers do not look at. Written atomically.
    """
    with h5py.File(source, "r") as src, atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as dst:
            group = src["cloud"]
            cloud = dst.create_group("cloud")
            for key, value in group.attrs.items():
                cloud.attrs[key] = value
            for event in np.asarray(event_ids, dtype=np.int64).tolist():
                group.copy(f"cloud_{event}", cloud)
            for key, value in (attrs or {}).items():
                dst.attrs[key] = value
    return Path(out)


# --------------------------------------------------------------------------------------
# The phase
# --------------------------------------------------------------------------------------


class _Progress:
    """Spyral's progress protocol: a bar of ``min(n, 100)`` steps per run, advanced by
    `StatusMessage` increments (as PointcloudPhase and ClusterPhase do, one per 1 %)."""

    def __init__(self, queue: SimpleQueue, phase: str, run: int):
        self.queue, self.phase, self.run = queue, phase, run
        self.n = self.total = self.done = self.sent = 0

    def plan(self, n_events: int) -> None:
        self.n, self.total = n_events, min(n_events, 100)
        self.queue.put(StatusMessage(self.phase, 0, self.total, self.run))  # show the bar

    def advance(self, n_events: int) -> None:
        self.done += n_events
        steps = self.done * self.total // max(self.n, 1)
        if steps > self.sent:
            self.queue.put(StatusMessage(self.phase, steps - self.sent, self.total, self.run))
            self.sent = steps


class ClassifyPhase(PhaseLike):
    """Classify every event with a trained run; hand on all events or a selection.

    Parameters
    ----------
    run_dir
        A trained run directory (``attpc-classify train``): model, preprocessing and
        decision rule are the run's.
    keep
        Labels to hand on (e.g. ``["proton"]``); None: every event goes on (the
        predictions are still written).
    name
        The phase's name: its artifacts go to ``workspace/<name>/`` (two selections in
        one workspace need two names).
    device
        ``auto`` (CUDA if present), ``cpu`` or ``cuda``; where each process runs the model.
    batch_size, precision, skip_bad
        As for ``attpc-classify classify``: ``skip_bad`` skips (and logs a count of)
        unusable events instead of failing the run.
    torch_threads
        Threads torch may use in each Spyral process (None: torch's default). Spyral
        runs ``n_procs`` processes; their product should not exceed the cores.
    pad_electronics
        The detector's electronics map, a CSV as Spyral's ``pad_electronics.csv`` (the
        one the experiment's GET data were merged with), so the structured-noise chip
        rule groups the real AGET chips; None: the simulation's chips.
    learn_chips
        Without the map: learn each run's chips from its own chip fires first
        (``Classify/run_NNNN_chips.csv``, `data_prep.chipmap`; docs/sim-to-real.md,
        "Chips learned from the run").
    check_health
        Where the trained run keeps its training simulation's health report
        (``RUN/health.json``): each run's detector health against it
        (``Classify/run_NNNN_health.json``), its numbers outside the report's ranges in
        the run's log line (docs/sim-to-real.md, "Detector health").

    Examples
    --------
    >>> Pipeline(  # doctest: +SKIP
    ...     [PointcloudPhase(get, frib, det, pads), ClassifyPhase("runs/cnn", keep=["proton"]),
    ...      ClusterPhase(cluster, det)],
    ...     [False, True, True], workspace, traces)
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        keep: Sequence[str] | None = None,
        name: str = "Classify",
        device: str = "auto",
        batch_size: int = 256,
        precision: str = "auto",
        skip_bad: bool = False,
        torch_threads: int | None = 1,
        pad_electronics: str | Path | None = None,
        learn_chips: bool = False,
        check_health: bool = True,
    ):
        super().__init__(
            name,
            incoming_schema=ResultSchema(POINTCLOUD_SCHEMA),
            outgoing_schema=ResultSchema(POINTCLOUD_SCHEMA),
        )
        if isinstance(keep, str):
            keep = [keep]  # keep="proton" means the one label, not its letters
        if keep is not None and not keep:
            raise InputError("keep is empty: give labels to keep, or None for every event")
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        if learn_chips and pad_electronics is not None:
            raise InputError("give pad_electronics or learn_chips, not both")
        self.run_dir = Path(run_dir)
        self.keep = None if keep is None else tuple(str(k) for k in keep)
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.skip_bad = skip_bad
        self.torch_threads = torch_threads
        self.pad_electronics = None if pad_electronics is None else Path(pad_electronics)
        self.learn_chips = learn_chips
        self.check_health = check_health
        self.problem: str | None = None  # why the run cannot be used (create_assets)
        self._checked = False

    # -- before any run: assets and validation (parent process) --------------------------

    def _check(self) -> str | None:
        if not self._checked:
            try:
                check_run(self.run_dir, self.keep)
                if self.pad_electronics is not None:  # a bad map: before any run
                    from data_prep.padplane import electronics_order

                    electronics_order(self.pad_electronics)
            except InputError as err:
                self.problem = str(err)
            self._checked = True
        return self.problem

    def create_assets(self, workspace_path: Path) -> bool:
        """Check the trained run (model.json, weights' sha256, ``keep`` labels) once."""
        problem = self._check()
        if problem is not None:
            log.error(f"{self}: {problem}")
        return problem is None

    def validate(self, incoming: ResultSchema | None) -> tuple[bool, ResultSchema | None]:
        """Spyral's schema check, and fail when the run is unusable, so `start_pipeline`
        stops before starting any process. An inactive phase (no `create_assets`) needs
        no run and is not checked."""
        success, outgoing = super().validate(incoming)
        if self._checked and self.problem is not None:
            # start_pipeline prints only which pair failed; say why, in one line.
            print(f"error: {self}: {self.problem}", file=sys.stderr)
            success = False
        return success, outgoing

    # -- per run (child processes) -------------------------------------------------------

    def _selected_path(self, workspace_path: Path, run: int) -> Path:
        name = f"{form_run_string(run)}{SELECTED_SUFFIX}.h5"
        return self.get_artifact_path(workspace_path) / name

    def construct_artifact(self, payload: PhaseResult, workspace_path: Path) -> PhaseResult:
        run_string = form_run_string(payload.run_number)
        out_dir = self.get_artifact_path(workspace_path)
        selected = self._selected_path(workspace_path, payload.run_number)
        # Without keep the next phase reads PointcloudPhase's own file; a failed payload
        # has none, and then the (absent) selection path keeps ClusterPhase's lookup valid.
        clouds = selected if self.keep else payload.artifacts.get("pointcloud", selected)
        return PhaseResult(
            artifacts={"pointcloud": clouds, PREDICTIONS: out_dir / f"{run_string}.h5"},
            successful=True,
            run_number=payload.run_number,
        )

    def run(
        self,
        payload: PhaseResult,
        workspace_path: Path,
        msg_queue: SimpleQueue,
        rng: Generator,
    ) -> PhaseResult:
        run = payload.run_number
        source = payload.artifacts.get("pointcloud")
        result = self.construct_artifact(payload, workspace_path)
        if not payload.successful or source is None or not Path(source).exists():
            log.warning(
                f"Point cloud data does not exist for run {run} at {self}, skipping "
                f"({source}: not found)"
            )
            return _failed(result)
        problem = self._check()
        if problem is not None:
            log.error(f"{self} cannot run for run {run}: {problem}")
            return _failed(result)
        if self.torch_threads is not None:
            import torch

            torch.set_num_threads(self.torch_threads)
        bar = _Progress(msg_queue, self.name, run)
        try:
            done = classify_pointcloud(
                self.run_dir, source, result.artifacts[PREDICTIONS], keep=self.keep,
                selected=result.artifacts["pointcloud"] if self.keep else None,
                device=self.device, batch_size=self.batch_size, precision=self.precision,
                skip_bad=self.skip_bad, pad_electronics=self.pad_electronics,
                learn_chips=self.learn_chips, check_health=self.check_health,
                on_plan=bar.plan, progress=bar.advance,
            )  # fmt: skip
        except InputError as err:
            # Spyral's way: log, mark the run failed (later phases skip it), go on.
            log.error(f"{self} failed for run {run}: {err}")
            return _failed(result)
        if not self.keep:  # a selection of an earlier pass would not match these labels
            self._selected_path(workspace_path, run).unlink(missing_ok=True)
        log.info(f"Phase {self.name} complete for run {run}: {_describe(done)}")
        return result


def _failed(result: PhaseResult) -> PhaseResult:
    """The run's artifacts marked failed, with this phase's old outputs of the run removed.

    The paths stay (unlike `PhaseResult.invalid_result`): Spyral's ClusterPhase reads
    ``artifacts["pointcloud"]`` before it looks at ``successful``, and would end the
    process's whole stack of runs with a KeyError. Files of an earlier pass are deleted
    so that nothing in ``workspace/<name>/`` looks like this pass's result.
    """
    ours = result.artifacts[PREDICTIONS].parent
    for path in result.artifacts.values():
        if Path(path).parent == ours:  # never PointcloudPhase's file (no keep: handed on)
            Path(path).unlink(missing_ok=True)
    return PhaseResult(result.artifacts, False, result.run_number)


def _describe(done: RunResult) -> str:
    """One log line: events, labels, skipped, selection."""
    s = done.classified
    text = f"{plural(s.n_events, 'event')} classified ({json.dumps(s.predicted)})"
    if s.skipped:
        text += f", skipped {plural(s.n_skipped, 'bad event')} ({json.dumps(s.skipped)})"
    if done.selected is not None:
        text += f"; {plural(done.n_selected, 'event')} {list(done.kept)} kept in {done.selected}"
    if done.health is not None:
        names = ", ".join(name for name, *_ in done.outside) or "none"
        text += f"; health outside the training simulation's ranges: {names} ({done.health})"
    return text
