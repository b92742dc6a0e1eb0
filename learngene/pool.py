"""Learngene Pool: small distilled ViTs whose blocks are stitched into models of many sizes.

After Shi et al., "Building Variable-sized Models via Learngene Pool" (AAAI 2024), with
stitching layers as in SN-Net (Pan et al., CVPR 2023). No public code was consulted; the
details below that the papers leave open are ours (docs/learngene.md).

The learngene (``method: pool``):

* ``instance.{n}.*``: ``len(pool_widths)`` timm ViTs (`create_vit` layout; whole state
  dicts, a BatchNorm stem's running statistics included) of widths ``pool_widths[n]``
  (ascending), ``pool_depth`` = D blocks each, the same ``head_dim``, each distilled from
  the ancestry;
* ``stitch.{a}.{b}.{p}.weight`` ``(w_b × w_a)`` and ``.bias``: a linear map from the token
  features of instance ``a`` into instance ``b`` before ``b``'s block ``p`` (1 ≤ p < D), for
  every ordered pair of instances ``a ≠ b``. Initialised by least squares on activations
  (`init_stitches`, as SN-Net), then trained by sampling paths under distillation
  (`PoolAuxNet`).

A *path* is a list of segments ``(instance, [block indices])``; block positions increase
along the path, consecutive segments use different instances and meet at a stitch
(positions index the stitch: the first block after it). The descendant is a
`StitchedViT`: the first instance's patch and position embeddings, the segments' blocks
with stitches between, the last instance's ``fc_norm`` and head.

`default_path(meta, depth, width)`: positions ``⌊t·D/d⌋`` (t < d); ``width`` must be a pool
width; the first ``⌊d/2⌋`` positions come from the next narrower instance (if any), the
rest from the instance of ``width`` (narrow early, wide late, as SN-Net's stitches).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from learngene.gene import Learngene, arch_from_meta
from learngene.vit import (
    DIST_TOKEN,
    average_heads,
    create_vit,
    head_keys,
    split_blocks,
    stem_keys,
    vit_shapes,
)

#: a path: (instance index, block indices of that instance) per segment
Path = list[tuple[int, list[int]]]


def _sizes(meta: Mapping[str, Any]) -> tuple[list[int], int, int]:
    """``(pool_widths, pool_depth, head_dim)`` with checks."""
    arch = arch_from_meta(meta)
    widths, depth = meta["pool_widths"], meta["pool_depth"]
    head_dim = arch["embed_dim"] // arch["num_heads"]
    if (
        not isinstance(widths, (list, tuple))
        or not widths
        or any(not isinstance(w, int) or w < 1 or w % head_dim for w in widths)
        or list(widths) != sorted(set(widths))
    ):
        raise ValueError(f"pool_widths must be ascending multiples of head_dim {head_dim}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"pool_depth must be a positive integer, got {depth!r}")
    if max(widths) != arch["embed_dim"]:
        raise ValueError(f"embed_dim {arch['embed_dim']} must be the widest pool width")
    return list(widths), depth, head_dim


def instance_arch(meta: Mapping[str, Any], n: int) -> dict[str, Any]:
    """`create_vit` arguments of pool instance ``n``."""
    widths, depth, head_dim = _sizes(meta)
    arch = arch_from_meta(meta)
    return {**arch, "embed_dim": widths[n], "num_heads": widths[n] // head_dim, "depth": depth}


def stitch_keys(meta: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """``(a, b, p)`` of every stitch: ordered instance pairs, positions 1..D−1."""
    widths, depth, _ = _sizes(meta)
    n = len(widths)
    return [(a, b, p) for a in range(n) for b in range(n) if a != b for p in range(1, depth)]


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape: every instance's ViT and every stitch."""
    widths, _, _ = _sizes(meta)
    shapes = {}
    for n in range(len(widths)):
        shapes |= {f"instance.{n}.{k}": s for k, s in vit_shapes(**instance_arch(meta, n)).items()}
    for a, b, p in stitch_keys(meta):
        shapes[f"stitch.{a}.{b}.{p}.weight"] = (widths[b], widths[a])
        shapes[f"stitch.{a}.{b}.{p}.bias"] = (widths[b],)
    return shapes


def default_path(meta: Mapping[str, Any], depth: int, width: int) -> Path:
    """The path `build_descendant` takes for ``depth`` and ``width`` (module docstring)."""
    widths, d_max, _ = _sizes(meta)
    if width not in widths:
        raise ValueError(f"pool descendant width must be one of {widths}, got {width}")
    if not 1 <= depth <= d_max:
        raise ValueError(f"pool descendant depth must be in 1..{d_max}, got {depth}")
    top = widths.index(width)
    positions = [t * d_max // depth for t in range(depth)]
    cut = depth // 2 if top > 0 else 0
    path = [(top - 1, positions[:cut])] if cut else []
    return [*path, (top, positions[cut:])]


def check_path(meta: Mapping[str, Any], path: Sequence[tuple[int, Sequence[int]]]) -> Path:
    """``path`` as a `Path`, or ValueError saying what is wrong with it."""
    widths, d_max, _ = _sizes(meta)
    out: Path = []
    last = -1
    for n, blocks in path:
        blocks = [int(b) for b in blocks]
        if not 0 <= n < len(widths) or not blocks:
            raise ValueError(f"path segment ({n}, {blocks}): no such instance or no blocks")
        if out and out[-1][0] == n:
            raise ValueError("consecutive path segments must use different instances")
        if blocks[0] <= last or blocks != sorted(set(blocks)) or blocks[-1] >= d_max:
            raise ValueError(f"block positions must increase along the path within 0..{d_max - 1}")
        if out and blocks[0] == 0:
            raise ValueError("a stitched segment cannot start at position 0")
        out.append((int(n), blocks))
        last = blocks[-1]
    if not out:
        raise ValueError("empty path")
    return out


class StitchedViT(nn.Module):
    """A ViT made of segments of different widths joined by linear stitches.

    ``forward`` is timm's ViT forward (patch embedding + position embedding, blocks, token
    average, ``fc_norm``, head) with a stitch ``Linear`` between segments. With a
    distillation token (``distill_token`` in the archs) it is `vit.DistilledViT`'s: the
    first instance's token before the patch tokens, crossing the stitches with them, the
    last instance's ``head_dist`` on it.
    """

    def __init__(
        self,
        segment_archs: Sequence[dict[str, Any]],
        lengths: Sequence[int],
        num_classes: int,
        *,
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        first = create_vit(**{**segment_archs[0], "depth": 0}, seed=seed, **kw)
        self.patch_embed, self.pos_embed, self.pos_drop = (
            first.patch_embed,
            first.pos_embed,
            first.pos_drop,
        )
        self.segments = nn.ModuleList(
            create_vit(**{**a, "depth": n}, seed=seed, **kw).blocks
            for a, n in zip(segment_archs, lengths, strict=True)
        )
        widths = [a["embed_dim"] for a in segment_archs]
        self.stitches = nn.ModuleList(nn.Linear(i, o) for i, o in itertools.pairwise(widths))
        last = create_vit(
            **{**segment_archs[-1], "depth": 0, "num_classes": num_classes}, seed=seed
        )
        self.fc_norm, self.head = last.fc_norm, last.head
        self.dist_token = getattr(first, DIST_TOKEN, None)
        self.head_dist = getattr(last, "head_dist", None)
        self.num_classes = num_classes
        self.input_kind = "images"

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", DIST_TOKEN}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens leaving the last segment (the distillation token first, if any)."""
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed)
        if self.dist_token is not None:
            x = torch.cat([self.dist_token.expand(x.shape[0], -1, -1), x], dim=1)
        for s, blocks in enumerate(self.segments):
            if s:
                x = self.stitches[s - 1](x)
            x = blocks(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_features(x)
        if self.dist_token is None:
            return self.head(self.fc_norm(x.mean(dim=1)))
        cls = self.head(self.fc_norm(x[:, 1:].mean(dim=1)))
        dist = self.head_dist(self.fc_norm(x[:, 0]))
        return (cls, dist) if self.training else average_heads(cls, dist)


def expand(
    learngene: Learngene | Mapping[str, torch.Tensor],
    path: Sequence[tuple[int, Sequence[int]]],
    *,
    include_head: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """State dict of the `StitchedViT` of ``path``: a pure map from the pool's tensors."""
    tensors = learngene.tensors if isinstance(learngene, Learngene) else learngene
    meta = learngene.meta if isinstance(learngene, Learngene) else meta
    path = check_path(meta, path)
    first, last = path[0][0], path[-1][0]
    out = {
        "patch_embed.proj.weight": tensors[f"instance.{first}.patch_embed.proj.weight"],
        "patch_embed.proj.bias": tensors[f"instance.{first}.patch_embed.proj.bias"],
        "pos_embed": tensors[f"instance.{first}.pos_embed"],
        "fc_norm.weight": tensors[f"instance.{last}.fc_norm.weight"],
        "fc_norm.bias": tensors[f"instance.{last}.fc_norm.bias"],
    }
    prefix = f"instance.{first}."  # a conv stem comes with the first instance's embedding
    own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    out |= {k: own[k] for k in stem_keys(own)}
    if DIST_TOKEN in own:  # the distillation token enters with the first instance's embedding
        out[DIST_TOKEN] = own[DIST_TOKEN]
    if include_head:  # head (and distillation head) of the last instance
        top = {k[len(f"instance.{last}.") :] for k in tensors if k.startswith(f"instance.{last}.")}
        out |= {k: tensors[f"instance.{last}.{k}"] for k in head_keys(top)}
    for s, (n, blocks) in enumerate(path):
        inst = {
            k[len(f"instance.{n}.") :]: v
            for k, v in tensors.items()
            if k.startswith(f"instance.{n}.")
        }
        by_block, _ = split_blocks(inst)
        for t, b in enumerate(blocks):
            out |= {f"segments.{s}.{t}.{k}": v for k, v in by_block[b].items()}
        if s:
            key = f"stitch.{path[s - 1][0]}.{n}.{blocks[0]}"
            out[f"stitches.{s - 1}.weight"] = tensors[f"{key}.weight"]
            out[f"stitches.{s - 1}.bias"] = tensors[f"{key}.bias"]
    return out


def build_stitched(
    learngene: Learngene,
    path: Sequence[tuple[int, Sequence[int]]],
    num_classes: int,
    *,
    include_head: bool = True,
    seed: int | None = None,
    **kw,
) -> StitchedViT:
    """The `StitchedViT` of ``path``, its weights from the pool (head: see ``include_head``)."""
    path = check_path(learngene.meta, path)
    model = StitchedViT(
        [instance_arch(learngene.meta, n) for n, _ in path],
        [len(b) for _, b in path],
        num_classes,
        seed=seed,
        **kw,
    )
    state = expand(learngene, path, include_head=include_head)
    result = model.load_state_dict(state, strict=False)
    allowed = set() if include_head else set(head_keys(model.state_dict()))
    if set(result.missing_keys) - allowed or result.unexpected_keys:
        raise RuntimeError(f"pool state does not fit: {result}")
    return model


# ----------------------------------------------------------------- building a pool


def pool_meta(arch: Mapping[str, Any], widths: Sequence[int], depth: int) -> dict[str, Any]:
    """Metadata of a pool of ``widths`` × ``depth`` with the geometry of ``arch``."""
    head_dim = arch["embed_dim"] // arch["num_heads"]
    meta = {
        "method": "pool",
        **{k: arch[k] for k in ("img_size", "patch_size", "in_chans", "num_classes", "mlp_ratio")},
        "qkv_bias": arch.get("qkv_bias", True),
        "stem_width": arch.get("stem_width", 0),
        "stem_norm": arch.get("stem_norm", "group"),
        "distill_token": bool(arch.get("distill_token", False)),
        "embed_dim": max(widths),
        "num_heads": max(widths) // head_dim,
        "depth": depth,
        "pool_widths": sorted(widths),
        "pool_depth": depth,
    }
    if isinstance(meta["img_size"], tuple):
        meta["img_size"] = list(meta["img_size"])
    _sizes(meta)
    return meta


@torch.no_grad()
def _features(vit: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Token features entering block 0, 1, …, D−1 of a timm ViT (``(B·N, C)`` each)."""
    h = vit._pos_embed(vit.patch_embed(x))  # timm's: position embedding (+ token)
    out = []
    for block in vit.blocks:
        out.append(h.reshape(-1, h.shape[-1]))
        h = block(h)
    return out


@torch.no_grad()
def init_stitches(
    instances: Sequence[nn.Module], images: torch.Tensor, meta: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Stitch tensors by least squares (SN-Net): ``[X 1]·[Wᵀ; b] ≈ Y`` on ``images``.

    ``X``: features of instance ``a`` leaving block ``p − 1``; ``Y``: features of instance
    ``b`` entering block ``p``; token by token over the images.
    """
    feats = [_features(vit.eval(), images) for vit in instances]
    out = {}
    for a, b, p in stitch_keys(meta):
        x, y = feats[a][p].double(), feats[b][p].double()  # entering p = leaving p − 1
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        sol = torch.linalg.lstsq(x1, y).solution  # (w_a + 1) × w_b
        out[f"stitch.{a}.{b}.{p}.weight"] = sol[:-1].T.float().contiguous()
        out[f"stitch.{a}.{b}.{p}.bias"] = sol[-1].float().contiguous()
    return out


def random_path(meta: Mapping[str, Any], rng: random.Random) -> Path:
    """A random two-segment path over all D positions (a cut at 1..D−1, two instances)."""
    widths, depth, _ = _sizes(meta)
    if len(widths) < 2 or depth < 2:
        return [(rng.randrange(len(widths)), list(range(depth)))]
    a, b = rng.sample(range(len(widths)), 2)
    cut = rng.randrange(1, depth)
    return [(a, list(range(cut))), (b, list(range(cut, depth)))]


class PoolAuxNet(nn.Module):
    """The pool with its stitches, for training the stitches by sampled paths.

    In training mode every forward runs a `random_path` (the instances' parameters are
    frozen, the stitches are the trainable parameters); in eval mode it runs
    ``eval_path`` (default: the widest instance's second half after the next narrower
    one's first half), so the engine's validation scores one fixed stitched model. A
    BatchNorm stem is a real module of its instance: in training mode it normalises by
    the batch and keeps updating its running statistics on the source events, which
    `learngene` stores with the instance.
    """

    def __init__(
        self, learngene: Learngene, *, seed: int = 0, eval_path: Path | None = None
    ) -> None:
        super().__init__()
        self.meta = dict(learngene.meta)
        widths, depth, _ = _sizes(self.meta)
        self.instances = nn.ModuleList()
        for n in range(len(widths)):
            vit = create_vit(**instance_arch(self.meta, n))
            prefix = f"instance.{n}."
            vit.load_state_dict(
                {k[len(prefix) :]: v for k, v in learngene.tensors.items() if k.startswith(prefix)}
            )
            vit.requires_grad_(False)
            self.instances.append(vit)
        self.stitches = nn.ParameterDict(
            {
                k.replace(".", "_"): nn.Parameter(v.clone())
                for k, v in learngene.tensors.items()
                if k.startswith("stitch.")
            }
        )
        self.rng = random.Random(seed)
        self.eval_path = eval_path or default_path(self.meta, depth, max(widths))
        self.input_kind = "images"

    def learngene(self) -> Learngene:
        """The pool with the current stitches."""
        tensors = {
            f"instance.{n}.{k}": v.detach().clone()
            for n, vit in enumerate(self.instances)
            for k, v in vit.state_dict().items()
        }
        tensors |= {k.replace("_", "."): v.detach().clone() for k, v in self.stitches.items()}
        return Learngene(meta=dict(self.meta), tensors=tensors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = random_path(self.meta, self.rng) if self.training else self.eval_path
        (first, _), (last, _) = path[0], path[-1]
        vit = self.instances[first]
        h = vit._pos_embed(vit.patch_embed(x))  # timm's: position embedding (+ token)
        for s, (n, blocks) in enumerate(path):
            if s:
                key = f"stitch_{path[s - 1][0]}_{n}_{blocks[0]}"
                h = h @ self.stitches[key + "_weight"].T + self.stitches[key + "_bias"]
            for b in blocks:
                h = self.instances[n].blocks[b](h)
        return self.instances[last].forward_head(h)  # timm's pool, fc_norm, head(s)


def pool_learngene(
    instances: Iterable[nn.Module], stitches: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Learngene:
    """A pool `Learngene` from trained instances and stitch tensors."""
    tensors = {
        f"instance.{n}.{k}": v.detach().cpu().clone()
        for n, vit in enumerate(instances)
        for k, v in vit.state_dict().items()
    }
    tensors |= {k: v.detach().cpu().clone() for k, v in stitches.items()}
    return Learngene(meta=dict(meta), tensors=tensors)
