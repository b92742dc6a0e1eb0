"""A learngene in memory: the `Learngene` record, its metadata keys and `LearngeneError`.

The method modules (`tleg`, `lets`, `ldr`, `pool`, `inherit`) build and read
`Learngene` s; `learngene.io` writes, reads and checks the files against the methods'
shapes. This module sits below both, so neither needs to import the other inside a
function. `AuxNet` holds what the trained Aux-Nets (TLEG, LeTs, LDR) share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from learngene.vit import (
    ARCH_KEYS,
    OPTIONAL_ARCH_KEYS,
    check_stem_norm,
    num_parameters,
    with_arch_defaults,
)

FORMAT = "learngene"
FORMAT_VERSION = 1
METHODS = ("tleg", "lets", "ldr", "pool", "inherit", "weight_select", "mmlg")
#: metadata keys each method needs beyond `vit.ARCH_KEYS`
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "tleg": (),
    "lets": ("learngene_width", "learngene_depth", "coeff_share"),
    "ldr": ("components", "basis"),
    "pool": ("pool_widths", "pool_depth"),
    "inherit": ("learngene_depth", "source_blocks"),
    "weight_select": (),
    "mmlg": ("views", "view_channels"),
}


class LearngeneError(ValueError):
    """A learngene file or learngene request that cannot be used; the message is one line."""


@dataclass
class Learngene:
    """A learngene in memory: JSON-able ``meta`` and named ``tensors``.

    ``meta["method"]`` picks the meaning of the tensors (see `expected_shapes`).
    """

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(repr=False)

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def num_parameters(self) -> int:
        return num_parameters(self.tensors)


def arch_from_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The `create_vit` keyword arguments stored in learngene metadata (`OPTIONAL_ARCH_KEYS`
    that it lacks read as their defaults)."""
    arch = with_arch_defaults(meta)
    for key in ("patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads",
                "stem_width"):  # fmt: skip
        value = arch[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    if arch["embed_dim"] < 1 or arch["num_heads"] < 1 or arch["embed_dim"] % arch["num_heads"]:
        raise ValueError(f"embed_dim {arch['embed_dim']} / num_heads {arch['num_heads']}")
    if not isinstance(arch["mlp_ratio"], (int, float)) or arch["mlp_ratio"] <= 0:
        raise ValueError(f"mlp_ratio must be a positive number, got {arch['mlp_ratio']!r}")
    arch["distill_token"] = bool(arch["distill_token"])
    check_stem_norm(arch["stem_norm"], arch["stem_width"])
    if not isinstance(arch["qkv_bias"], bool):
        raise ValueError(f"qkv_bias must be true or false, got {arch['qkv_bias']!r}")
    size = arch["img_size"]
    if isinstance(size, list):
        size = tuple(size)
    if not (isinstance(size, int) or (isinstance(size, tuple) and len(size) == 2)):
        raise ValueError(f"img_size must be an integer or [height, width], got {size!r}")
    arch["img_size"] = size
    return arch


class AuxNet(nn.Module):
    """What every Aux-Net shares: its metadata, learngene copies, loading a saved one.

    Subclasses set ``method``, call `_set_arch` with their constructor's arguments and
    implement ``learngene_tensors`` (live parameters named as the method's file, and the
    live running statistics of a BatchNorm stem).
    """

    method = ""

    def _set_arch(self, args: Mapping[str, Any]) -> None:
        """Record the `vit.ARCH_KEYS` and the method's `METHOD_KEYS` from ``args``."""
        if args.get("kw", {}).get("drop_path_rate"):
            raise ValueError(f"the {self.method} Aux-Net does not support drop_path_rate")
        # optional keys an Aux-Net does not name in its signature (``distill_token``) come
        # through ``**kw``; popped, so that ``kw`` can still go to `create_vit` alongside
        kw = args.get("kw", {})
        self.arch = {
            k: args[k] if k in args else kw.pop(k, OPTIONAL_ARCH_KEYS[k]) for k in ARCH_KEYS
        }
        self.arch["distill_token"] = bool(self.arch["distill_token"])
        self.method_args = {k: args[k] for k in METHOD_KEYS[self.method]}

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def learngene_meta(self) -> dict[str, Any]:
        """Metadata for `save_learngene` (the application adds teacher, task, ...)."""
        meta = {"method": self.method, **self.arch, **self.method_args}
        if isinstance(meta["img_size"], tuple):
            meta["img_size"] = list(meta["img_size"])
        return meta

    def learngene(self) -> Learngene:
        """A detached copy of the current learngene with its metadata."""
        tensors = {k: v.detach().clone() for k, v in self.learngene_tensors().items()}
        return Learngene(meta=self.learngene_meta(), tensors=tensors)

    @classmethod
    def from_learngene(cls, learngene: Learngene, **kw):
        """An Aux-Net (of the stored size) holding a saved learngene's tensors (buffers
        included)."""
        meta = learngene.meta
        aux = cls(**arch_from_meta(meta), **{k: meta[k] for k in METHOD_KEYS[cls.method]}, **kw)
        with torch.no_grad():
            for key, param in aux.learngene_tensors().items():
                param.copy_(learngene.tensors[key])
        return aux
