"""A labelling session: the events of the given files, the model's view of them, the queue.

`Session.open` makes one streaming pass over every file (a batch of events in memory at a
time): it records each event's run, event id and place in its file and, with a model,
its class probabilities, computed with the preprocessing recorded in the run
(`attpc_classify.predict.model_config`). Afterwards an event is read again only when it
is shown (`Session.item`), through the file's reader, so thousands of events cost a few
numbers each in memory.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from attpc_classify.decision import decide
from attpc_classify.label import ranking
from attpc_classify.label.store import LabelStore
from data_prep.errors import BadEventError, InputError
from data_prep.events import CLASS_NAMES, Event
from data_prep.images import ImageConfig, project, project_arrays
from data_prep.quantiles import file_beam_axis, file_charge_unit

#: the three views the page always shows (the model may see fewer)
VIEWS: tuple[str, ...] = ("xy", "zy", "zx")
#: most points sent to the browser's 3-D view per event (a random subset beyond)
MAX_POINTS = 20000
BATCH = 256


@dataclass
class _File:
    path: Path
    format: str
    reader: Any  # an open EventReader
    positions: dict[int, int] = field(default_factory=dict)  # event id -> position
    beam_axis: tuple[float, ...] = ()  # beam_axis=run: the file's fitted line


@dataclass
class Settings:
    """What the user chose on the command line."""

    order: str = "uncertain"
    only: tuple[str, ...] = ()  # predicted classes to show (empty: all)
    p_range: tuple[float, float] = (0.0, 1.0)
    random_share: float = 0.2
    seed: int = 0
    skip_bad: bool = False
    labeller: str = "anonymous"


class Session:
    """Events, probabilities, the queue and the label store of one ``label`` run.

    Use `Session.open`. ``queue[slot]`` is an event's index into the tables ``run``,
    ``event_id``, ``file_of`` (and ``proba`` with a model).
    """

    def __init__(self) -> None:
        self.files: list[_File] = []
        self.run = np.zeros(0, np.int64)
        self.event_id = np.zeros(0, np.int64)
        self.file_of = np.zeros(0, np.int64)
        self.proba: np.ndarray | None = None
        self.output_names: tuple[str, ...] = ()
        self.proton_threshold: float | None = None
        self.predicted: np.ndarray | None = None
        self.queue = np.zeros(0, np.int64)
        self.store: LabelStore
        self.settings = Settings()
        self.display_config = ImageConfig(views=VIEWS, size=128, voxel_grid=0)
        self.n_skipped = 0
        self.model_name = ""
        self._lock = threading.Lock()  # readers (h5py, uproot) and the store: one user at a time

    # ---------------------------------------------------------------- building

    @classmethod
    def open(
        cls,
        inputs: Sequence[str | Path],
        labels: str | Path,
        *,
        model: str | Path | None = None,
        settings: Settings | None = None,
        format: str = "auto",
        reader_options: dict | None = None,
        device: str = "cpu",
        progress: Callable[[int], None] | None = None,
    ) -> Session:
        """Check every input, score the events (with a model) and build the queue."""
        from data_prep.readers import detect_format, open_events

        self = cls()
        self.settings = s = settings or Settings()
        reader_options = dict(reader_options or {})
        trained = None
        if model is not None:
            from attpc_classify.checkpoint import load_run
            from attpc_classify.predict import model_config, prepare_inputs

            trained = load_run(model, device=device)
            info = trained.info
            self.output_names = tuple(info.output_names)
            self.proton_threshold = info.proton_threshold
            self.model_name = str(info.path)
            sources, reader_options = prepare_inputs(
                trained, inputs, labels, format=format, reader_options=reader_options
            )
            paths = [(src.path, src.format) for src in sources]
            model_cfg = model_config(info)
            self.display_config = ImageConfig.from_dict(
                # the pictures need no features (nor the run's charge unit for them)
                {
                    **model_cfg.to_dict(),
                    "views": list(VIEWS),
                    "voxel_grid": 0,
                    "features": "none",
                    "charge_calibration": "none",
                }
            )
        else:
            paths = []
            for raw in inputs:
                path = Path(raw)
                fmt = detect_format(path) if format == "auto" else format
                paths.append((path, fmt))
            if not paths:
                raise InputError("no input files given")
        self.store = LabelStore(labels, CLASS_NAMES, s.labeller)

        runs, ids, files, probas = [], [], [], []

        def on_skip(event_id: int, reason: str) -> None:
            self.n_skipped += 1

        for k, (path, fmt) in enumerate(paths):
            reader = open_events(path, format=fmt, **reader_options)
            entry = _File(path, fmt, reader)
            self.files.append(entry)
            entry.positions = {int(e): p for p, e in enumerate(reader.event_ids().tolist())}
            file_cfg = model_cfg if trained is not None else self.display_config
            if fmt != "images" and file_cfg.beam_axis == "run":  # as preprocess fits it
                fit = file_beam_axis(path, file_cfg, format=fmt, reader_options=reader_options)
                entry.beam_axis = fit.axis
                file_cfg = replace(file_cfg, run_beam_axis=fit.axis)
            if fmt != "images" and file_cfg.charge_calibration != "none":  # as preprocess
                unit = file_charge_unit(path, file_cfg, axis=file_cfg.run_beam_axis,
                                        format=fmt, reader_options=reader_options)  # fmt: skip
                file_cfg = replace(file_cfg, run_charge_unit=unit.unit)
            for batch in _batches(reader.iter_events(skip_bad=s.skip_bad, on_skip=on_skip)):
                runs.append(np.fromiter((e.run for e in batch), np.int64, len(batch)))
                ids.append(np.fromiter((e.event_id for e in batch), np.int64, len(batch)))
                files.append(np.full(len(batch), k, np.int64))
                if trained is not None:
                    if fmt == "images":  # never skips: a batch is a range of positions
                        first = entry.positions[int(batch[0].event_id)]
                        images, voxels = reader.images(first, first + len(batch)), None
                        features = None
                    else:
                        counts = np.fromiter((e.n_points for e in batch), np.int64, len(batch))
                        pts = np.concatenate([e.points[:, :4] for e in batch], axis=0)
                        proj = project_arrays(pts, counts, file_cfg)
                        images, voxels, features = proj.images, proj.voxels, proj.features
                    probas.append(trained.predict_proba(images, voxels, features=features))
                if progress:
                    progress(len(batch))
        self.run = np.concatenate(runs) if runs else np.zeros(0, np.int64)
        self.event_id = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        self.file_of = np.concatenate(files) if files else np.zeros(0, np.int64)
        if not len(self.run):
            raise InputError("the input files hold no events")
        p_pred = None
        if trained is not None:
            self.proba = np.concatenate(probas)
            self.predicted = decide(self.proba, self.output_names, self.proton_threshold)
            p_pred = self.proba[np.arange(len(self.proba)), self.predicted]
        unknown = [c for c in s.only if c not in self.output_names]
        if unknown:
            raise InputError(
                f"--predicted {unknown[0]!r} is not an output of the model "
                f"{list(self.output_names) or '(no model given)'}"
            )
        only = [self.output_names.index(c) for c in s.only]
        keep = ranking.select(self.predicted, p_pred, len(self.run), only=only, p_range=s.p_range)
        self.queue = ranking.order(
            keep, s.order, proba=self.proba, random_share=s.random_share, seed=s.seed
        )
        return self

    def close(self) -> None:
        for f in self.files:
            f.reader.close()

    # ---------------------------------------------------------------- state

    def first_unlabelled(self, start: int = 0) -> int:
        """The first slot at or after ``start`` whose event has no label (len: none)."""
        for slot in range(start, len(self.queue)):
            i = int(self.queue[slot])
            if self.store.get(int(self.run[i]), int(self.event_id[i])) is None:
                return slot
        return len(self.queue)

    def state(self) -> dict[str, Any]:
        """Summary for the page's header."""
        return {
            "n_queue": len(self.queue),
            "n_events": len(self.run),
            "n_labelled": len(self.store),
            "start": self.first_unlabelled(),
            "classes": list(CLASS_NAMES),
            "outputs": list(self.output_names),
            "model": self.model_name,
            "order": self.settings.order,
            "labeller": self.settings.labeller,
            "labels_file": str(self.store.path),
        }

    def label(self, slot: int, label: str) -> dict[str, Any]:
        """Label the event at ``slot`` and save; returns the next unlabelled slot."""
        i = self._index(slot)
        with self._lock:  # one writer of the labels file at a time
            self.store.set(int(self.run[i]), int(self.event_id[i]), label)
        return {"saved": label, "next": self.first_unlabelled(slot + 1), **self.state()}

    def _index(self, slot: int) -> int:
        if not 0 <= slot < len(self.queue):
            raise InputError(f"no event at place {slot} (the queue holds {len(self.queue)})")
        return int(self.queue[slot])

    def item(self, slot: int) -> dict[str, Any]:
        """Everything the page shows about the event at ``slot``."""
        i = self._index(slot)
        entry = self.files[int(self.file_of[i])]
        run, event_id = int(self.run[i]), int(self.event_id[i])
        out: dict[str, Any] = {
            "slot": slot,
            "run": run,
            "event_id": event_id,
            "file": entry.path.name,
            "label": self.store.get(run, event_id),
        }
        if self.proba is not None:
            p = self.proba[i].tolist()
            out["proba"] = dict(zip(self.output_names, p, strict=True))
            out["predicted"] = self.output_names[int(self.predicted[i])]
        pos = entry.positions[event_id]
        with self._lock:
            try:
                event = next(iter(entry.reader.iter_events(pos, pos + 1)))
            except BadEventError as err:
                raise InputError(str(err)) from None
            if entry.format == "images":
                images, config, points = (
                    entry.reader.images(pos, pos + 1)[0],
                    entry.reader.config,
                    None,
                )
            else:
                config = self.display_config
                if entry.beam_axis:
                    config = replace(config, run_beam_axis=entry.beam_axis)
                images = project([event], config).images[0]
                points = event.points[:, :4]
        out["views_png"] = _views_png(images, config)
        if points is not None:
            if len(points) > MAX_POINTS:  # the same subset every time the event is shown
                keep = np.random.default_rng(event_id).choice(
                    len(points), MAX_POINTS, replace=False
                )
                points = points[np.sort(keep)]
            out["points"] = {c: np.round(points[:, k], 2).tolist() for k, c in enumerate("xyzq")}
            out["n_points"] = int(event.n_points)
        return out


def _batches(events: Iterator[Event], size: int = BATCH) -> Iterator[list[Event]]:
    """Lists of up to ``size`` consecutive events."""
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _views_png(images: np.ndarray, config: ImageConfig) -> str:
    """The views as one PNG (axes in mm), as a data URL."""
    from attpc_classify.display import event_figure

    fig = event_figure(images, config)
    fig.set_size_inches(3.6 * len(config.views), 3.6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
