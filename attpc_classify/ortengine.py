"""ONNX Runtime inference of an exported run: `load_onnx` returns an `OnnxTrained`.

``attpc-classify export RUN --onnx`` (`attpc_classify.export`) writes ``RUN/onnx/``::

    onnx.json          what the model is: image config (the preprocessing), class and
                       output names, decision rule, input shape and scaling, the run's
                       weights sha256, each model file's sha256, the export checks
    model.onnx         fp32, dynamic batch axis: float32 (N, C, S, S) in [0, 1] -> logits
    model.int8.onnx    optional: int8 (dynamic or static, see onnx.json)

`OnnxTrained` has the interface the classify path uses of `checkpoint.Trained` (``info``,
``device``, ``predict_proba``), so `attpc_classify.predict` runs either engine. The
export directory is self-contained: copied elsewhere without its run, it still classifies
(``attpc-classify classify EXPORT_DIR ... --engine onnxruntime``). Inside a run it is
checked against the run's weights, so a retrained run is not served by a stale export.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attpc_classify.checkpoint import (
    RunInfo,
    check_model_input,
    read_info,
    read_json,
)
from data_prep.errors import InputError
from data_prep.images import ImageConfig

ONNX_FORMAT = "attpc-classify-onnx"
ONNX_FORMAT_VERSION = 1
ONNX_JSON = "onnx.json"
#: where `export` writes inside a run directory
EXPORT_DIR = "onnx"
#: the ONNX models an export may hold, by kind
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
ENGINES = ("torch", "onnxruntime")
#: |p_onnxruntime - p_torch| of the fp32 export (measured: ~4e-7; `export` refuses more)
FP32_TOLERANCE = 1e-5
#: |p_int8 - p_torch| the tests hold a static int8 export to (their CNN: 0.052). A real
#: model's depends on the model (the s2r robust CNN: 0.037 on its calibration sample, 0.116
#: on 2,000 test events; docs/inference.md); each export records its own in onnx.json. An
#: event's label can change only where torch's p is that close to the decision boundary.
INT8_TOLERANCE = 0.1
ONNX_MODELS = ("auto", "fp32", "int8")


def find_export(path: str | Path) -> Path:
    """The export directory of ``path``: itself when it holds ``onnx.json``, else
    ``path/onnx``; a one-line `InputError` when neither does."""
    path = Path(path)
    if path.is_file() and path.name == ONNX_JSON:
        path = path.parent
    for candidate in (path, path / EXPORT_DIR):
        if (candidate / ONNX_JSON).is_file():
            return candidate
    if not path.exists():
        raise InputError("run directory not found", path=path)
    raise InputError(
        f"no ONNX export (no {ONNX_JSON} here or in {EXPORT_DIR}/); "
        "make one with `attpc-classify export RUN --onnx`",
        path=path,
    )


def run_info_of(meta: dict[str, Any], export_dir: Path) -> RunInfo:
    """The `RunInfo` an export records (the run's, with ``path`` = the export)."""
    try:
        return RunInfo(
            model=dict(meta["model"]),
            image_config=ImageConfig.from_dict(meta["image_config"]),
            class_names=tuple(meta["class_names"]),
            output_names=tuple(meta["output_names"]),
            task=str(meta["task"]),
            input=str(meta["input"]),
            metrics={},
            epoch=int(meta["epoch"]),
            git_sha=str(meta.get("git_sha", "unknown")),
            path=export_dir,
            decision=meta.get("decision"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"lacks or mangles {err}", path=export_dir / ONNX_JSON) from None


def read_export(path: str | Path) -> tuple[RunInfo, dict[str, Any]]:
    """`RunInfo` and raw ``onnx.json`` of an export; refuses one that does not describe
    the weights of the run it sits in (retrained since the export)."""
    export_dir = find_export(path)
    meta = read_json(export_dir / ONNX_JSON)
    where = export_dir / ONNX_JSON
    if meta.get("format") != ONNX_FORMAT:
        raise InputError(f"not an {ONNX_FORMAT} file", path=where)
    if meta.get("format_version") != ONNX_FORMAT_VERSION:
        raise InputError(
            f"format_version {meta.get('format_version')} is not {ONNX_FORMAT_VERSION}",
            path=where,
        )
    run_dir = export_dir.parent
    if (run_dir / "model.json").is_file():
        _, run_meta = read_info(run_dir)
        if run_meta.get("sha256") != meta.get("weights_sha256") or run_meta.get(
            "decision"
        ) != meta.get("decision"):
            raise InputError(
                "exported from other weights or another decision rule than the run's "
                "model.json (retrained or re-thresholded since); export again",
                path=where,
            )
    return run_info_of(meta, export_dir), meta


def _threads() -> int:
    """Intra-op threads: ``OMP_NUM_THREADS`` when set, else the CPUs this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class OnnxTrained:
    """An exported model in an ONNX Runtime session, ready to predict (`load_onnx`).

    Attributes
    ----------
    info
        The run's `RunInfo` as recorded in ``onnx.json`` (``path``: the export directory).
    kind
        ``fp32`` or ``int8``: which of the exported models runs.
    file
        The ``.onnx`` file in the session.
    """

    info: RunInfo
    session: Any
    kind: str
    file: Path
    #: ONNX Runtime runs on the CPU here; None tells the classify path it is no torch device
    device: None = None

    def predict_proba(
        self,
        images: np.ndarray | None,
        voxels: np.ndarray | None = None,
        *,
        features: np.ndarray | None = None,
        precision: str = "auto",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32, as `checkpoint.Trained.predict_proba`.

        ``precision``: ``auto`` or ``fp32`` (the exported model's own precision runs;
        int8 is chosen at load time, bf16 is a torch-only option).
        """
        if precision not in ("auto", "fp32"):
            raise InputError(
                f"precision {precision} is a torch option; the onnxruntime engine runs the "
                "exported model as it is (fp32, or int8 when loaded so)"
            )
        x = check_model_input(self.info, images, voxels, features)
        out = np.empty((len(x), len(self.info.output_names)), dtype=np.float32)
        name = self.session.get_inputs()[0].name
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            # the same scaling as `attpc_classify.data.as_float`: uint8 / 255 in float32
            xb = xb.astype(np.float32) / np.float32(255.0) if xb.dtype == np.uint8 else xb
            (logits,) = self.session.run(None, {name: np.ascontiguousarray(xb, np.float32)})
            out[start : start + len(xb)] = softmax(logits)
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (max subtracted, as torch does)."""
    z = np.asarray(logits, dtype=np.float32)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def parse_engine(engine: str) -> tuple[str, str]:
    """``torch`` | ``onnxruntime`` | ``onnxruntime:fp32`` | ``onnxruntime:int8`` ->
    (engine, onnx model kind)."""
    name, _, kind = engine.partition(":")
    kind = kind or "auto"
    if name not in ENGINES or kind not in ONNX_MODELS or (name == "torch" and kind != "auto"):
        raise InputError(f"engine must be torch or onnxruntime[:fp32|:int8], got {engine!r}")
    return name, kind


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options: ``threads`` intra-op threads (None: `_threads`), one
    inter-op thread (the models are chains), full graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or _threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def load_onnx(
    path: str | Path, *, kind: str = "auto", device: str = "cpu", threads: int | None = None
) -> OnnxTrained:
    """Load an export (a run directory with ``onnx/``, or the export directory itself).

    Parameters
    ----------
    kind
        ``auto`` (int8 when the export has it, else fp32), ``fp32`` or ``int8``.
    device
        ``cpu`` or ``auto``: the onnxruntime package we install runs on the CPU; for a
        GPU use the torch engine.
    threads
        Intra-op threads (None: ``OMP_NUM_THREADS``, else the CPUs available).
    """
    import onnxruntime as ort

    if device not in ("cpu", "auto"):
        raise InputError(
            f"the onnxruntime engine runs on the CPU; for --device {device} use --engine torch"
        )
    info, meta = read_export(path)
    files = meta.get("files") or {}
    if kind == "auto":
        kind = "int8" if "int8" in files else "fp32"
    if kind not in files:
        raise InputError(
            f"the export has no {kind} model (it has: {', '.join(sorted(files)) or 'none'}); "
            + ("export with --int8 dynamic|static" if kind == "int8" else "export again"),
            path=info.path / ONNX_JSON,
        )
    entry = files[kind]
    file = info.path / str(entry.get("file", ""))
    if not file.is_file():
        raise InputError("ONNX model file not found", path=file)
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise InputError(
            f"does not match the sha256 in {ONNX_JSON} (corrupted or replaced)", path=file
        )
    try:
        session = ort.InferenceSession(
            data, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own types for a model it refuses
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"ONNX Runtime cannot load it: {first}", path=file) from None
    return OnnxTrained(info=info, session=session, kind=kind, file=file)
