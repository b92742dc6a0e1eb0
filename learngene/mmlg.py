"""MM-LG for detector views: shared multi-view and per-view blocks in a weighted sum.

An analogue of MM-LG (Chen et al., "Extracting Multimodal Learngene in CLIP", arXiv
2506.16673), with the views of an event (pad plane ``xy``, side views ``zy``/``zx``) as
the modalities. Each view ``v`` has its own encoder (its image channels -> its own patch
embedding, position embedding and ``fc_norm``); the blocks of every encoder are

    W_v = α_v · θ_MM + β_v · θ_UM(v)

with θ_MM shared by all views and θ_UM(v) the view's own. Depth follows TLEG's linear
expansion (ours; the paper's abstract does not say how depth is handled): each of θ_MM
and θ_UM(v) is a pair (θ_A, θ_B), and block ``l`` of an ``L``-block encoder is

    W_{v,l} = α_v · (θ_MM,A + (l/L)·θ_MM,B) + β_v · (θ_UM(v),A + (l/L)·θ_UM(v),B).

The encoders' pooled features are averaged over the views present and a shared linear
head classifies them (late fusion, ours), so one head serves every subset of views: a
single-view descendant (the pad plane alone, for a detector with a poor drift
calibration) is the same network with one encoder.

Learngene tensors: ``mm.{a,b}.*`` (θ_MM), ``um.{v}.{a,b}.*`` (θ_UM(v)), ``alpha`` and
``beta`` (one weight per view, in ``views`` order), ``embed.{v}.*`` (patch embedding —
a conv stem with a BatchNorm stem's running statistics —, ``pos_embed``, ``fc_norm`` of
view ``v``) and the shared ``head.*``. Metadata adds
``views`` (names, in image-channel order) and ``view_channels`` (image channels per view:
view ``i`` owns channels ``i·c … (i+1)·c − 1``, as `data_prep.images` lays them out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from learngene import tleg
from learngene.gene import AuxNet, Learngene, arch_from_meta
from learngene.vit import (
    average_heads,
    block_shapes,
    create_vit,
    head_keys,
    seeded,
    shared_keys,
    skeleton,
    vit_shapes,
    with_arch_defaults,
)


def _views(meta: Mapping[str, Any]) -> tuple[list[str], int]:
    views, c = meta["views"], meta["view_channels"]
    if not isinstance(views, (list, tuple)) or not views or len(set(views)) != len(views):
        raise ValueError(f"views must be a non-empty list of distinct names, got {views!r}")
    if not all(isinstance(v, str) and v and "." not in v for v in views):
        raise ValueError(f"view names must be non-empty strings without '.', got {views!r}")
    if not isinstance(c, int) or isinstance(c, bool) or c < 1:
        raise ValueError(f"view_channels must be a positive integer, got {c!r}")
    if meta["in_chans"] != len(views) * c:
        raise ValueError(
            f"in_chans {meta['in_chans']} != {len(views)} views x {c} channels per view"
        )
    return list(views), c


def encoder_arch(arch: Mapping[str, Any], view_channels: int, depth: int) -> dict[str, Any]:
    """`create_vit` arguments of one view's encoder: its channels, features out (no head)."""
    return {**arch, "in_chans": view_channels, "num_classes": 0, "depth": depth}


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an MM-LG learngene."""
    arch = arch_from_meta(meta)
    views, c = _views(meta)
    block = block_shapes(**arch)
    enc = vit_shapes(**encoder_arch(arch, c, 0))
    head = vit_shapes(**{**arch, "depth": 0})
    shapes = {f"mm.{ab}.{k}": s for ab in "ab" for k, s in block.items()}
    for v in views:
        shapes.update({f"um.{v}.{ab}.{k}": s for ab in "ab" for k, s in block.items()})
        shapes.update({f"embed.{v}.{k}": enc[k] for k in shared_keys(enc)})
    shapes.update({"alpha": (len(views),), "beta": (len(views),)})
    shapes.update({k: head[k] for k in head_keys(head)})
    return shapes


def view_tleg(tensors: Mapping[str, torch.Tensor], views: Sequence[str], view: str):
    """View ``view``'s encoder as a TLEG learngene (θ_A, θ_B, embeddings, ``fc_norm``).

    θ_A = α_v·θ_MM,A + β_v·θ_UM(v),A and likewise θ_B: the weighted sum is linear, so it
    commutes with TLEG's expansion. Reads only θ_MM, θ_UM(view) and the view's tensors.
    """
    i = list(views).index(view)
    alpha, beta = tensors["alpha"][i], tensors["beta"][i]
    out: dict[str, torch.Tensor] = {}
    for ab in "ab":
        mm = f"mm.{ab}."
        for key, w in tensors.items():
            if key.startswith(mm):
                name = key[len(mm) :]
                out[f"theta_{ab}.{name}"] = alpha * w + beta * tensors[f"um.{view}.{ab}.{name}"]
    prefix = f"embed.{view}."
    out.update({k[len(prefix) :]: w for k, w in tensors.items() if k.startswith(prefix)})
    return out


def _encoder_state(tensors, views, view, depth) -> dict[str, torch.Tensor]:
    """State dict of view ``view``'s ``depth``-block encoder (timm names, no head)."""
    return tleg.expand(view_tleg(tensors, views, view), depth, include_head=False)


def expand(
    learngene: Learngene,
    depth: int,
    views: Sequence[str] | None = None,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a `MultiViewViT` of ``depth`` blocks per encoder over ``views``.

    Names: ``encoders.{v}.<timm name>`` and ``head.*``. ``views`` (default: all of the
    learngene's) must be a subset of the learngene's; their order does not matter.
    """
    all_views, _ = _views(learngene.meta)
    views = _check_views(all_views, views)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    t = learngene.tensors
    out = {
        f"encoders.{v}.{k}": w
        for v in views
        for k, w in _encoder_state(t, all_views, v, depth).items()
    }
    if include_head:
        out.update({k: t[k] for k in head_keys(t)})
    return out


def _check_views(all_views: Sequence[str], views: Sequence[str] | str | None) -> list[str]:
    if views is None:
        return list(all_views)
    if isinstance(views, str):
        views = [views]
    unknown = [v for v in views if v not in all_views]
    if unknown or not views or len(set(views)) != len(views):
        raise ValueError(
            f"views {list(views)} must be distinct views of the learngene's {list(all_views)}"
        )
    return [v for v in all_views if v in views]  # channel order


class MultiViewViT(nn.Module):
    """One timm ViT encoder per view, pooled features averaged, one linear head.

    Reads the full multi-view image ``(B, V·c, H, W)`` and uses the channels of its own
    ``views`` only (``all_views`` gives the channel layout), so a pad-plane-only model
    runs on the same image files as a multi-view one. With a distillation token
    (``distill_token``) every encoder has its own; their features are averaged over the
    views like the pooled ones and one ``head_dist`` reads them (`vit.DistilledViT`'s
    outputs: a pair in training, the heads' averaged softmax in eval mode).
    """

    input_kind = "images"

    def __init__(
        self,
        arch: Mapping[str, Any],
        all_views: Sequence[str],
        view_channels: int,
        views: Sequence[str] | None,
        depth: int,
        num_classes: int,
        *,
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        self.all_views = list(all_views)
        self.views = _check_views(self.all_views, views)
        self.view_channels = view_channels
        enc = encoder_arch(
            with_arch_defaults(arch),
            view_channels,
            depth,
        )
        self.encoders = nn.ModuleDict(
            {
                v: create_vit(**enc, seed=None if seed is None else seed + i, **kw)
                for i, v in enumerate(self.views)
            }
        )
        self.head = _linear_head(arch["embed_dim"], num_classes, seed)
        self.head_dist = None
        if enc.get("distill_token"):
            self.head_dist = _linear_head(arch["embed_dim"], num_classes, seed, 1)

    def channels(self, view: str) -> slice:
        i = self.all_views.index(view)
        return slice(i * self.view_channels, (i + 1) * self.view_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Pooled features averaged over the model's views, ``(B, embed_dim)`` (with a
        distillation token: the pair pooled, token features)."""
        return _view_mean([enc(x[:, self.channels(v)]) for v, enc in self.encoders.items()])

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return _heads(self, self.features(x))

    def no_weight_decay(self) -> set[str]:
        """Position embeddings, as timm's ViT (the engine skips these names)."""
        return {f"encoders.{v}.{k}" for v in self.views for k in ("pos_embed", "dist_token")}


def build(
    learngene: Learngene,
    depth: int,
    num_classes: int,
    views: Sequence[str] | None = None,
    *,
    include_head: bool = True,
    seed: int | None = None,
    **kw,
) -> MultiViewViT:
    """A `MultiViewViT` initialised from the learngene (head only if ``include_head``)."""
    all_views, c = _views(learngene.meta)
    state = expand(learngene, depth, views, include_head=include_head)
    model = MultiViewViT(
        arch_from_meta(learngene.meta), all_views, c, views, depth, num_classes, seed=seed, **kw
    )
    result = model.load_state_dict(state, strict=False)
    allowed = set() if include_head else set(head_keys(model.state_dict()))
    if set(result.missing_keys) - allowed or result.unexpected_keys:
        raise RuntimeError(f"mmlg state does not fit: {result}")  # a bug, not a user error
    return model


class MMLGAuxNet(AuxNet):
    """Aux-Net: per-view encoders of ``depth`` blocks over ``views``, trained by distillation.

    Trainable parameters are exactly the learngene. Initialisation (ours): θ_MM as TLEG's
    θ_A/θ_B (θ_A as timm initialises a block; θ_B's Linear weights likewise, its norms and
    biases zero); θ_UM(v) the same but with θ_A's LayerNorm gains zero too, so every
    block's gain starts at α_v·1 + β_v·0 = 1; α_v = β_v = 1; embeddings, ``fc_norm`` and
    head as timm initialises a ViT. The forward runs timm's ViT per view on the expanded
    weights, so ``build(learngene, depth)`` computes the Aux-Net's function (in eval mode).

    ``view_dropout`` (ours, training only, not stored): the probability that a training
    batch goes through one view's encoder alone (drawn uniformly, from torch's global
    RNG), so that every encoder also learns to classify without the others.
    """

    method = "mmlg"

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
        views: Sequence[str],
        view_channels: int = 1,
        view_dropout: float = 0.0,
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        if not 0.0 <= view_dropout < 1.0:
            raise ValueError(f"view_dropout must be in [0, 1), got {view_dropout}")
        self.view_dropout = view_dropout
        views = list(views)
        self._set_arch(locals())
        _views(self.learngene_meta())
        self.view_names = views
        enc = encoder_arch(self.arch, view_channels, depth)
        self.skeleton = skeleton(**enc, **kw)
        s = None if seed is None else seed + 1

        def pair(offset: int, *, unimodal: bool) -> nn.ModuleList:
            blocks = create_vit(**{**self.arch, "depth": 2}, seed=None if s is None else s + offset)
            with torch.no_grad():
                for ab, block in zip("ab", blocks.blocks, strict=True):
                    for name, p in block.named_parameters():
                        zero_norm = name.startswith("norm") and (ab == "b" or unimodal)
                        if zero_norm or (ab == "b" and name.endswith(".bias")):
                            p.zero_()
            return blocks.blocks

        self.mm = pair(0, unimodal=False)
        self.um = nn.ModuleDict({v: pair(1 + i, unimodal=True) for i, v in enumerate(views)})
        self.embed = nn.ModuleDict()
        for i, v in enumerate(views):
            vit = create_vit(**{**enc, "depth": 0}, seed=None if seed is None else seed + 100 + i)
            self.embed[v] = nn.ModuleDict({"patch_embed": vit.patch_embed, "fc_norm": vit.fc_norm})
            self.embed[v].pos_embed = vit.pos_embed
            if self.arch["distill_token"]:  # each view's own, carried like pos_embed
                self.embed[v].dist_token = vit.dist_token
        self.alpha = nn.Parameter(torch.ones(len(views)))
        self.beta = nn.Parameter(torch.ones(len(views)))
        self.head = _linear_head(embed_dim, num_classes, seed)
        self.head_dist = None
        if self.arch["distill_token"]:
            self.head_dist = _linear_head(embed_dim, num_classes, seed, 1)

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        """The learngene, named as in `learngene_shapes` (live parameters and buffers)."""
        out = {
            f"mm.{ab}.{k}": p
            for ab, block in zip("ab", self.mm, strict=True)
            for k, p in block.named_parameters()
        }
        for v, blocks in self.um.items():
            for ab, block in zip("ab", blocks, strict=True):
                out.update({f"um.{v}.{ab}.{k}": p for k, p in block.named_parameters()})
        for v, mods in self.embed.items():
            out.update({f"embed.{v}.{k}": p for k, p in mods.named_parameters()})
            # a BatchNorm stem's statistics: passed to the skeleton, so updated in place
            out.update({f"embed.{v}.{k}": b for k, b in mods.named_buffers()})
        out.update(alpha=self.alpha, beta=self.beta)
        out.update({f"head.{k}": p for k, p in self.head.named_parameters()})
        if self.head_dist is not None:
            out.update({f"head_dist.{k}": p for k, p in self.head_dist.named_parameters()})
        return out

    def no_weight_decay(self) -> set[str]:
        tokens = {f"embed.{v}.{k}" for v in self.view_names for k in ("pos_embed", "dist_token")}
        return tokens | {"alpha", "beta"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.learngene_tensors()
        c = self.method_args["view_channels"]
        views = list(enumerate(self.view_names))
        if self.training and self.view_dropout and torch.rand(()) < self.view_dropout:
            views = [views[int(torch.randint(len(views), ()))]]
        feats = [
            functional_call(
                self.skeleton,
                _encoder_state(t, self.view_names, v, self.arch["depth"]),
                (x[:, i * c : (i + 1) * c],),
            )
            for i, v in views
        ]
        return _heads(self, _view_mean(feats))


def _linear_head(width: int, num_classes: int, seed: int | None, offset: int = 0) -> nn.Linear:
    """A classifier initialised as timm's ViT head (trunc-normal 0.02, bias 0)."""
    with seeded(None if seed is None else seed + offset):
        head = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
    return head


def _view_mean(feats: list) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The encoders' outputs averaged over the views (element-wise for token pairs)."""
    if isinstance(feats[0], tuple):
        return tuple(torch.stack(f).mean(0) for f in zip(*feats, strict=True))
    return torch.stack(feats).mean(0)


def _heads(model: nn.Module, feats: torch.Tensor | tuple[torch.Tensor, ...]):
    """Class head on pooled features; with a token also ``head_dist`` on its features:
    the pair in training, `vit.average_heads` in eval mode (as `vit.DistilledViT`)."""
    if model.head_dist is None:
        return model.head(feats)
    cls, dist = model.head(feats[0]), model.head_dist(feats[1])
    return (cls, dist) if model.training else average_heads(cls, dist)
