"""Run directories: safetensors weights + JSON metadata, written atomically, read safely.

Layout of a run directory (``attpc-classify train --out RUN``)::

    RUN/config.yaml          resolved TrainConfig + git SHA
    RUN/model.safetensors    best weights (by validation macro-F1)
    RUN/model.json           what they are: model spec, image config, class/output names,
                             task, input, metrics, epoch, git SHA, sha256 of the weights,
                             and ``meta_sha256`` of its own content
    RUN/last.safetensors     latest model + optimizer tensors, for --resume; its header
                             holds last.json's state, so one rename commits a save
    RUN/last.json            epoch, step, counters, optimizer groups, history, sha256
    RUN/metrics.jsonl        one line per epoch
    RUN/plots/learning_curves.png

Nothing is ever unpickled: weights are read only from safetensors, and a pickle or
``torch.save`` file, a truncated file or one whose bytes differ from the sha256 recorded
in its JSON is refused with a one-line `InputError`. ``model.json`` itself is sealed
with ``meta_sha256`` (sha256 of its canonical JSON without that key): an edited view list,
image size or model spec would otherwise give silently wrong predictions, so it is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attpc_classify.data import as_float
from attpc_classify.device import autocast, autocast_dtype, resolve_device
from attpc_classify.models import create_model
from data_prep.atomic import atomic_path
from data_prep.errors import InputError
from data_prep.images import ImageConfig

FORMAT = "attpc-classify-run"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- files


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + `os.replace`)."""
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not valid JSON ({type(err).__name__})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("JSON metadata must be an object", path=path)
    return data


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> str:
    """Write a safetensors file (``metadata``: its header's string map) atomically; return
    its sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        # contiguous CPU copies: safetensors refuses shared or strided storage
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as err:
            # the system's refusal (disk full, a directory gone) in safetensors' own type:
            # as an OSError the CLI prints it as one line naming the file, not a traceback
            raise OSError(errno.EIO, f"cannot write safetensors file ({err})", str(path)) from err
        digest = file_sha256(tmp)
    return digest


def _refuse_non_safetensors(path: Path, head: bytes) -> None:
    # safetensors: 8-byte little-endian header length, then a JSON header "{...". Checked
    # first: a header length whose low byte is 0x80 (e.g. 0x1280) starts like a pickle.
    # Whatever passes here is parsed by safetensors only, which never unpickles.
    if len(head) >= 9 and head[8:9] == b"{":
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise InputError(
            "is a pickle / torch.save file; only safetensors checkpoints are loaded "
            "(unpickling can run arbitrary code)",
            path=path,
        )
    raise InputError("not a safetensors file", path=path)


def read_tensors(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file, checking it against ``sha256`` when given.

    The file is read into memory once, so the bytes checked are the bytes parsed and the
    tensors own their memory (no mapping of a file a later save replaces).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("checkpoint file not found", path=path) from None
    except OSError as err:
        raise InputError(f"cannot read checkpoint: {err.strerror}", path=path) from None
    _refuse_non_safetensors(path, data[:9])
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(
            "checkpoint does not match the sha256 in its JSON (corrupted or partly written)",
            path=path,
        )
    try:
        return load(data)
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"corrupted safetensors file: {first}", path=path) from None


# --------------------------------------------------------------------------- best model


@dataclass
class RunInfo:
    """What ``RUN/model.json`` says about the weights in ``RUN/model.safetensors``.

    ``model`` is ``{"name": family, "args": constructor arguments, "config": ModelConfig}``
    (see `attpc_classify.models.create_model`).
    """

    model: dict
    image_config: ImageConfig
    class_names: tuple[str, ...]
    output_names: tuple[str, ...]
    task: str  # "binary" | "multiclass"
    input: str  # "images" | "voxels" | "features"
    metrics: dict
    epoch: int
    git_sha: str
    path: Path
    decision: dict | None = None  # None: argmax; else a proton threshold (decision module)

    @property
    def proton_threshold(self) -> float | None:
        """The run's proton threshold, or None for argmax."""
        return None if not self.decision else float(self.decision["proton_threshold"])


def meta_digest(meta: dict[str, Any]) -> str:
    """sha256 of a ``model.json`` dict's canonical JSON, without its ``meta_sha256`` key."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    text = json.dumps(body, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_model_json(run_dir: str | Path, meta: dict[str, Any]) -> None:
    """Write ``RUN/model.json`` sealed with its ``meta_sha256``, atomically."""
    write_json(Path(run_dir) / "model.json", {**meta, "meta_sha256": meta_digest(meta)})


def save_model(run_dir: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` then ``model.json`` (``meta`` + format + sha256)."""
    run_dir = Path(run_dir)
    json.dumps(meta, allow_nan=False)  # unwritable metadata fails before the weights go
    digest = save_tensors(run_dir / "model.safetensors", model.state_dict())
    write_model_json(
        run_dir,
        {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
         "weights": "model.safetensors", "sha256": digest},
    )  # fmt: skip


def set_decision(run_dir: str | Path, decision: dict[str, Any] | None) -> None:
    """Record the decision rule (a proton threshold; None: argmax) in ``RUN/model.json``,
    atomically."""
    _, meta = read_info(run_dir)
    write_model_json(run_dir, meta | {"decision": decision})


def _run_dir(path: str | Path) -> Path:
    """Accept a run directory or a file in it (model.json / model.safetensors)."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.name in ("model.json", "model.safetensors"):
        return path.parent
    if path.is_file():
        with open(path, "rb") as f:
            _refuse_non_safetensors(path, f.read(9))
        raise InputError("give the run directory, not a weights file", path=path)
    raise InputError("run directory not found", path=path)


def read_info(run_dir: str | Path) -> tuple[RunInfo, dict[str, Any]]:
    """`RunInfo` and the raw JSON of ``RUN/model.json`` (validated)."""
    run_dir = _run_dir(run_dir)
    meta = read_json(run_dir / "model.json")
    if meta.get("format") != FORMAT:
        raise InputError(f"not an {FORMAT} model.json", path=run_dir / "model.json")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"model.json format_version {meta.get('format_version')} is not {FORMAT_VERSION}",
            path=run_dir / "model.json",
        )
    # Runs written before the seal have no meta_sha256 and are read as they are.
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
        raise InputError(
            "edited after training (its content does not match its meta_sha256): "
            "views, size or model spec no longer describe the weights; use the run as "
            "written or train again",
            path=run_dir / "model.json",
        )
    try:
        info = RunInfo(
            model=dict(meta["model"]),
            image_config=ImageConfig.from_dict(meta["image_config"]),
            class_names=tuple(meta["class_names"]),
            output_names=tuple(meta["output_names"]),
            task=str(meta["task"]),
            input=str(meta["input"]),
            metrics=dict(meta.get("metrics") or {}),
            epoch=int(meta["epoch"]),
            git_sha=str(meta.get("git_sha", "unknown")),
            path=run_dir,
            decision=meta.get("decision"),
        )
        if info.decision is not None:
            float(info.decision["proton_threshold"])
            if "proton" not in info.output_names:
                raise ValueError("a proton threshold needs a 'proton' output")
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"model.json lacks or mangles {err}", path=run_dir / "model.json"
        ) from None
    return info, meta


def read_run(run_dir: str | Path) -> tuple[RunInfo, dict[str, torch.Tensor]]:
    """`RunInfo` and the verified best weights of a run (no model built)."""
    info, meta = read_info(run_dir)
    state = read_tensors(info.path / "model.safetensors", sha256=meta.get("sha256"))
    return info, state


def check_model_input(
    info: RunInfo,
    images: np.ndarray | None,
    voxels: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """The array a run's model reads (images, voxels or features, as `info.input` says),
    checked for shape and dtype against its image config; a one-line `InputError` otherwise."""
    what = info.input
    cfg = info.image_config
    if what == "voxels":
        x, want = voxels, (cfg.voxel_grid,) * 3
    elif what == "features":
        x, want = features, (int(info.model["args"]["n_features"]),)
    else:
        x, want = images, (cfg.n_channels, cfg.size, cfg.size)
    if x is None:
        raise InputError(f"this model reads {what}; none were given")
    x = np.asarray(x)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise InputError(f"{what} of shape {x.shape}; this model needs (N, {want})")
    if x.dtype not in (np.uint8, np.float16, np.float32):
        raise InputError(f"{what} must be uint8, float16 or float32, got {x.dtype}")
    return x


class Trained:
    """A trained model ready to predict: `load_run` returns one.

    Attributes
    ----------
    info
        What the run says about itself (`RunInfo`).
    model
        The `torch.nn.Module`, in eval mode, on ``device``.
    device
        Where it runs.
    """

    def __init__(self, info: RunInfo, model: nn.Module, device: torch.device):
        self.info = info
        self.model = model.eval()
        self.device = device

    @torch.no_grad()
    def predict_proba(
        self,
        images: np.ndarray | None,
        voxels: np.ndarray | None = None,
        *,
        features: np.ndarray | None = None,
        precision: str = "auto",
        batch_size: int = 256,
    ) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 (rows sum to 1), K = ``info.output_names``.

        Parameters
        ----------
        images
            ``(N, C, S, S)`` as stored in image files (uint8 = value x 255, or float16).
        voxels
            ``(N, G, G, G)``, for voxel models (``info.input == "voxels"``).
        features
            ``(N, F)`` float32, for feature models (``info.input == "features"``).
        precision
            ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (autocast; see `device.autocast_dtype`).
        batch_size
            Events per forward pass.
        """
        x = check_model_input(self.info, images, voxels, features)
        dtype = autocast_dtype(precision, self.device)
        out = np.empty((len(x), len(self.info.output_names)), dtype=np.float32)
        for start in range(0, len(x), batch_size):
            xb = as_float(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])))
            with autocast(self.device, dtype):
                logits = self.model(xb.to(self.device))
            out[start : start + len(xb)] = logits.float().softmax(dim=-1).cpu().numpy()
        return out


def load_run(run_dir: str | Path, *, device: str = "auto") -> Trained:
    """Load the best model of a run directory for prediction.

    Parameters
    ----------
    run_dir
        A directory written by ``attpc-classify train`` (or its ``model.json``).
    device
        ``auto`` (CUDA if present) | ``cpu`` | ``cuda`` | ``cuda:N``.

    Raises
    ------
    InputError
        Missing or malformed metadata, a pickle file, a corrupted or mismatched checkpoint.

    Examples
    --------
    >>> trained = load_run("runs/cnn_multiclass")  # doctest: +SKIP
    >>> trained.predict_proba(images).shape  # doctest: +SKIP
    (256, 3)
    """
    info, state = read_run(run_dir)
    spec = info.model
    if "name" not in spec or not isinstance(spec.get("args"), dict):
        raise InputError("model.json has no buildable model spec", path=info.path / "model.json")
    try:
        model = create_model(spec["name"], spec["args"])
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise InputError(
            f"model.json's model spec cannot be built ({type(err).__name__}: {err})",
            path=info.path / "model.json",
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise InputError(f"weights do not fit the model spec: {first}", path=info.path) from None
    dev = resolve_device(device)
    return Trained(info, model.to(dev), dev)


# --------------------------------------------------------------------------- resume state


def save_last(
    run_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Write ``last.safetensors`` (model + optimizer tensors) and ``last.json``.

    Optimizer tensors are flattened to ``optim.{param}.{name}``; its param groups (plain
    numbers) go to the JSON. ``state`` holds counters and history (JSON values).
    """
    run_dir = Path(run_dir)
    opt = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    scalars: dict[str, Any] = {}
    for pid, entries in opt["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    meta = {"format": FORMAT + "-last", "format_version": FORMAT_VERSION, **state,
            "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}  # fmt: skip
    # One rename commits: the tensors file carries the state in its header, so a kill
    # between its rename and last.json's leaves the newer state whole (last.json is the
    # readable copy, with the sha256 that `load_last` checks when it is current).
    digest = save_tensors(run_dir / "last.safetensors", tensors, {"last_json": json.dumps(meta)})
    write_json(run_dir / "last.json", meta | {"sha256": digest})


def _header_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` string map of a safetensors header ({} when unreadable)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 100 << 20 else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    found = header.get("__metadata__") if isinstance(header, dict) else None
    return found if isinstance(found, dict) else {}


def load_last(
    run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer from ``last.*``; return the saved ``state`` dict."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / "last.json")
    if meta.get("format") != FORMAT + "-last":
        raise InputError("not a resume file of attpc-classify", path=run_dir / "last.json")
    sha256 = meta.get("sha256")
    embedded = _header_metadata(run_dir / "last.safetensors").get("last_json")
    if embedded is not None:
        try:
            inner = json.loads(embedded)
        except json.JSONDecodeError:
            raise InputError("corrupted resume state", path=run_dir / "last.safetensors") from None
        if inner != {k: v for k, v in meta.items() if k != "sha256"}:
            # killed between the two renames of `save_last`: the newer state is the one
            # inside the tensors file, and last.json's sha256 belongs to the older file
            meta, sha256 = inner, None
    tensors = read_tensors(run_dir / "last.safetensors", sha256=sha256)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError:
        raise InputError(
            "last.safetensors does not fit the configured model (config changed?)", path=run_dir
        ) from None
    opt_state: dict[str, Any] = {"state": {}, "param_groups": meta["optimizer"]["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    for key, value in meta["optimizer"]["scalars"].items():
        pid, name = key.split(".", 1)
        opt_state["state"].setdefault(int(pid), {})[name] = value
    for group in opt_state["param_groups"]:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict(opt_state)
    return meta
