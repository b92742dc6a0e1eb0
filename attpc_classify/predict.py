"""Per-event predictions for whole runs: point-cloud or image files in, a table out.

`classify_files` streams events from any supported format, applies exactly the
preprocessing recorded in the checkpoint (`data_prep.images.project_arrays` with the
run's `ImageConfig`), runs the model in batches, and writes one row per event::

    run,event_id,label,p_proton,p_carbon,p_other        (3-class model)
    run,event_id,label,p_proton,p_rest                  (binary model)

``label`` is the predicted class name; the ``p_`` columns are the model's probabilities
in its output order. An event with no point of positive charge inside the image ranges
(blank images; for image-file inputs, an all-zero input) gets ``label`` ``empty`` and
NaN probabilities: the model's output on a blank image would be a confident-looking guess.
The HDF5 form (``.h5`` / ``.hdf5``) holds the same fields as one
1-D dataset per column (``label`` as UTF-8 strings) plus attributes naming the model.

Every check that can fail (output suffix, input readable, image settings, classes,
voxels) runs on all inputs before the first event is read, so a mismatch costs nothing
and is reported in one line. Then, as for ``preprocess`` (`data_prep.build`)::

    plan_classify(sources)  ->  [ClassifyTask, ...]      one per file, or per event range
    classify_task(task)     ->  ClassifyPart              read -> project -> infer
    _InOrder.add(part)      ->  PredictionWriter          appended in task order

The tasks run here, one after the other (the default), or on any
`concurrent.futures.Executor` (`data_prep.tasks.run_tasks`): a process pool, or a Dask
cluster's (`attpc_classify.scaleout`). Output is written under a temporary name and
renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from attpc_classify.decision import decide
from data_prep import quantiles
from data_prep.atomic import check_writable, remove_stale_temps, temp_path
from data_prep.beamaxis import FileAxis
from data_prep.build import expand_inputs, first_duplicate
from data_prep.errors import InputError
from data_prep.imagefile import is_image_file, read_info
from data_prep.images import ImageConfig, project
from data_prep.interrupt import check_interrupt
from data_prep.structured import find_hot_pads
from data_prep.tasks import run_tasks

if TYPE_CHECKING:  # torch-heavy; imported by callers that already hold a model
    from attpc_classify.checkpoint import RunInfo, Trained
    from attpc_classify.ortengine import OnnxTrained

    #: what classifies: a torch run or an ONNX Runtime session (same interface)
    Predictor = Trained | OnnxTrained

CSV_SUFFIXES = (".csv",)
#: ``label`` of an event whose images are blank (no usable point): never a class guess
EMPTY_LABEL = "empty"
HDF5_SUFFIXES = (".h5", ".hdf5")


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------


def decide_events(
    proba: np.ndarray, output_names: Sequence[str], proton_threshold: float | None = None
) -> np.ndarray:
    """`decide` per event, with index ``len(output_names)`` (``empty``) for NaN rows."""
    proba = np.asarray(proba, dtype=np.float32)
    blank = np.isnan(proba).any(axis=1)
    predicted = decide(np.nan_to_num(proba), output_names, proton_threshold)
    predicted[blank] = len(output_names)
    return predicted


def count_predicted(counts: Sequence[int], output_names: Sequence[str]) -> dict[str, int]:
    """``{class: events}`` from `decide_events` bincounts; ``empty`` only when any."""
    out = {n: int(c) for n, c in zip(output_names, counts, strict=False)}
    if len(counts) > len(output_names) and counts[len(output_names)]:
        out[EMPTY_LABEL] = int(counts[len(output_names)])
    return out


def prediction_columns(output_names: Sequence[str]) -> list[str]:
    """Column names of a prediction table for a model with these outputs."""
    return ["run", "event_id", "label", *[f"p_{name}" for name in output_names]]


class PredictionWriter:
    """Append batches of predictions; `commit` renames the finished file into place.

    Parameters
    ----------
    path
        ``.csv`` or ``.h5`` / ``.hdf5``; the suffix chooses the format.
    output_names
        The model's output class names (e.g. ``("proton", "carbon", "other")``).
    attrs
        HDF5 only: file attributes (JSON-encoded when not scalar), e.g. the run directory.
    proton_threshold
        The run's decision rule for ``label`` (`attpc_classify.decision.decide`); None =
        the most probable class.

    Examples
    --------
    >>> with PredictionWriter("p.csv", ("proton", "rest")) as w:  # doctest: +SKIP
    ...     w.append(run, event_id, proba)
    ...     w.commit()
    """

    def __init__(
        self,
        path: str | Path,
        output_names: Sequence[str],
        *,
        attrs: dict[str, Any] | None = None,
        proton_threshold: float | None = None,
    ):
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self.output_names = tuple(output_names)
        self.proton_threshold = proton_threshold
        self.columns = prediction_columns(self.output_names)
        self.n = 0
        self._keys: list[np.ndarray] = []  # (run, event_id) per batch: checked at commit
        self.tmp_path = temp_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)  # left by a classify killed with SIGKILL
        self._text: Any = None
        self._h5: Any = None
        try:
            self._open(attrs or {})
        except BaseException:  # an interrupt here must not leave the temporary behind
            self.abort()
            raise

    def _open(self, attrs: dict[str, Any]) -> None:
        """Create the temporary file with its header (CSV) or empty datasets (HDF5)."""
        if self.kind == "csv":
            self._text = open(self.tmp_path, "w", newline="")
            csv.writer(self._text).writerow(self.columns)
        else:
            self._h5 = h5py.File(self.tmp_path, "w")
            # Fixed-width byte labels compress well (variable-length strings do not).
            width = max(len(n.encode()) for n in (*self.output_names, EMPTY_LABEL))
            specs = [
                ("run", np.int32),
                ("event_id", np.int64),
                ("label", f"S{width}"),  # ASCII class names
            ]
            specs += [(f"p_{name}", np.float32) for name in self.output_names]
            for name, dtype in specs:
                self._h5.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    chunks=(16384,),
                    dtype=dtype,
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
            self._h5.attrs["columns"] = json.dumps(self.columns)
            self._h5.attrs["output_names"] = json.dumps(list(self.output_names))
            for key, value in attrs.items():
                scalar = isinstance(value, (str, int, float, bool))
                self._h5.attrs[key] = value if scalar else json.dumps(value)

    def append(self, run: np.ndarray, event_id: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Append one batch: ``(B,)`` run and event ids, ``(B, K)`` probabilities.

        Returns the predicted class index of every event (the ``label`` written);
        rows of NaN probabilities (blank events) get ``len(output_names)``, ``empty``.
        """
        proba = np.asarray(proba, dtype=np.float32)
        b = len(proba)
        if b == 0:
            return np.zeros(0, dtype=np.int64)
        self._keys.append(np.stack([np.asarray(run, np.int64), np.asarray(event_id, np.int64)]))
        predicted = decide_events(proba, self.output_names, self.proton_threshold)
        label_names = (*self.output_names, EMPTY_LABEL)
        labels = np.asarray(label_names, dtype=object)[predicted]
        if self._text is not None:
            # One formatted block per batch: a csv.writer row per event is 5x slower.
            buf = io.StringIO()
            fmt = ",".join(["%d", "%d", "%s"] + ["%.6f"] * proba.shape[1])
            rows = zip(
                np.asarray(run).tolist(),
                np.asarray(event_id).tolist(),
                labels,
                proba.tolist(),
                strict=True,
            )
            for r, e, lab, p in rows:
                buf.write(fmt % (r, e, lab, *p))
                buf.write("\n")
            self._text.write(buf.getvalue())
        else:
            f = self._h5
            start, stop = self.n, self.n + b
            names = np.array([n.encode() for n in label_names])  # fixed-width bytes
            values = {"run": run, "event_id": event_id, "label": names[predicted]}
            values.update({f"p_{n}": proba[:, k] for k, n in enumerate(self.output_names)})
            for name, arr in values.items():
                f[name].resize(stop, axis=0)
                f[name][start:stop] = arr
        self.n += b
        return predicted

    def commit(self, summary: dict | None = None) -> Path:
        """Close the file and rename it to its final name in one atomic step.

        Raises `InputError` (and writes nothing) when a ``(run, event_id)`` pair came
        twice: the same file given twice, or a renamed copy of a run file.
        """
        check_interrupt()  # a run stopped by a signal is never renamed into place
        keys = np.concatenate(self._keys, axis=1) if self._keys else np.zeros((2, 0), np.int64)
        dup = first_duplicate(keys[0], keys[1])
        if dup is not None:
            self.abort()
            run, event = keys[:, dup[0]].tolist()
            raise InputError(
                f"run {run} event {event} was classified twice (rows {dup[0] + 1} and "
                f"{dup[1] + 1}): an input is given twice or is a copy of another; "
                "nothing written",
                path=self.path,
            )
        if self._text is not None:
            self._text.close()
        else:
            self._h5.attrs["n_events"] = self.n
            if summary is not None:
                self._h5.attrs["summary"] = json.dumps(summary)
            self._h5.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing appears under the final name."""
        if self._text is not None and not self._text.closed:
            self._text.close()
        if self._h5 is not None and self._h5.id.valid:
            self._h5.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp_path.exists():
            self.abort()  # an uncommitted writer leaves nothing behind


def output_kind(path: str | Path) -> str:
    """``"csv"`` or ``"hdf5"`` from the suffix; `InputError` for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise InputError("prediction output must end in .csv, .h5 or .hdf5", path=path)


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Load a prediction file (either form) as ``{column: array}``, columns in file order."""
    path = Path(path)
    if output_kind(path) == "csv":
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        cols = list(zip(*body, strict=True)) if body else [[] for _ in header]
        out: dict[str, np.ndarray] = {}
        for name, values in zip(header, cols, strict=True):
            if name in ("run", "event_id"):
                out[name] = np.asarray(values, dtype=np.int64)
            elif name == "label":
                out[name] = np.asarray(values, dtype=str)
            else:
                out[name] = np.asarray(values, dtype=np.float32)
        return out
    with h5py.File(path, "r") as f:
        names = json.loads(f.attrs["columns"])
        return {n: f[n].asstr()[:].astype(str) if n == "label" else f[n][:] for n in names}


# --------------------------------------------------------------------------------------
# Checks before any work
# --------------------------------------------------------------------------------------


def _config_differences(have: ImageConfig, want: ImageConfig, *, kind: str) -> list[str]:
    have_d, want_d = have.to_dict(), want.to_dict()
    skip = set() if kind == "voxels" else {"voxel_grid"}  # voxels matter to voxel models only
    # each run has its own; and a file short of band tracks, read in the pooled unit or
    # without one, is the same kind of input
    per_run = {"run_quantiles", "run_beam_axis", "run_charge_unit", "calibration_fallback"}
    skip |= per_run
    if kind == "features":  # features come from the (beam-centred) points: not the images
        keep = {"features", "charge_column", "beam_axis", "charge_calibration"}
        keep |= {k for k in want_d if k.startswith("calibration_")}
        skip = (set(want_d) - keep) | per_run
    return [
        f"{k} {have_d[k]} (model: {want_d[k]})"
        for k in want_d
        if k not in skip and have_d[k] != want_d[k]
    ]


def check_image_file(path: str | Path, trained: Predictor) -> dict:
    """Check that an image file fits the model: same preprocessing, classes and inputs.

    Returns the file's `read_info` dict; raises a one-line `InputError` otherwise.
    """
    info = read_info(path)
    run = trained.info
    needs_voxels = run.input == "voxels"
    diffs = _config_differences(info["image_config"], run.image_config, kind=run.input)
    if diffs:
        raise InputError(
            "preprocessed differently from the model's training data: " + "; ".join(diffs),
            path=path,
        )
    if tuple(info["class_names"]) != tuple(run.class_names):
        raise InputError(
            f"class names {list(info['class_names'])} differ from the model's "
            f"{list(run.class_names)}",
            path=path,
        )
    if needs_voxels and not info.get("has_voxels"):
        raise InputError("the model takes voxels but the image file has none", path=path)
    if run.input == "features" and not info.get("has_features"):
        raise InputError("the model takes features but the image file has none", path=path)
    return info


@dataclass
class Source:
    """One checked input: an image file or a point-cloud file of ``format``."""

    path: Path
    kind: str  # "images" | "events"
    n_events: int
    format: str


def _resolve_inputs(
    trained: Predictor, inputs: Sequence[str | Path], fmt: str, reader_options: dict
) -> list[Source]:
    from data_prep.readers import detect_format, open_events
    from data_prep.readers.base import warn_unknown_run

    sources = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError("input file not found", path=path)
        name = detect_format(path) if fmt == "auto" else fmt
        if name == "images" or is_image_file(path):
            info = check_image_file(path, trained)
            sources.append(Source(path, "images", int(info.get("n_events", 0)), "images"))
            continue
        # Opening reads the header: an unreadable or unsupported file fails here, not
        # after earlier inputs have been classified.
        with open_events(path, format=name, **reader_options) as reader:
            n = len(reader)
            warn_unknown_run(reader)
        sources.append(Source(path, "events", n, name))
    return sources


def prepare_inputs(
    trained: Predictor,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    format: str = "auto",
    batch_size: int = 256,
    reader_options: dict | None = None,
) -> tuple[list[Source], dict]:
    """Every check of `classify_files` before any event is read (also run by
    `attpc_classify.scaleout` before it connects to a cluster): the resolved inputs, and
    the reader options with the model's charge column."""
    reader_options = dict(reader_options or {})
    info = trained.info
    if any(Path(p).resolve() == Path(out).resolve() for p in inputs):
        raise InputError("output file is also an input", path=out)
    # Spyral files hold two charge columns; use the one the training images were made of.
    charge = reader_options.setdefault("charge", info.image_config.charge_column)
    # Spyral's per-point labels are never used here: not reading them is ~25 % of reading
    reader_options.setdefault("point_labels", False)
    if charge != info.image_config.charge_column:
        raise InputError(
            f"reader option charge={charge!r} differs from the model's training charge "
            f"column {info.image_config.charge_column!r}"
        )
    output_kind(out)
    check_writable(out)
    if not inputs:
        raise InputError("no input files given")
    inputs = expand_inputs(inputs)  # a directory = its files, as for preprocess
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    return _resolve_inputs(trained, inputs, format, reader_options), reader_options


def with_run_settings(
    tasks: list[ClassifyTask],
    info: RunInfo,
    sources: Sequence[Source],
    reader_options: dict,
    executor: Executor | None = None,
) -> tuple[list[ClassifyTask], dict[str, quantiles.ChargeUnit], dict[str, FileAxis]]:
    """What each point-cloud task projects with, as preprocess does: for a
    ``beam_axis=run`` model its file's fitted beam axis (`quantiles.beam_axes`, returned
    too); for a
    ``charge_norm=quantile`` model the charge quantiles (a seeded sample,
    `data_prep.quantiles`) of the run that the point-cloud inputs taken together make up;
    for a ``charge_calibration`` model each file's charge unit (`quantiles.charge_units`,
    returned too, for the physicist; measured on ``executor``'s workers when given).
    Image-file inputs were centred and normalised when preprocessed."""
    files = [str(s.path) for s in sources if s.kind == "events"]
    config = model_config(info)
    fits = quantiles.beam_axes(config, files, reader_options=reader_options)
    axes = {p: fit.axis for p, fit in fits.items()}
    q = quantiles.for_run(config, files, reader_options=reader_options, axes=axes).run_quantiles
    units = quantiles.charge_units(
        config, files, axes=axes, reader_options=reader_options, executor=executor
    )
    tasks = [
        replace(
            t,
            run_quantiles=q,
            run_beam_axis=axes.get(t.path, ()),
            run_charge_unit=units[t.path].unit if t.path in units else 0.0,
        )
        if t.kind == "events"
        else t
        for t in tasks
    ]
    return tasks, units, fits


def model_config(info: RunInfo) -> ImageConfig:
    """The projection that turns point clouds into this model's inputs."""
    config = info.image_config
    if info.input == "features":
        return config.features_only()  # the model reads only the features
    if info.input != "voxels" and config.voxel_grid:
        # The model never sees voxels: skip binning them (same images, less work).
        config = ImageConfig.from_dict({**config.to_dict(), "voxel_grid": 0})
    return config


def _engine_name(trained: Predictor) -> str:
    """``torch``, or ``onnxruntime:fp32|int8`` (the kind an auto choice resolved to)."""
    kind = getattr(trained, "kind", None)
    return "torch" if kind is None else f"onnxruntime:{kind}"


def output_attrs(info: RunInfo, sources: Sequence[Source], engine: str = "torch") -> dict[str, Any]:
    """The HDF5 prediction file's attributes: which model (``run_dir``: the ONNX export
    directory for the onnxruntime engine), which engine, which inputs."""
    return {
        "run_dir": str(info.path),
        "engine": engine,
        "model": info.model,
        "task": info.task,
        "git_sha": info.git_sha,
        "image_config": info.image_config.to_dict(),
        "inputs": [str(s.path) for s in sources],
    }


# --------------------------------------------------------------------------------------
# Batches: read, project, infer
# --------------------------------------------------------------------------------------


@dataclass
class _Batch:
    run: np.ndarray
    event_id: np.ndarray
    images: np.ndarray
    voxels: np.ndarray | None
    empty: np.ndarray  # (B,) True where the event has no usable point (blank input)
    features: np.ndarray | None = None
    n_sparks: int = 0  # events whose spark the structured-noise rules removed (point clouds)

    @property
    def n_empty(self) -> int:
        return int(self.empty.sum())


def _blank(x: np.ndarray) -> np.ndarray:
    """(B,) True where a stored image (or voxel) array is all zero."""
    return ~np.asarray(x).reshape(len(x), -1).any(axis=1)


def predict_batch(
    trained: Predictor, batch: _Batch, *, precision: str, batch_size: int
) -> np.ndarray:
    """The model's probabilities for one batch, NaN rows for its blank events."""
    proba = trained.predict_proba(
        batch.images, batch.voxels, features=batch.features, precision=precision,
        batch_size=batch_size,
    )  # fmt: skip
    proba[batch.empty] = np.nan
    return proba


def _image_batches(
    path: Path, batch_size: int, kind: str, start: int, stop: int | None
) -> Iterator[_Batch]:
    """Batches of an image file for a model reading ``kind`` (images | voxels | features)."""
    # Read HDF5 slices directly: the file may be larger than memory.
    with h5py.File(path, "r") as f:
        n = f["event_id"].shape[0] if stop is None else stop
        for first in range(start, n, batch_size):
            sl = slice(first, min(n, first + batch_size))
            images = f["images"][sl]
            vox = f["voxels"][sl] if kind == "voxels" else None
            feats = f["features"][sl] if kind == "features" else None
            yield _Batch(
                run=f["run"][sl].astype(np.int64),
                event_id=f["event_id"][sl].astype(np.int64),
                images=images,
                voxels=vox,
                empty=_empty(images, vox, feats),
                features=feats,
            )


def _empty(images: np.ndarray, voxels: np.ndarray | None, features: np.ndarray | None):
    """(B,) True where the model's input holds no point (its output would mean nothing).

    Features describe every event: one whose points are all stray hits is noise-like,
    which the model judges, rather than blank."""
    if features is not None:
        return np.zeros(len(features), dtype=bool)
    return _blank(voxels if voxels is not None else images)


def _project_batch(
    events: list,
    config: ImageConfig,
    hot_pads: dict[int, np.ndarray] | None = None,
    kind: str = "images",
) -> _Batch:
    """One batch projected from raw events for a model reading ``kind``; blank exactly as
    `_image_batches` calls it on the image file of the same events (a CNN whose run also
    stores features still sees blank images)."""
    proj = project(events, config, hot_pads)
    return _Batch(
        run=np.fromiter((e.run for e in events), np.int64, len(events)),
        event_id=np.fromiter((e.event_id for e in events), np.int64, len(events)),
        images=proj.images,
        voxels=proj.voxels,
        empty=_empty(
            proj.images,
            proj.voxels if kind == "voxels" else None,
            proj.features if kind == "features" else None,
        ),
        features=proj.features,
        n_sparks=0 if proj.sparked is None else int(proj.sparked.sum()),
    )


def _event_batches(
    path: Path,
    format: str,
    config: ImageConfig,
    batch_size: int,
    start: int,
    stop: int | None,
    *,
    skip_bad: bool,
    on_skip: Callable[[int, str], None],
    reader_options: dict,
    kind: str = "images",
) -> Iterator[_Batch]:
    from data_prep.readers import open_events

    with open_events(path, format=format, **reader_options) as reader:
        hot = None
        if config.structured_noise != "none":
            # the run's own hot pads, from the same seeded sample preprocessing uses
            hot = find_hot_pads(
                reader, config.hot_pad_fraction, config.hot_pad_sample, config.run_beam_axis
            )
        pending: list = []
        for event in reader.iter_events(start, stop, skip_bad=skip_bad, on_skip=on_skip):
            pending.append(event)
            if len(pending) == batch_size:
                yield _project_batch(pending, config, hot, kind)
                pending = []
        if pending:
            yield _project_batch(pending, config, hot, kind)


_DONE = object()


def _prefetch(batches: Generator[_Batch, None, None], depth: int) -> Iterator[_Batch]:
    """Run ``batches`` in a daemon thread, ``depth`` batches ahead; errors re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as err:  # handed to the consumer, raised in its thread
            q.put(err)
        finally:
            batches.close()  # closes the open reader in this thread, not at GC time

    thread = threading.Thread(target=produce, name="classify-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # consumer stopped (error, interrupt or done): let the producer end
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


# --------------------------------------------------------------------------------------
# Tasks: plan, run one (here or on a worker), merge in order
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyTask:
    """Events ``[start, stop)`` of one input (point-cloud or image file); ``stop`` None:
    to the end of the file."""

    index: int
    path: str
    kind: str  # "images" | "events"
    format: str
    start: int
    stop: int | None
    # charge_norm=quantile: the charge quantiles of the run all inputs make up
    run_quantiles: tuple[float, ...] = ()
    # beam_axis=run: the file's beam line (x0, ax, y0, ay)
    run_beam_axis: tuple[float, ...] = ()
    # charge_calibration=proton_band: the file's charge unit (ADC/mm; NaN: none found)
    run_charge_unit: float = 0.0


@dataclass
class ClassifyPart:
    """What `classify_task` returns: its events' rows and counts (small: 28 bytes per
    event of a 3-class model, so parts travel back as results, not files)."""

    index: int
    run: np.ndarray  # (n,) int64
    event_id: np.ndarray  # (n,) int64
    proba: np.ndarray  # (n, K) float32; NaN rows for blank events
    n_empty: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> bad events
    n_sparks: int = 0

    @property
    def n_events(self) -> int:
        return len(self.proba)


def plan_classify(
    sources: Sequence[Source], *, events_per_task: int | None, batch_size: int
) -> list[ClassifyTask]:
    """Tasks in output order: one per input, or per ``events_per_task`` events of each
    (rounded up to whole batches).

    Whole batches keep every batch the same as in a one-task-per-file run (unless
    ``skip_bad`` drops events), so the probabilities are computed on the same batches.
    """
    if events_per_task is None:
        return [
            ClassifyTask(i, str(src.path), src.kind, src.format, 0, None)
            for i, src in enumerate(sources)
        ]
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


_LOADED: dict[tuple, Predictor] = {}
_LOADED_LOCK = threading.Lock()


def load_predictor(run_dir: str | Path, *, device: str = "auto", engine: str = "torch"):
    """A run ready to classify with ``engine``: ``torch`` (`checkpoint.load_run`, on
    ``device``) or ``onnxruntime[:fp32|:int8]`` (its ONNX export, `ortengine.load_onnx`;
    without a kind: int8 when exported, else fp32)."""
    from attpc_classify.ortengine import load_onnx, parse_engine

    name, kind = parse_engine(engine)
    if name == "torch":
        from attpc_classify.checkpoint import load_run

        return load_run(run_dir, device=device)
    return load_onnx(run_dir, kind=kind, device=device)


def loaded_run(run_dir: str, device: str, *, engine: str = "torch") -> Predictor:
    """The run's model, loaded once per worker process (tasks of one run share it).

    Keyed by the weights (or ONNX export) file's size and time too: a long-lived worker
    must not keep serving a model that was retrained (or re-exported) into the same
    directory.
    """
    from attpc_classify.ortengine import ONNX_JSON, find_export

    if engine == "torch":
        weights = Path(run_dir).resolve() / "model.safetensors"
    else:
        weights = find_export(run_dir).resolve() / ONNX_JSON
    st = weights.stat() if weights.exists() else None
    key = (str(weights), device, engine, st and st.st_size, st and st.st_mtime_ns)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED.clear()  # one run at a time: do not pile up models in a worker
            _LOADED[key] = load_predictor(run_dir, device=device, engine=engine)
        return _LOADED[key]


def _task_batches(
    task: ClassifyTask,
    info: RunInfo,
    batch_size: int,
    *,
    skip_bad: bool,
    on_skip: Callable[[int, str], None],
    reader_options: dict,
) -> Generator[_Batch, None, None]:
    path = Path(task.path)
    if task.kind == "images":
        yield from _image_batches(path, batch_size, info.input, task.start, task.stop)
    else:
        config = model_config(info)
        if task.run_quantiles:
            config = replace(config, run_quantiles=task.run_quantiles)
        if task.run_beam_axis:
            config = replace(config, run_beam_axis=task.run_beam_axis)
        if task.run_charge_unit != 0:
            config = replace(config, run_charge_unit=task.run_charge_unit)
        yield from _event_batches(
            path, task.format, config, batch_size, task.start, task.stop,
            skip_bad=skip_bad, on_skip=on_skip, reader_options=reader_options,
            kind=info.input,
        )  # fmt: skip


def classify_task(
    task: ClassifyTask,
    run: Predictor | str,
    *,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 256,
    skip_bad: bool = False,
    reader_options: dict | None = None,
    prefetch: bool | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "torch",
) -> ClassifyPart:
    """Read, project and classify one task's events, in this process or on a worker.

    Parameters
    ----------
    task
        What to classify (`plan_classify`).
    run
        The loaded run, or its directory: a worker loads it once on ``device`` with
        ``engine`` (`loaded_run`).
    prefetch
        Read and project the next batches in a thread while the model runs (None: only
        when the model is on a GPU).
    progress
        Called with the number of events of each classified batch.

    Other parameters as for `classify_files`.
    """
    trained = loaded_run(run, device, engine=engine) if isinstance(run, str) else run
    skipped: dict[str, int] = {}

    def on_skip(event_id: int, reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    batches = _task_batches(
        task, trained.info, batch_size, skip_bad=skip_bad, on_skip=on_skip,
        reader_options=dict(reader_options or {}),
    )  # fmt: skip
    if prefetch is None:
        device_type = getattr(getattr(trained, "device", None), "type", "cpu")
        prefetch = device_type != "cpu"
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_empty = n_sparks = 0
    for batch in _prefetch(batches, depth=2) if prefetch else batches:
        check_interrupt()
        proba = predict_batch(trained, batch, precision=precision, batch_size=batch_size)
        rows.append((batch.run, batch.event_id, proba))
        n_empty += batch.n_empty
        n_sparks += batch.n_sparks
        if progress is not None:
            progress(len(proba))
    k = len(trained.info.output_names)
    run_ids, event_ids, probas = zip(*rows, strict=True) if rows else ((), (), ())
    return ClassifyPart(
        index=task.index,
        run=np.concatenate([np.zeros(0, np.int64), *run_ids]),
        event_id=np.concatenate([np.zeros(0, np.int64), *event_ids]),
        proba=np.concatenate([np.zeros((0, k), np.float32), *probas]),
        n_empty=n_empty,
        skipped=skipped,
        n_sparks=n_sparks,
    )


@dataclass
class ClassifySummary:
    """What `classify_files` did."""

    out: Path
    n_events: int = 0
    n_skipped: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    n_empty: int = 0  # events with no point inside the image ranges (still classified)
    # point clouds with structured_noise=rules: events whose spark was removed (classified
    # on what is left); a detector-health count, 0 for image files (cleaned when made)
    n_sparks: int = 0
    predicted: dict[str, int] = field(default_factory=dict)  # class -> events
    # the same per run number: a run whose mix stands out is one to look at
    predicted_by_run: dict[int, dict[str, int]] = field(default_factory=dict)
    wall_s: float = 0.0
    # charge_calibration=proton_band: each point-cloud file's charge unit
    charge_units: dict[str, quantiles.ChargeUnit] = field(default_factory=dict)
    # beam_axis=run: each point-cloud file's fitted beam line (the health report reuses
    # it with the units)
    beam_axes: dict[str, FileAxis] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.n_events / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "n_events": self.n_events,
            "n_skipped": self.n_skipped,
            "skipped": self.skipped,
            "n_empty": self.n_empty,
            "n_sparks": self.n_sparks,
            "predicted": self.predicted,
            "predicted_by_run": {str(r): c for r, c in self.predicted_by_run.items()},
            "wall_s": round(self.wall_s, 3),
            "events_per_s": round(self.events_per_s, 1),
            "charge_units": quantiles.units_json(self.charge_units),
        }


class _InOrder:
    """Append finished parts to the writer in task order (an early one waits) and add up
    their counts."""

    def __init__(self, writer: PredictionWriter, summary: ClassifySummary):
        self.writer = writer
        self.summary = summary
        # per run number: the predicted-class bincounts, + empty (the totals are their sum)
        self.by_run: dict[int, np.ndarray] = {}
        self.waiting: dict[int, ClassifyPart] = {}
        self.next = 0

    def add(self, part: ClassifyPart) -> None:
        self.waiting[part.index] = part
        while self.next in self.waiting:
            p = self.waiting.pop(self.next)
            predicted = self.writer.append(p.run, p.event_id, p.proba)
            size = len(self.writer.output_names) + 1
            for run in np.unique(p.run).tolist():
                counts = self.by_run.setdefault(int(run), np.zeros(size, dtype=np.int64))
                counts += np.bincount(predicted[p.run == run], minlength=size)
            s = self.summary
            s.n_events += p.n_events
            s.n_empty += p.n_empty
            s.n_sparks += p.n_sparks
            for reason, n in p.skipped.items():
                s.skipped[reason] = s.skipped.get(reason, 0) + n
            s.n_skipped += sum(p.skipped.values())
            self.next += 1

    def finish(self, n_tasks: int) -> ClassifySummary:
        assert self.next == n_tasks and not self.waiting, "a task's part is missing"
        names = self.writer.output_names
        total = sum(self.by_run.values(), np.zeros(len(names) + 1, dtype=np.int64))
        self.summary.predicted = count_predicted(total, names)
        self.summary.predicted_by_run = {
            run: count_predicted(c, names) for run, c in sorted(self.by_run.items())
        }
        return self.summary


# --------------------------------------------------------------------------------------
# Classification: checks, then tasks on any executor, then one atomic table
# --------------------------------------------------------------------------------------


def run_classification(
    trained: Predictor,
    sources: Sequence[Source],
    out: str | Path,
    *,
    reader_options: dict,
    executor: Executor | None = None,
    device: str = "cpu",
    events_per_task: int | None = None,
    batch_size: int = 256,
    precision: str = "auto",
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
    prefetch: bool | None = None,
    engine: str = "torch",
) -> ClassifySummary:
    """`classify_files` after its checks (`prepare_inputs`): plan, run the tasks, merge.

    Without ``executor`` the tasks run here, one after the other, on ``trained`` (progress
    per batch); with one, each runs on a worker that loads the run on ``device`` (progress
    per task; ``engine`` as for `load_predictor`, which ``trained`` must have been loaded
    with). Either way the parts are appended in task order -- file order, then event
    order -- to one table renamed into place when complete.
    """
    info = trained.info
    out = Path(out)
    tasks = plan_classify(sources, events_per_task=events_per_task, batch_size=batch_size)
    tasks, units, fits = with_run_settings(tasks, info, sources, reader_options, executor)
    options = dict(precision=precision, batch_size=batch_size, skip_bad=skip_bad,
                   reader_options=reader_options, prefetch=prefetch)  # fmt: skip
    start = time.perf_counter()
    with PredictionWriter(
        out, info.output_names, attrs=output_attrs(info, sources, _engine_name(trained)),
        proton_threshold=info.proton_threshold,
    ) as writer:  # fmt: skip
        merge = _InOrder(writer, ClassifySummary(out=out))
        if executor is None:
            for task in tasks:
                merge.add(classify_task(task, trained, progress=progress, **options))
        else:

            def done(task: ClassifyTask, part: ClassifyPart) -> None:
                merge.add(part)
                if progress is not None:
                    progress(part.n_events)

            run_tasks(executor, classify_task, tasks, str(info.path), on_result=done,
                      device=device, engine=engine, **options)  # fmt: skip
        summary = merge.finish(len(tasks))
        summary.wall_s = time.perf_counter() - start
        summary.charge_units, summary.beam_axes = units, fits
        writer.commit(summary=summary.to_dict())
    return summary


def classify_files(
    trained: Predictor,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    format: str = "auto",
    batch_size: int = 256,
    precision: str = "auto",
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
    reader_options: dict | None = None,
    prefetch: bool | None = None,
    on_plan: Callable[[int], None] | None = None,
    executor: Executor | None = None,
    device: str = "cpu",
    events_per_task: int | None = None,
    engine: str = "torch",
    workers: int = 1,
) -> ClassifySummary:
    """Classify every event of ``inputs`` with a trained run; write one row per event.

    Parameters
    ----------
    trained
        A loaded run (`load_predictor`: `attpc_classify.checkpoint.load_run` for torch,
        `attpc_classify.ortengine.load_onnx` for ONNX Runtime).
    inputs
        Point-cloud files in any supported format, or image files made with the same
        preprocessing as the model's training data.
    out
        Output table, ``.csv`` or ``.h5`` / ``.hdf5`` (see module docstring).
    format
        Reader format for point-cloud inputs, or ``"auto"`` to detect it per file.
    batch_size
        Events projected and classified together.
    precision
        ``"auto"`` (bf16 where the CPU has native bf16), ``"fp32"`` or ``"bf16"``; passed
        to the model.
    skip_bad
        Skip and count unreadable events instead of stopping at the first.
    progress
        Called with the number of newly classified events.
    reader_options
        Keyword options for `data_prep.readers.open_events` (e.g. the ROOT tree name).
    prefetch
        Read and project the next batches in a background thread while the model runs
        on the current one. ``None`` (default): only when the model is on a GPU, where it
        overlaps for free; on a CPU torch already uses every core and measured no gain.
    on_plan
        Called once with the number of events in all inputs, after every check (to
        size a progress bar).
    executor
        Run the tasks on this `concurrent.futures.Executor` (a process pool, Dask's
        ``client.get_executor()``; its workers must see the same files) instead of here.
    device
        With ``executor``: where the workers run the model (``cpu``, ``auto``, ``cuda``).
    events_per_task
        Events per task (whole batches); None: one task per input file.
    engine
        With ``executor`` or ``workers``: the engine the workers load ``trained``'s run
        with (`load_predictor`); ``trained`` itself must be loaded with the same.
    workers
        Without ``executor``: run the tasks on this many local processes (each with
        ``cpus // workers`` threads; ``events_per_task`` default `WORKER_BATCHES`
        batches). Reading, denoising and projecting are single-threaded numpy, so on a
        CPU worker processes use the cores that one process leaves idle.

    Returns
    -------
    ClassifySummary
        Counts (events, skipped by reason, empty, predicted per class) and timing.

    Examples
    --------
    >>> trained = load_run("runs/vit_s")  # doctest: +SKIP
    >>> classify_files(trained, ["run_0001.h5"], "predictions.csv").n_events  # doctest: +SKIP
    10000
    """
    sources, reader_options = prepare_inputs(
        trained, inputs, out, format=format, batch_size=batch_size, reader_options=reader_options
    )
    if on_plan is not None:
        on_plan(sum(s.n_events for s in sources))
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    with contextlib.ExitStack() as stack:
        if executor is None and workers > 1:
            executor = stack.enter_context(worker_pool(workers))
            events_per_task = events_per_task or WORKER_BATCHES * batch_size
        return run_classification(
            trained, sources, out, reader_options=reader_options, executor=executor,
            device=device, events_per_task=events_per_task, batch_size=batch_size,
            precision=precision, skip_bad=skip_bad, progress=progress, prefetch=prefetch,
            engine=engine,
        )  # fmt: skip


#: ``classify_files(workers>1)``: batches per task unless ``events_per_task`` is given
WORKER_BATCHES = 2


def _init_worker(threads: int) -> None:
    """A local worker's threads: ``OMP_NUM_THREADS`` (read by ONNX Runtime sessions made
    here, `ortengine.load_onnx`) and torch's, when the forked process has torch."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` local processes sharing the CPUs this process may use."""
    from data_prep.build import pool_context

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(),
        initializer=_init_worker,
        initargs=(max(1, cpus // workers),),
    )
