"""A learngene in memory: the `Learngene` record, its metadata keys and `LearngeneError`.

The method modules (`tleg`, `lets`, `inherit`) build and read `Learngene` s; `learngene.io`
writes, reads and checks the files against the methods' shapes. This module sits below
both, so neither needs to import the other inside a function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from learngene.vit import ARCH_KEYS, num_parameters

FORMAT = "learngene"
FORMAT_VERSION = 1
METHODS = ("tleg", "lets", "inherit", "weight_select")
#: metadata keys each method needs beyond `vit.ARCH_KEYS`
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "tleg": (),
    "lets": ("learngene_width", "learngene_depth"),
    "inherit": ("learngene_depth", "source_blocks"),
    "weight_select": (),
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
    """The `create_vit` keyword arguments stored in learngene metadata."""
    arch = {k: meta[k] for k in ARCH_KEYS}
    for key in ("patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads"):
        value = arch[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    if arch["embed_dim"] < 1 or arch["num_heads"] < 1 or arch["embed_dim"] % arch["num_heads"]:
        raise ValueError(f"embed_dim {arch['embed_dim']} / num_heads {arch['num_heads']}")
    if not isinstance(arch["mlp_ratio"], (int, float)) or arch["mlp_ratio"] <= 0:
        raise ValueError(f"mlp_ratio must be a positive number, got {arch['mlp_ratio']!r}")
    if not isinstance(arch["qkv_bias"], bool):
        raise ValueError(f"qkv_bias must be true or false, got {arch['qkv_bias']!r}")
    size = arch["img_size"]
    if isinstance(size, list):
        size = tuple(size)
    if not (isinstance(size, int) or (isinstance(size, tuple) and len(size) == 2)):
        raise ValueError(f"img_size must be an integer or [height, width], got {size!r}")
    arch["img_size"] = size
    return arch
