"""TLEG: a transformer as a linear expansion of its learngene (Xia et al., AAAI 2024).

The learngene is two tensors per block parameter, θ_A and θ_B, for every Linear (qkv,
proj, fc1, fc2) and both LayerNorms of a timm `Block`. Layer ``l`` (0-based) of an
``L``-layer network is

    θ_l = θ_A + (l / L) · θ_B

as in the official code (``L`` is the depth of the network being built, so a 1-layer
descendant gets θ_A alone). Patch embedding, position embedding and the final norm
(timm's ``fc_norm``) are shared tensors copied into every descendant (a conv stem's too,
with a BatchNorm stem's running statistics); the head is copied when the label space
matches.

`TLEGAuxNet` trains θ_A, θ_B and the shared tensors by distillation; its forward runs
timm's own `VisionTransformer` on the expanded weights, so ``expand(learngene, L_aux)``
loaded into `create_vit(depth=L_aux)` gives the Aux-Net's logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.func import functional_call

from learngene.gene import AuxNet, Learngene, arch_from_meta
from learngene.vit import block_shapes, create_vit, head_keys, shared_keys, skeleton, vit_shapes


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a TLEG learngene: ``theta_a.*``, ``theta_b.*``, shared, head."""
    arch = arch_from_meta(meta)
    block = block_shapes(**arch)
    full = vit_shapes(**{**arch, "depth": 0})
    shapes = {f"theta_{ab}.{k}": s for ab in "ab" for k, s in block.items()}
    shapes.update({k: full[k] for k in (*shared_keys(full), *head_keys(full))})
    return shapes


def expand(
    learngene: Learngene | Mapping[str, torch.Tensor], depth: int, *, include_head: bool = True
) -> dict[str, torch.Tensor]:
    """State dict of a ``depth``-layer descendant: ``blocks.{l}.* = θ_A + (l/depth)·θ_B``.

    A pure map in the shape of timm's ``checkpoint_filter_fn``: learngene tensors in,
    `create_vit` state dict out (differentiable, nothing copied that need not be).

    Parameters
    ----------
    learngene
        A TLEG `Learngene` or its tensors (``theta_a.*``, ``theta_b.*``, shared, head).
    depth
        Number of blocks of the descendant, >= 1.
    include_head
        Copy ``head.*`` too (only meaningful when the label space matches).
    """
    tensors = learngene.tensors if isinstance(learngene, Learngene) else learngene
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    theta_a = {k[len("theta_a.") :]: v for k, v in tensors.items() if k.startswith("theta_a.")}
    theta_b = {k[len("theta_b.") :]: v for k, v in tensors.items() if k.startswith("theta_b.")}
    if not theta_a or theta_a.keys() != theta_b.keys():
        raise ValueError("a TLEG learngene needs matching theta_a.* and theta_b.* tensors")
    out = {
        f"blocks.{layer}.{name}": theta_a[name] + (layer / depth) * theta_b[name]
        for layer in range(depth)
        for name in theta_a
    }
    keys = (*shared_keys(tensors), *head_keys(tensors)) if include_head else shared_keys(tensors)
    out.update({k: tensors[k] for k in keys})
    return out


class TLEGAuxNet(AuxNet):
    """Aux-Net of ``depth`` layers built from a TLEG learngene, trained by distillation.

    Its trainable parameters are exactly the learngene: ``theta_a`` / ``theta_b`` (two timm
    `Block` s used as containers) and the shared ``vit.patch_embed``, ``vit.pos_embed``,
    ``vit.fc_norm``, ``vit.head``; a BatchNorm stem's running statistics are real buffers
    of ``vit`` (`vit.skeleton`), updated in train mode and stored with the learngene.
    Initialisation: θ_A and the shared tensors as timm initialises a ViT; θ_B's Linear
    weights likewise, its LayerNorm weights and all its biases zero, so every layer starts
    with unit LayerNorm gain.

    Stochastic depth is not supported (one weight set serves every layer through
    `functional_call`); dropout keywords pass through to timm.
    """

    method = "tleg"

    def __init__(
        self,
        img_size: int | tuple[int, int],
        patch_size: int,
        in_chans: int,
        num_classes: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        stem_width: int = 0,
        *,
        stem_norm: str = "group",
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        self._set_arch(locals())
        names = vit_shapes(**{**self.arch, "depth": 0})
        keep = (*shared_keys(names), *head_keys(names))
        self.vit = skeleton(keep=keep, seed=seed, **self.arch, **kw)
        pair = create_vit(**{**self.arch, "depth": 2}, seed=None if seed is None else seed + 1)
        self.theta_a, self.theta_b = pair.blocks[0], pair.blocks[1]
        with torch.no_grad():
            for name, p in self.theta_b.named_parameters():
                if name.endswith(".bias") or name.startswith("norm"):
                    p.zero_()

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        """The learngene, named as in `learngene_shapes` (live parameters, not copies; a
        BatchNorm stem's live buffers, which the forward passes on and so updates)."""
        out = {f"theta_a.{k}": v for k, v in self.theta_a.named_parameters()}
        out.update({f"theta_b.{k}": v for k, v in self.theta_b.named_parameters()})
        out.update(dict(self.vit.named_parameters()))
        out.update(dict(self.vit.named_buffers()))
        return out

    def no_weight_decay(self) -> set[str]:
        """Parameters an optimiser should not decay (timm's convention)."""
        return {"vit.pos_embed", "vit.dist_token"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = expand(self.learngene_tensors(), self.arch["depth"])
        return functional_call(self.vit, weights, (x,))
