"""LDR: a ViT's blocks as a polynomial in layer position (Lin et al., NeurIPS 2024).

"Linearly Decomposing and Recomposing Vision Transformers for Diverse-Scale Models"
decomposes the blocks of a depth-``L`` model into ``K`` components ``G_0 … G_{K−1}`` (each
a full block's parameters):

    θ_l = Σ_k c_k(x_l) · G_k,    x_l = 2l/L − 1 ∈ [−1, 1)   (l = 0 … L−1)

with ``c_k`` a polynomial basis: ``chebyshev`` (T_0 = 1, T_1 = x, T_{k+1} = 2x T_k − T_{k−1};
the paper's best) or ``taylor`` (x^k). Any depth is recomposed from the first ``K′ ≤ K``
components. The components are trained incrementally by distillation: stage ``k`` adds
``G_k`` and freezes ``G_0 … G_{k−1}`` (`LDRAuxNet.set_stage`).

No public code exists; this is ours. Choices where the paper leaves room (documented in
docs/learngene.md): the position map ``x_l = 2l/L − 1`` (TLEG's ``l/L`` moved to [−1, 1), so
Taylor with ``K = 2`` *is* TLEG: θ_A = G_0 − G_1, θ_B = 2·G_1); patch/position embeddings,
``fc_norm`` and head shared as in TLEG; a new component starts at zero, so each stage
starts from the previous stage's function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.func import functional_call

from learngene.gene import AuxNet, Learngene, arch_from_meta
from learngene.vit import block_shapes, create_vit, head_keys, shared_keys, skeleton, vit_shapes

BASES = ("chebyshev", "taylor")


def basis(x: float, n: int, kind: str = "chebyshev") -> list[float]:
    """``[c_0(x), …, c_{n−1}(x)]`` of the Chebyshev (first kind) or Taylor basis.

    Examples
    --------
    >>> basis(0.5, 4)  # T_0..T_3 at 1/2: 1, 1/2, 2·(1/2)² − 1, 4·(1/2)³ − 3·(1/2)
    [1.0, 0.5, -0.5, -1.0]
    >>> basis(0.5, 3, "taylor")
    [1.0, 0.5, 0.25]
    """
    if kind not in BASES:
        raise ValueError(f"basis must be one of {', '.join(BASES)}, got {kind!r}")
    out = [1.0, float(x)][:n]
    while len(out) < n:
        k = len(out)
        out.append(2 * x * out[k - 1] - out[k - 2] if kind == "chebyshev" else float(x) ** k)
    return out


def position(layer: int, depth: int) -> float:
    """``x_l = 2l/L − 1``: block ``layer`` of a ``depth``-block model mapped into [−1, 1)."""
    return 2.0 * layer / depth - 1.0


def _meta_sizes(meta: Mapping[str, Any]) -> tuple[int, str]:
    k, kind = meta["components"], meta["basis"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"components must be a positive integer, got {k!r}")
    if kind not in BASES:
        raise ValueError(f"basis must be one of {', '.join(BASES)}, got {kind!r}")
    return k, kind


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape: ``component.{k}.*`` per block parameter, shared, head."""
    arch = arch_from_meta(meta)
    k, _ = _meta_sizes(meta)
    block = block_shapes(**arch)
    full = vit_shapes(**{**arch, "depth": 0})
    shapes = {f"component.{c}.{name}": s for c in range(k) for name, s in block.items()}
    shapes.update({name: full[name] for name in (*shared_keys(full), *head_keys(full))})
    return shapes


def expand(
    learngene: Learngene,
    depth: int,
    components: int | None = None,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a ``depth``-block descendant from the first ``components`` (K′ ≤ K)."""
    k, kind = _meta_sizes(learngene.meta)
    return _expand(learngene.tensors, k, kind, depth, components, include_head=include_head)


def _expand(
    tensors: Mapping[str, torch.Tensor],
    k: int,
    kind: str,
    depth: int,
    components: int | None = None,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    used = k if components is None else components
    if not 1 <= used <= k:
        raise ValueError(f"LDR recomposes from 1..{k} components, got {used}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    comps = [
        {
            n[len(f"component.{c}.") :]: v
            for n, v in tensors.items()
            if n.startswith(f"component.{c}.")
        }
        for c in range(used)
    ]
    out = {}
    for layer in range(depth):
        coeff = basis(position(layer, depth), used, kind)
        for name in comps[0]:
            out[f"blocks.{layer}.{name}"] = sum(
                c * g[name] for c, g in zip(coeff, comps, strict=True)
            )
    keys = (*shared_keys(tensors), *head_keys(tensors)) if include_head else shared_keys(tensors)
    out.update({name: tensors[name] for name in keys})
    return out


class LDRAuxNet(AuxNet):
    """Aux-Net of ``depth`` blocks recomposed from ``components`` LDR components.

    Trainable: ``components`` (K timm `Block` s used as containers) and the shared
    ``vit.patch_embed``, ``vit.pos_embed``, ``vit.fc_norm``, ``vit.head``. ``set_stage(s)``
    uses the first ``s`` components and freezes the first ``s − 1`` (and, after stage 1,
    the shared tensors), as the paper's incremental training; the forward is timm's on
    the recomposed weights, so ``expand(learngene, depth)`` in `create_vit` is the Aux-Net.
    A BatchNorm stem's running statistics (real buffers of ``vit``, in the learngene) are
    updated in every training forward, frozen stem or not: they track the stem's output.
    Component 0 starts as timm initialises a block; the others start at zero.
    """

    method = "ldr"

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
        components: int = 3,
        basis: str = "chebyshev",
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        self._set_arch(locals())
        self.k, self.kind = _meta_sizes({"components": components, "basis": basis})
        names = vit_shapes(**{**self.arch, "depth": 0})
        keep = (*shared_keys(names), *head_keys(names))
        self.vit = skeleton(keep=keep, seed=seed, **self.arch, **kw)
        blocks = create_vit(
            **{**self.arch, "depth": self.k}, seed=None if seed is None else seed + 1
        )
        self.components = blocks.blocks
        with torch.no_grad():
            for block in list(self.components)[1:]:
                for p in block.parameters():
                    p.zero_()
        self.stage = self.k  # all components in use until set_stage says otherwise

    def set_stage(self, stage: int) -> None:
        """Use components ``0 … stage−1``; train only the last (and the shared tensors at
        stage 1)."""
        if not 1 <= stage <= self.k:
            raise ValueError(f"stage must be in 1..{self.k}, got {stage}")
        self.stage = stage
        for c, block in enumerate(self.components):
            block.requires_grad_(c == stage - 1)
        self.vit.requires_grad_(stage == 1)

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        """The learngene, named as in `learngene_shapes` (live parameters and buffers)."""
        out = {
            f"component.{c}.{n}": v
            for c, block in enumerate(self.components)
            for n, v in block.named_parameters()
        }
        out.update(dict(self.vit.named_parameters()))
        out.update(dict(self.vit.named_buffers()))  # a BatchNorm stem's, updated in place
        return out

    def no_weight_decay(self) -> set[str]:
        """Parameters an optimiser should not decay (timm's convention)."""
        return {"vit.pos_embed", "vit.dist_token"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = _expand(
            self.learngene_tensors(), self.k, self.kind, self.arch["depth"], self.stage
        )
        return functional_call(self.vit, weights, (x,))
