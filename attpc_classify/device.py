"""Where a model runs and in which precision: `resolve_device`, `autocast_dtype`, `autocast`;
`describe_cpu` names the processor beside every measured time.

A leaf module (torch only): training (`attpc_classify.engine`) and prediction
(`attpc_classify.checkpoint.Trained`) both take their device and autocast settings here.
"""

from __future__ import annotations

import contextlib
from functools import cache

import torch

from data_prep.errors import InputError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from None


#: flags of native bf16 arithmetic, where bf16 autocast pays
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 (AVX512-BF16 or AMX), where bf16 autocast pays."""
    return bool(BF16_FLAGS & _cpu_flags(_cpuinfo()))


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_flags(cpuinfo: str) -> set[str]:
    """The first ``flags`` line of /proc/cpuinfo text, as a set (empty if none)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe_cpu(cpuinfo: str | None = None) -> str:
    """``"2 cores, AMD EPYC, AVX-512 (BF16)"``: the processor behind a measured time.

    The same 2-core machine has been two kinds of host, one with AVX-512 and BF16 and one
    with AVX2 only, and every time differed ~2-3x between them (docs/demo.md); a time
    without its host cannot be compared with another.
    """
    import os

    text = _cpuinfo() if cpuinfo is None else cpuinfo
    names = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
    flags = _cpu_flags(text)
    if "avx512f" in flags:
        vector = "AVX-512" + (" (BF16)" if BF16_FLAGS & flags else "")
    elif "avx2" in flags:
        vector = "AVX2, no AVX-512"
    else:
        vector = "no AVX2"
    cores = len(names) if names else os.cpu_count()
    return f"{cores} cores, {names[0] if names else 'unknown CPU'}, {vector}"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision`` on ``device``; None = plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise InputError("precision fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
