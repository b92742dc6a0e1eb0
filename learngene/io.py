"""Learngene files: ``X.safetensors`` (tensors) + ``X.json`` (metadata), never pickle.

The JSON says what the tensors are: the method, the architecture (`vit.ARCH_KEYS`) and
the method's own sizes. Loading checks the two against each other: every tensor the
method needs is there with the shape the metadata implies, and nothing else is, so a
wrong or truncated file fails at load with one line instead of deep inside a forward.
Tensors are floating point, but for a BatchNorm stem's ``num_batches_tracked`` counters
(int64 scalars, stored with the running statistics so a descendant's stem state is the
source's exactly).
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learngene import inherit, ldr, lets, mmlg, pool, tleg
from learngene.gene import (
    FORMAT,
    FORMAT_VERSION,
    METHOD_KEYS,
    METHODS,
    Learngene,
    LearngeneError,
)
from learngene.vit import ARCH_KEYS, BATCH_COUNT, OPTIONAL_ARCH_KEYS, num_parameters


def save_learngene(
    path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write ``X.safetensors`` and ``X.json`` atomically; returns the ``.safetensors`` path.

    ``path`` may end in ``.safetensors``, ``.json`` or neither (``runs/lg`` writes
    ``runs/lg.safetensors`` and ``runs/lg.json``). The pair is checked with `validate`
    first; ``format``, ``format_version`` and ``num_parameters`` are filled in.

    Examples
    --------
    >>> from learngene import TLEGAuxNet
    >>> aux = TLEGAuxNet(img_size=32, patch_size=8, in_chans=2, num_classes=3,
    ...                  embed_dim=32, depth=4, num_heads=2, seed=0)
    >>> gene = aux.learngene()
    >>> save_learngene("out/tleg", gene.tensors, gene.meta)
    PosixPath('out/tleg.safetensors')
    """
    base = _base(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {**dict(meta), "format": FORMAT, "format_version": FORMAT_VERSION}
    meta["num_parameters"] = num_parameters(tensors)
    validate(meta, tensors, where=str(base))
    base.parent.mkdir(parents=True, exist_ok=True)
    st_path, js_path = (
        base.with_name(base.name + ".safetensors"),
        base.with_name(base.name + ".json"),
    )
    st_tmp, js_tmp = _tmp(st_path), _tmp(js_path)
    try:
        try:
            save_file(tensors, str(st_tmp), metadata={"format": FORMAT, "method": meta["method"]})
        except SafetensorError as err:  # the system's refusal, as the OSError it is
            raise OSError(
                errno.EIO, f"cannot write safetensors file ({err})", str(st_path)
            ) from err
        js_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        # the JSON goes last: a reader that finds it finds tensors written in full
        os.replace(st_tmp, st_path)
        os.replace(js_tmp, js_path)
    finally:
        for tmp in (st_tmp, js_tmp):
            tmp.unlink(missing_ok=True)
    return st_path


def load_learngene(path: str | Path) -> Learngene:
    """Read and check a learngene written by `save_learngene`.

    ``path`` may name either file or their common stem. Raises `LearngeneError` (one line,
    naming the file) when a file is missing or unreadable, the metadata lacks a key, or a
    tensor is missing, extra or of the wrong shape.
    """
    base = _base(path)
    st_path, js_path = (
        base.with_name(base.name + ".safetensors"),
        base.with_name(base.name + ".json"),
    )
    for p in (js_path, st_path):
        if not p.is_file():
            raise LearngeneError(f"{p}: learngene file not found")
    try:
        meta = json.loads(js_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LearngeneError(f"{js_path}: not a learngene metadata file ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LearngeneError(f"{js_path}: not a learngene metadata file (format != {FORMAT!r})")
    try:
        tensors = load_file(str(st_path))
    except (SafetensorError, OSError) as err:
        raise LearngeneError(f"{st_path}: unreadable safetensors file ({err})") from None
    validate(meta, tensors, where=str(st_path))
    return Learngene(meta=meta, tensors=tensors)


def validate(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, where: str) -> None:
    """Check metadata keys and that ``tensors`` are exactly what the metadata implies."""
    method = meta.get("method")
    if method not in METHODS:
        raise LearngeneError(f"{where}: unknown learngene method {method!r} (one of {METHODS})")
    for key in (*ARCH_KEYS, *METHOD_KEYS[method]):
        if key not in meta and key not in OPTIONAL_ARCH_KEYS:
            raise LearngeneError(f"{where}: metadata lacks {key!r}")
    try:
        expected = expected_shapes(meta)
    except (TypeError, ValueError) as err:
        raise LearngeneError(f"{where}: inconsistent metadata: {err}") from None
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise LearngeneError(f"{where}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    if extra:
        raise LearngeneError(f"{where}: unexpected tensor {extra[0]!r} ({len(extra)} extra)")
    for key, shape in expected.items():
        got = tuple(tensors[key].shape)
        if got != shape:
            raise LearngeneError(
                f"{where}: tensor {key!r} has shape {list(got)}, metadata implies {list(shape)}"
            )
        _check_dtype(tensors[key], key, where)
    count = meta.get("num_parameters")
    if count is not None and count != sum(math.prod(s) for s in expected.values()):
        raise LearngeneError(f"{where}: num_parameters {count} does not match the tensors")


def expected_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape that a learngene with this metadata consists of."""
    shapes = {
        "tleg": tleg.learngene_shapes,
        "lets": lets.learngene_shapes,
        "ldr": ldr.learngene_shapes,
        "pool": pool.learngene_shapes,
        "inherit": inherit.learngene_shapes,
        "weight_select": inherit.weight_select_shapes,
        "mmlg": mmlg.learngene_shapes,
    }[meta["method"]]
    return shapes(meta)


def _check_dtype(tensor: torch.Tensor, key: str, where: str) -> None:
    """Floating point, except a BatchNorm stem's batch counter: an int64 scalar."""
    if key.rsplit(".", 1)[-1] == BATCH_COUNT:
        if tensor.dtype != torch.int64:
            raise LearngeneError(f"{where}: tensor {key!r} is not an int64 counter")
    elif not tensor.is_floating_point():
        raise LearngeneError(f"{where}: tensor {key!r} is not floating point")


def _base(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix("")
    return path


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")
