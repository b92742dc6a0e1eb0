"""``export RUN --onnx``: a trained run as ONNX models, with what is needed to use them.

`export_onnx` writes the run's model with `torch.onnx.export` (the torch.export-based
exporter, opset `OPSET`, a dynamic batch axis) and, on request, an int8 copy made with
``onnxruntime.quantization``:

* ``dynamic``: int8 weights, activations quantised per batch at run time; no data needed.
* ``static``: int8 weights and activations (QDQ, per-channel weights), the activation
  ranges calibrated on a seeded sample of the run's training/validation images (the image
  file in ``RUN/config.yaml``, or ``calibration=``).

Beside them ``onnx.json`` (`attpc_classify.ortengine`) records the preprocessing (image
config), the decision rule, the run's weights sha256 and each file's sha256, and the
export's own checks on that sample: the largest |p_onnx - p_torch| of each model and how
many labels the int8 model changes. ``onnx.json`` is written last: its presence commits
the export.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from attpc_classify.checkpoint import Trained, file_sha256, load_run, read_info, write_json
from attpc_classify.config import read_yaml
from attpc_classify.ortengine import (
    EXPORT_DIR,
    FP32_TOLERANCE,
    MODEL_FILES,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    ONNX_JSON,
    load_onnx,
)
from attpc_classify.predict import check_image_file, decide_events
from data_prep.atomic import atomic_path, check_writable
from data_prep.errors import InputError

log = logging.getLogger(__name__)

#: ONNX opset of the exported graph (onnxruntime >= 1.14 runs it)
OPSET = 18
INT8_MODES = ("dynamic", "static")


@dataclass
class ExportSummary:
    """What `export_onnx` wrote and measured."""

    out: Path
    files: dict[str, str]
    checks: dict[str, Any]


def calibration_file(run_dir: Path) -> Path:
    """The run's training image file, from ``RUN/config.yaml``."""
    cfg = read_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    path = (cfg.get("data") or {}).get("path")
    if not path:
        raise InputError(
            "the run records no training image file; give one with --calibration",
            path=run_dir / "config.yaml",
        )
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "the run's training image file is gone; give one with --calibration", path=path
        )
    return path


def sample_inputs(trained: Trained, path: Path, n: int, seed: int) -> tuple[np.ndarray, dict]:
    """``n`` images (or voxels) drawn at random (``seed``) from an image file, in file
    order, with where they came from."""
    check_image_file(path, trained)
    key = "voxels" if trained.info.input == "voxels" else "images"
    with h5py.File(path, "r") as f:
        total = f[key].shape[0]
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(total, size=min(n, total), replace=False))
        x = f[key][idx]
    if len(x) == 0:
        raise InputError("no events to calibrate on", path=path)
    return x, {"file": str(path), "n_events": len(x), "seed": seed, "of": int(total)}


def _float_inputs(x: np.ndarray) -> np.ndarray:
    """Stored values -> the graph's float32 input (`data.as_float`)."""
    return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype("f4")


def _torch_export(model: torch.nn.Module, example: np.ndarray, path: Path) -> None:
    """The model as ONNX at ``path``: input ``input`` (batch dynamic), output ``logits``."""
    batch = torch.export.Dim("batch", min=1)
    x = torch.from_numpy(_float_inputs(example[:2]))
    # the exporter prints progress lines and library deprecation warnings: not ours to show
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (x,),
            str(path),
            dynamo=True,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )


class _Calibration:
    """`onnxruntime.quantization.CalibrationDataReader`: the sample in batches of 32."""

    def __init__(self, x: np.ndarray, batch: int = 32):
        self.batches = iter(
            {"input": _float_inputs(x[i : i + batch])} for i in range(0, len(x), batch)
        )

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def _quantize(fp32: Path, out: Path, mode: str, sample: np.ndarray | None) -> None:
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        # shape inference + graph folding first, as onnxruntime's quantisation docs advise
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=False)
        if mode == "dynamic":
            # matrix products only: measured on the small CNN, dynamic ConvInteger changed
            # 74 of 200 test labels (activations quantised per tensor at run time)
            quantize_dynamic(
                str(prepped), str(out), weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
            )  # fmt: skip
            return
        quantize_static(
            str(prepped),
            str(out),
            _Calibration(sample),  # duck-typed CalibrationDataReader (get_next)
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: on x86 CPUs without VNNI (AVX2 only) onnxruntime's uint8 x
            # int8 kernels can saturate; the test CNN's p then moved by 0.51 on its own
            # calibration sample (0.09 with this), and an export is read on any CPU
            reduce_range=True,
        )


def _compare(
    trained: Trained, path: Path, kind: str, sample: np.ndarray, p_torch: np.ndarray
) -> dict:
    """The export's check of one ONNX model against torch fp32 on the sample."""
    p = load_onnx(path.parent, kind=kind, threads=1).predict_proba(sample)
    names = trained.info.output_names
    threshold = trained.info.proton_threshold
    same = decide_events(p, names, threshold) == decide_events(p_torch, names, threshold)
    return {
        "n_events": len(sample),
        "max_abs_diff_p": float(np.abs(p - p_torch).max()),
        "labels_changed": int((~same).sum()),
    }


def export_onnx(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    int8: str | None = None,
    calibration: str | Path | None = None,
    calibration_events: int = 512,
    seed: int = 0,
) -> ExportSummary:
    """Export a run as ONNX (fp32, and int8 when ``int8`` is ``dynamic`` or ``static``).

    Parameters
    ----------
    run_dir
        A trained run.
    out
        The export directory (default ``RUN/onnx``); ``classify --engine onnxruntime``
        reads it there, or anywhere when given the export directory itself.
    calibration
        Image file for the static int8 ranges and the export checks (default: the run's
        training file; a sample of training *and* validation events, as both are in it).
    calibration_events, seed
        Size and seed of that sample.
    """
    if int8 is not None and int8 not in INT8_MODES:
        raise InputError(f"--int8 must be dynamic or static, got {int8!r}")
    if calibration_events < 1:
        raise InputError(f"calibration events must be >= 1, got {calibration_events}")
    trained = load_run(run_dir, device="cpu")
    info, meta = read_info(run_dir)
    if info.input == "features":
        # the tree walk is data-dependent indexing; its torch path is already fast
        raise InputError(
            f"model {info.model['name']} reads track features: ONNX export covers the "
            "image and voxel models; classify it with --engine torch",
            path=run_dir,
        )
    out = Path(out) if out is not None else info.path / EXPORT_DIR
    check_writable(out, directory=True)
    try:
        path = Path(calibration) if calibration is not None else calibration_file(info.path)
        sample, source = sample_inputs(trained, path, calibration_events, seed)
    except InputError:
        if int8 == "static" or calibration is not None:
            raise
        sample, source = None, None  # fp32 / dynamic need no data; the checks are skipped
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_JSON).unlink(missing_ok=True)  # an interrupted export leaves no export
    files: dict[str, dict] = {}
    with atomic_path(out / MODEL_FILES["fp32"]) as tmp:
        example = sample if sample is not None else _zeros(info)
        _torch_export(trained.model, example, tmp)
    files["fp32"] = {"file": MODEL_FILES["fp32"]}
    if int8 is not None:
        with atomic_path(out / MODEL_FILES["int8"]) as tmp:
            _quantize(out / MODEL_FILES["fp32"], tmp, int8, sample)
        files["int8"] = {"file": MODEL_FILES["int8"], "mode": int8}
        if int8 == "static":
            files["int8"]["calibration"] = source
    else:
        (out / MODEL_FILES["int8"]).unlink(missing_ok=True)  # not left from an older export
    for entry in files.values():
        entry["sha256"] = file_sha256(out / entry["file"])
    import onnx
    import onnxruntime

    record = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "run_dir": str(info.path.resolve()),
        "weights_sha256": meta.get("sha256"),
        **{k: meta[k] for k in ("model", "image_config", "class_names", "output_names")},
        **{k: meta.get(k) for k in ("task", "input", "epoch", "git_sha", "decision")},
        "graph": {
            "input": "input: float32 (batch, *shape) = stored uint8 values / 255",
            "input_shape": [None, *example.shape[1:]],
            "output": "logits: float32 (batch, len(output_names)); p = softmax(logits)",
            "opset": OPSET,
        },
        "files": files,
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "checks": None,
    }
    write_json(out / ONNX_JSON, record)
    checks: dict[str, Any] = {}
    if sample is not None:
        p_torch = trained.predict_proba(sample, precision="fp32")
        checks = {k: _compare(trained, out / ONNX_JSON, k, sample, p_torch) for k in files}
        checks["sample"] = source
        bad = checks["fp32"]["max_abs_diff_p"]
        if bad > FP32_TOLERANCE:
            (out / ONNX_JSON).unlink()
            raise InputError(
                f"the fp32 ONNX model differs from torch by {bad:.2g} in p (> "
                f"{FP32_TOLERANCE:g}): an export problem; nothing exported",
                path=out / MODEL_FILES["fp32"],
            )
        write_json(out / ONNX_JSON, record | {"checks": checks})
    log.debug("export checks: %s", json.dumps(checks))
    return ExportSummary(out=out, files={k: v["file"] for k, v in files.items()}, checks=checks)


def _zeros(info) -> np.ndarray:
    """A blank example input of the model's shape (the exporter only needs its shape)."""
    cfg = info.image_config
    shape = (
        (cfg.voxel_grid,) * 3 if info.input == "voxels" else (cfg.n_channels, cfg.size, cfg.size)
    )
    return np.zeros((2, *shape), dtype=np.uint8)
