"""Layer inheritance (Heur-/Auto-Learngene) and the weight-selection baseline.

Heur-Learngene (Wang et al., 2022) keeps ``k`` blocks of a trained ancestry ViT — by
default its last ``k`` — and a descendant stacks freshly initialised blocks *below*
them. Auto-Learngene chooses the ``k`` blocks instead by how similar their
representations are (linear CKA on a batch of inputs) to those of a small pseudo
descendant trained briefly on the target data.

Weight selection (Xu et al., 2024) is the baseline with no condensation: a descendant takes
the first ``d`` blocks of the ancestry and, when narrower, a consistent subset of its
channels (`learngene.vit.narrow`).

All weight maps here are pure ``state_dict in -> state_dict out`` functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from learngene.gene import Learngene, arch_from_meta
from learngene.vit import head_keys, narrow, shared_keys, split_blocks, vit_shapes


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an inherited learngene: ``blocks.0..k-1``, shared, head."""
    arch = arch_from_meta(meta)
    k, source = meta["learngene_depth"], meta["source_blocks"]
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"learngene_depth must be a positive integer, got {k!r}")
    if not isinstance(source, list) or len(source) != k:
        raise ValueError(f"source_blocks must list {k} block indices, got {source!r}")
    return vit_shapes(**{**arch, "depth": k})


def weight_select_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a weight-selection source: the whole ancestry ViT."""
    return vit_shapes(**arch_from_meta(meta))


def inherit_layers(
    ancestry_state: Mapping[str, torch.Tensor],
    ancestry_cfg: Mapping[str, Any],
    k: int,
    *,
    position: str | Sequence[int] = "last",
) -> Learngene:
    """A learngene of ``k`` blocks of a trained ancestry ViT (plus its shared tensors).

    Parameters
    ----------
    ancestry_state
        State dict of a `create_vit` model.
    ancestry_cfg
        Its architecture (`learngene.vit.vit_arch`).
    k
        Number of blocks to keep.
    position
        ``"last"`` (Heur-Learngene), ``"first"``, or explicit block indices (e.g. from
        `select_blocks_by_cka`); kept in ascending order.
    """
    depth = ancestry_cfg["depth"]
    if position == "last":
        source = list(range(depth - k, depth))
    elif position == "first":
        source = list(range(k))
    elif isinstance(position, str):
        raise ValueError(f"position must be 'last', 'first' or block indices, got {position!r}")
    else:
        source = sorted(int(i) for i in position)
    if not 1 <= k <= depth or len(source) != k or len(set(source)) != k:
        raise ValueError(f"cannot take {k} distinct blocks {source} of a {depth}-block ancestry")
    if source[0] < 0 or source[-1] >= depth:
        raise ValueError(f"block indices {source} outside 0..{depth - 1}")
    blocks, rest = split_blocks(ancestry_state)
    tensors = {f"blocks.{i}.{n}": v for i, s in enumerate(source) for n, v in blocks[s].items()}
    tensors.update({key: rest[key] for key in (*shared_keys(rest), *head_keys(rest))})
    meta = {"method": "inherit", **_json_arch(ancestry_cfg)}
    meta.update(learngene_depth=k, source_blocks=source)
    return Learngene(meta=meta, tensors={key: v.detach().clone() for key, v in tensors.items()})


def expand(
    learngene: Learngene,
    depth: int,
    *,
    width: int | None = None,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """Partial state dict of a ``depth``-block descendant: inherited blocks on top.

    The learngene's ``k`` blocks become blocks ``depth − k .. depth − 1``; blocks below are
    absent, to be left at the descendant's own random initialisation (load with
    ``strict=False``; `build_descendant` checks exactly those are missing). A descendant
    shallower than ``k`` takes the learngene's last ``depth`` blocks. ``width`` narrows
    consistently (`learngene.vit.narrow`).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    k = learngene.meta["learngene_depth"]
    blocks, rest = split_blocks(learngene.tensors)
    kept = min(k, depth)
    out = {
        f"blocks.{depth - kept + t}.{name}": v
        for t in range(kept)
        for name, v in blocks[k - kept + t].items()
    }
    keys = (*shared_keys(rest), *head_keys(rest)) if include_head else shared_keys(rest)
    out.update({key: rest[key] for key in keys})
    return _narrow(out, learngene.meta, width)


def random_blocks(learngene: Learngene, depth: int) -> list[int]:
    """Indices of a descendant's blocks that `expand` leaves at random initialisation."""
    return list(range(max(depth - learngene.meta["learngene_depth"], 0)))


def weight_select(
    ancestry_state: Mapping[str, torch.Tensor],
    ancestry_cfg: Mapping[str, Any],
    depth: int,
    width: int | None = None,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a descendant that takes the ancestry's first ``depth`` blocks.

    A narrower ``width`` keeps the first channels of the residual stream, the first heads
    and the first MLP units, the same in every layer (`learngene.vit.narrow`).
    """
    if not 1 <= depth <= ancestry_cfg["depth"]:
        raise ValueError(
            f"weight selection depth must be in 1..{ancestry_cfg['depth']}, got {depth}"
        )
    blocks, rest = split_blocks(ancestry_state)
    out = {f"blocks.{i}.{name}": v for i in range(depth) for name, v in blocks[i].items()}
    keys = (*shared_keys(rest), *head_keys(rest)) if include_head else shared_keys(rest)
    out.update({key: rest[key] for key in keys})
    return _narrow(out, ancestry_cfg, width)


def weight_select_learngene(
    ancestry_state: Mapping[str, torch.Tensor], ancestry_cfg: Mapping[str, Any]
) -> Learngene:
    """The whole ancestry packaged as a ``weight_select`` learngene (for `build_descendant`)."""
    meta = {"method": "weight_select", **_json_arch(ancestry_cfg)}
    shapes = weight_select_shapes(meta)
    tensors = {key: ancestry_state[key].detach().clone() for key in shapes}
    return Learngene(meta=meta, tensors=tensors)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear centred kernel alignment of two representations of the same ``n`` inputs.

    ``x`` is ``(n, p)``, ``y`` is ``(n, q)``; the result lies in [0, 1] and is invariant to
    rotations and isotropic scaling of either (Kornblith et al., 2019):
    ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` after centring the columns.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same inputs: {x.shape[0]} vs {y.shape[0]} rows")
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    cross = (y.T @ x).square().sum()
    return cross / ((x.T @ x).norm() * (y.T @ y).norm()).clamp_min(1e-30)


@torch.no_grad()
def block_features(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Token-averaged output of every block of a timm ViT on ``images``: ``(n, D)`` each."""
    outputs: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: outputs.append(out.mean(dim=1)))
        for block in model.blocks
    ]
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return outputs


def cka_matrix(ancestry: nn.Module, pseudo: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(ancestry blocks, pseudo blocks)`` linear CKA of block representations."""
    fa, fp = block_features(ancestry, images), block_features(pseudo, images)
    return torch.stack([torch.stack([linear_cka(a, p) for p in fp]) for a in fa])


def select_blocks_by_cka(
    ancestry: nn.Module, pseudo: nn.Module, images: torch.Tensor, k: int
) -> list[int]:
    """Auto-Learngene: the ``k`` ancestry blocks most similar to the pseudo descendant.

    The pseudo descendant is a small ViT trained briefly on the target data; see
    `blocks_by_cka` for the rule. The result goes to `inherit_layers` as ``position``.
    """
    return blocks_by_cka(cka_matrix(ancestry, pseudo, images), k)


def blocks_by_cka(cka: torch.Tensor, k: int) -> list[int]:
    """The ``k`` rows of a `cka_matrix` with the highest best match, in ascending order.

    Each ancestry block scores its highest linear CKA with any pseudo-descendant block.
    """
    scores = cka.max(dim=1).values
    if not 1 <= k <= scores.numel():
        raise ValueError(f"cannot choose {k} of {scores.numel()} blocks")
    return sorted(torch.topk(scores, k).indices.tolist())


def _narrow(
    state: dict[str, torch.Tensor], cfg: Mapping[str, Any], width: int | None
) -> dict[str, torch.Tensor]:
    if width is None or width == cfg["embed_dim"]:
        return state
    return narrow(state, width, num_heads=cfg["num_heads"])


def _json_arch(cfg: Mapping[str, Any]) -> dict[str, Any]:
    arch = arch_from_meta(cfg)
    if isinstance(arch["img_size"], tuple):
        arch["img_size"] = list(arch["img_size"])
    return arch
