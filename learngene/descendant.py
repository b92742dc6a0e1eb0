"""One entry point from any saved learngene to a ready timm ViT of the size you ask for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from learngene import inherit, ldr, lets, mmlg, pool, tleg
from learngene.gene import Learngene, LearngeneError, arch_from_meta
from learngene.io import load_learngene
from learngene.vit import ARCH_KEYS, DIST_HEAD_KEYS, DIST_TOKEN, create_vit, head_keys

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer


def descendant_state(
    learngene: Learngene,
    depth: int,
    width: int | None = None,
    selection: str = "continuous",
    *,
    layers: Sequence[int] | None = None,
    components: int | None = None,
    pool_path: Sequence[tuple[int, Sequence[int]]] | None = None,
    views: Sequence[str] | None = None,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a descendant (timm names; a `pool.StitchedViT`'s for ``pool``).

    A pure map from the learngene's tensors. For ``inherit`` learngenes the lower,
    randomly initialised blocks are absent. ``layers`` (LeTs: Aux-Net layer per descendant
    layer), ``components`` (LDR: K′), ``pool_path`` (pool) and ``views`` (MM-LG: the
    encoders kept; names ``encoders.{view}.*``) apply to one method each.
    Raises `LearngeneError` (one line) for a size or option the learngene cannot make.
    """
    method = learngene.method
    embed_dim = learngene.meta["embed_dim"]
    for option, value, owner in (
        ("selection", selection != "continuous", "lets"),
        ("layers", layers is not None, "lets"),
        ("components", components is not None, "ldr"),
        ("pool_path", pool_path is not None, "pool"),
        ("views", views is not None, "mmlg"),
    ):
        if value and method != owner:
            raise LearngeneError(f"{option} applies to {owner} learngenes, not {method}")
    try:
        if method in ("tleg", "ldr", "mmlg") and width not in (None, embed_dim):
            raise ValueError(f"a {method} learngene makes width {embed_dim} only, not {width}")
        if method == "tleg":
            return tleg.expand(learngene, depth, include_head=include_head)
        if method == "mmlg":
            return mmlg.expand(learngene, depth, views, include_head=include_head)
        if method == "ldr":
            return ldr.expand(learngene, depth, components, include_head=include_head)
        if method == "lets":
            if layers is not None and len(layers) != depth:
                raise ValueError(f"{len(layers)} layers given for depth {depth}")
            return lets.expand(
                learngene, depth, width, selection, layers=layers, include_head=include_head
            )
        if method == "pool":
            if pool_path is None:
                pool_path = pool.default_path(learngene.meta, depth, width or embed_dim)
            return pool.expand(learngene, pool_path, include_head=include_head)
        if method == "inherit":
            return inherit.expand(learngene, depth, width=width, include_head=include_head)
        return inherit.weight_select(
            learngene.tensors, learngene.meta, depth, width, include_head=include_head
        )
    except ValueError as err:
        raise LearngeneError(f"{method} learngene: {err}") from None


def build_descendant(
    path: str | Path | Learngene,
    depth: int,
    num_classes: int,
    width: int | None = None,
    selection: str = "continuous",
    *,
    layers: Sequence[int] | None = None,
    components: int | None = None,
    pool_path: Sequence[tuple[int, Sequence[int]]] | None = None,
    views: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    seed: int | None = None,
    **kw,
) -> VisionTransformer | pool.StitchedViT | mmlg.MultiViewViT:
    """A timm `VisionTransformer` from a learngene of any method (``pool``: a
    `pool.StitchedViT`; ``mmlg``: a `mmlg.MultiViewViT`).

    Parameters
    ----------
    path
        A learngene file (either of the pair, or their stem) or a loaded `Learngene`.
    depth
        Number of blocks.
    num_classes
        Size of the new head. The learngene's head is copied only when the label space
        matches: same ``num_classes`` and, when both are known, the same ``class_names``.
        Otherwise the head keeps timm's fresh initialisation.
    width
        Embedding width (``None``: the learngene's); heads keep the learngene's head_dim.
    selection
        How LeTs picks rows of its transformation matrices (`learngene.lets.SELECTIONS`).
    layers
        LeTs: the Aux-Net layer each descendant layer takes (default `lets.default_layers`).
    components
        LDR: recompose from the first K′ components (default: all).
    pool_path
        Pool: ``[(instance, [blocks]), ...]`` (default `pool.default_path` of depth, width).
    views
        MM-LG: the views whose encoders the descendant has (default: all of the
        learngene's; ``["xy"]``: a pad-plane-only model). Other methods reject it.
    class_names
        The descendant's classes, compared with the learngene's ``class_names``.
    seed
        Seeds timm's initialisation of whatever the learngene does not provide.
    **kw
        Training-only `VisionTransformer` options (``drop_path_rate``, ``drop_rate``, ...)
        and ``distill_token``: ``None`` (default) as the learngene, ``True`` a DeiT token
        (freshly initialised when the learngene has none), ``False`` none.

    Examples
    --------
    >>> import torch
    >>> from learngene import TLEGAuxNet
    >>> gene = TLEGAuxNet(img_size=32, patch_size=8, in_chans=2, num_classes=3,
    ...                   embed_dim=32, depth=4, num_heads=2, seed=0).learngene()
    >>> model = build_descendant(gene, depth=6, num_classes=3)  # or a learngene file
    >>> t = gene.tensors  # block 5 of 6 is θ_A + (5/6)·θ_B
    >>> want = t["theta_a.attn.qkv.weight"] + 5 / 6 * t["theta_b.attn.qkv.weight"]
    >>> torch.allclose(model.blocks[5].attn.qkv.weight, want)
    True
    """
    learngene = path if isinstance(path, Learngene) else load_learngene(path)
    meta = learngene.meta
    token = kw.pop("distill_token", None)
    clash = sorted(set(kw) & {*ARCH_KEYS, "class_token", "global_pool"})
    if clash:
        raise LearngeneError(f"the learngene fixes {clash[0]!r}; it cannot be overridden")
    arch = arch_from_meta(meta)
    head_dim = arch["embed_dim"] // arch["num_heads"]
    width = arch["embed_dim"] if width is None else int(width)
    if width < 1 or width % head_dim:
        raise LearngeneError(f"width {width} is not a positive multiple of head_dim {head_dim}")
    known = meta.get("class_names")
    keep_head = num_classes == arch["num_classes"] and (
        class_names is None or known is None or list(class_names) == list(known)
    )
    state = descendant_state(
        learngene,
        depth,
        width,
        selection,
        layers=layers,
        components=components,
        pool_path=pool_path,
        views=views,
        include_head=keep_head,
    )
    if learngene.method == "mmlg":
        return mmlg.build(
            learngene, depth, num_classes, views, include_head=keep_head, seed=seed, **kw
        )
    if learngene.method == "pool":
        path = pool_path or pool.default_path(meta, depth, width)
        try:
            return pool.build_stitched(
                learngene, path, num_classes, include_head=keep_head, seed=seed, **kw
            )
        except ValueError as err:
            raise LearngeneError(f"pool learngene: {err}") from None
    arch.update(num_classes=num_classes, embed_dim=width, depth=depth, num_heads=width // head_dim)
    fresh_token = bool(token) and not arch["distill_token"]
    if token is not None:  # True: a token (fresh unless the learngene has one); False: none
        arch["distill_token"] = bool(token)
        if not token:
            state = {k: v for k, v in state.items() if k not in (DIST_TOKEN, *DIST_HEAD_KEYS)}
    model = create_vit(**arch, seed=seed, **kw)

    allowed = set() if keep_head else set(head_keys(model.state_dict()))
    if fresh_token:  # the learngene has no token: the descendant's own initialisation
        allowed.update((DIST_TOKEN, *DIST_HEAD_KEYS))
    if learngene.method == "inherit":
        for i in inherit.random_blocks(learngene, depth):
            allowed.update(k for k in model.state_dict() if k.startswith(f"blocks.{i}."))
    result = model.load_state_dict(state, strict=False)
    unexplained = sorted(set(result.missing_keys) - allowed)
    if unexplained or result.unexpected_keys:
        # a bug, not a user error: the maps must produce exactly the model's names
        raise RuntimeError(
            f"descendant state does not fit: missing {unexplained[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    return model
