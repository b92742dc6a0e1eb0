"""The one ViT layout every learngene method maps into, and small helpers around it.

Descendants and Aux-Nets are plain timm `VisionTransformer` s with no class token, global
average pooling and timm's post-pool norm (``fc_norm``), so weights keep timm's own names
(``blocks.{i}.attn.qkv.weight``, ...). Aux-Nets run the same module with weights computed
on the fly (`skeleton` + `torch.func.functional_call`), which is why a descendant of the
Aux-Net's size computes exactly the Aux-Net's function: the forward code is timm's, once.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from learngene.compat import import_timm

if TYPE_CHECKING:  # timm is imported on first use (`learngene.compat.import_timm`)
    from timm.models.vision_transformer import VisionTransformer

#: architecture keys every learngene's metadata carries (JSON-friendly values)
ARCH_KEYS = (
    "img_size",  # pixels, int or [height, width]
    "patch_size",  # pixels
    "in_chans",
    "num_classes",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "qkv_bias",
)
#: parameters outside the blocks that every descendant copies from the learngene
SHARED_KEYS = (
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "pos_embed",
    "fc_norm.weight",
    "fc_norm.bias",
)
#: classifier parameters, copied only when the label space matches
HEAD_KEYS = ("head.weight", "head.bias")

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def create_vit(
    img_size: int | tuple[int, int],
    patch_size: int,
    in_chans: int,
    num_classes: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    *,
    seed: int | None = None,
    **kw,
) -> VisionTransformer:
    """A timm ViT in the learngene layout: no class token, average pooling, ``fc_norm``.

    Parameters
    ----------
    img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio
        As in timm's `VisionTransformer` (sizes in pixels / channels).
    seed
        Seeds timm's initialisation inside `torch.random.fork_rng`, so the caller's global
        RNG state is left untouched. ``None`` draws from the current global state.
    **kw
        Passed to `VisionTransformer` (``qkv_bias``, ``drop_path_rate``, ``drop_rate``, ...).
    """
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
    vit_class = import_timm().models.vision_transformer.VisionTransformer
    with seeded(seed):
        return vit_class(
            img_size=_img_size(img_size),
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            class_token=False,
            global_pool="avg",
            **kw,
        )


def skeleton(keep: tuple[str, ...] = (), **arch) -> VisionTransformer:
    """A `create_vit` model whose parameters are ``None`` except the names in ``keep``.

    The blocks are built on the meta device, so a skeleton costs no memory; Aux-Nets run
    it with ``torch.func.functional_call(skeleton, weights, (x,))``. Parameters named in
    ``keep`` (outside the blocks, e.g. ``"pos_embed"``) are real, freshly initialised by
    timm and trainable.
    """
    seed = arch.pop("seed", None)
    with torch.device("meta"):
        model = create_vit(**arch)
    real = dict(create_vit(**{**arch, "depth": 0}, seed=seed).named_parameters()) if keep else {}
    for name, module in model.named_modules():
        for pname in list(module._parameters):
            full = f"{name}.{pname}" if name else pname
            # a None parameter is skipped by .to(), .parameters() and state_dict(), and
            # functional_call fills it for the duration of one forward
            module._parameters[pname] = real[full] if full in keep else None
    return model


def vit_arch(model: VisionTransformer) -> dict:
    """The `ARCH_KEYS` of a timm ViT in the learngene layout (clear error otherwise)."""
    if getattr(model, "has_class_token", True) or model.global_pool != "avg":
        raise ValueError("learngene needs a timm VisionTransformer without class token, avg pool")
    if model.num_reg_tokens or isinstance(model.fc_norm, nn.Identity):
        raise ValueError("learngene needs a ViT without register tokens and with fc_norm")
    block = model.blocks[0]
    img = tuple(model.patch_embed.img_size)
    return {
        "img_size": img[0] if img[0] == img[1] else list(img),
        "patch_size": int(model.patch_embed.patch_size[0]),
        "in_chans": int(model.patch_embed.proj.in_channels),
        "num_classes": int(model.num_classes),
        "embed_dim": int(model.embed_dim),
        "depth": len(model.blocks),
        "num_heads": int(block.attn.num_heads),
        "mlp_ratio": block.mlp.fc1.out_features / model.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
    }


def vit_shapes(**arch) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of `create_vit(**arch)`, without allocating any weight."""
    with torch.device("meta"):
        model = create_vit(**arch)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def block_shapes(**arch) -> dict[str, tuple[int, ...]]:
    """Shapes of one block's parameters, keyed without the ``blocks.{i}.`` prefix."""
    shapes = vit_shapes(**{**arch, "depth": 1})
    return {k[len("blocks.0.") :]: v for k, v in shapes.items() if k.startswith("blocks.0.")}


def split_blocks(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """``{i: {param: tensor}}`` for the blocks and a dict of everything else."""
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            rest[key] = value
    return blocks, rest


def narrow(
    state: Mapping[str, torch.Tensor], width: int, *, num_heads: int
) -> dict[str, torch.Tensor]:
    """Keep the first ``width`` channels of a ViT state dict, consistently in every layer.

    The residual stream keeps its first ``width`` channels; attention keeps its first
    ``width // head_dim`` heads (head_dim fixed) in q, k and v alike, so every kept query
    still meets its own key; the MLP keeps its first ``mlp_ratio * width`` hidden units in
    fc1's rows and fc2's columns. The head keeps its rows and loses columns.
    """
    embed_dim = state["pos_embed"].shape[-1]
    head_dim = embed_dim // num_heads
    if width == embed_dim:
        return dict(state)
    if not 0 < width < embed_dim or width % head_dim:
        raise ValueError(
            f"width {width} must be a multiple of head_dim {head_dim} in (0, {embed_dim}]"
        )
    out: dict[str, torch.Tensor] = {}
    for key, v in state.items():
        name = key.split(".", 2)[-1] if key.startswith("blocks.") else key
        if name == "attn.qkv.weight":
            v = v.reshape(3, embed_dim, embed_dim)[:, :width, :width].reshape(3 * width, width)
        elif name == "attn.qkv.bias":
            v = v.reshape(3, embed_dim)[:, :width].reshape(3 * width)
        elif name == "mlp.fc1.weight":
            v = v[: v.shape[0] * width // embed_dim, :width]
        elif name == "mlp.fc1.bias":
            v = v[: v.shape[0] * width // embed_dim]
        elif name == "mlp.fc2.weight":
            v = v[:width, : v.shape[1] * width // embed_dim]
        elif name == "attn.proj.weight":
            v = v[:width, :width]
        elif name in ("pos_embed", "head.weight"):  # channels along the last dim
            v = v[..., :width]
        elif name == "head.bias":
            pass
        else:  # every other tensor is indexed by residual channel along dim 0
            v = v[:width]
        out[key] = v
    return out


def num_parameters(tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of scalars in a state dict."""
    return sum(math.prod(v.shape) for v in tensors.values())


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with the global torch RNG seeded, restoring its state afterwards.

    timm initialises from the global RNG; forking it keeps our seeding from leaking into
    the caller's random stream.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _img_size(img_size: int | tuple[int, int] | list[int]) -> int | tuple[int, int]:
    if isinstance(img_size, (list, tuple)):
        return (int(img_size[0]), int(img_size[1]))
    return int(img_size)
