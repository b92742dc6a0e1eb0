"""LeTs: a compact learngene turned into ViTs of many sizes by learnable transformations.

After Xia et al., "Initializing Variable-sized Vision Transformers from Learngene with
Learnable Transformation" (NeurIPS 2024), written from the paper's description.

The learngene is a timm ViT of width ``w`` and ``k`` blocks (``blocks.{i}.*``, patch and
position embeddings, ``fc_norm``, head), plus

* width matrices, every one of shape ``(W − w) × w``: ``width.residual`` (F_e, shared by
  the whole residual stream) and, per learngene layer ``i``, ``width.{i}.q``, ``.k``,
  ``.v`` (attention) and ``.ffn`` (MLP hidden units);
* a depth matrix ``depth`` (G, ``L × k``) that mixes learngene layers into the Aux-Net's
  ``L`` layers.

Width expansion. With ``P = [I_w ; F]`` (``W × w``), a learngene weight ``M`` (out × in)
becomes ``P_out M P_inᵀ`` and a vector ``b`` becomes ``P_out b``: the first ``w``
channels are the learngene's own, each new channel is a learnable linear combination of
them. The residual stream uses F_e everywhere (patch embedding rows, position embedding,
LayerNorms, qkv/fc1 inputs, proj/fc2 outputs, ``fc_norm``, head inputs); q, k and v rows use
their layer's F_q, F_k, F_v, and proj's inputs use F_v (they consume v's channels). The
MLP hidden layer (``r·w`` units, ``r = mlp_ratio``, an integer) is read as ``r`` groups of
``w`` units and F_ffn acts on each group: ``P_ffn = [I_rw ; I_r ⊗ F_ffn]``. This keeps every
width matrix at ``(W − w) × w``, as the paper writes them, instead of ``r²`` times more.
Heads keep ``head_dim = W / num_heads``; widths are multiples of it.

Depth expansion. Aux layer ``j`` is ``Σ_i G[j, i] · E_i(θ_i)`` with ``E_i`` the width
expansion of learngene layer ``i`` (width first, then depth, as in the paper). G starts
as a stack: aux layer ``j`` copies learngene layer ``⌊j·k/L⌋``.

Descendants (width ``W' ≤ W``, depth ``d ≤ L``) select rows of the transformation:

* ``continuous``: the first ``W' − w`` rows of every F and the first ``d`` rows of G, so
  the descendant is the Aux-Net's first heads, channels and layers (the paper's code).
* ``magnitude``: rows by L1 or L2 norm, largest or smallest (in the paper, not in its
  code). Layers: the ``d`` rows of G of extreme norm, kept in order. Residual channels:
  rows of F_e by norm. Attention: whole heads, scored by the norms of their rows in
  F_q, F_k and F_v (one choice for q, k and v, so each query still meets its key);
  MLP: rows of F_ffn. Aux layer ``j`` mixes several learngene layers, so its per-row score
  is ``Σ_i |G[j, i]| · score(F_i row)``: one selection per aux layer, and the descendant
  stays a sub-network of the Aux-Net.

Widths below ``w`` keep the first channels of the learngene itself (no F rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from learngene.gene import Learngene, arch_from_meta
from learngene.vit import create_vit, skeleton, split_blocks, vit_shapes

#: per-layer width matrices
LAYER_MATRICES = ("q", "k", "v", "ffn")
SELECTIONS = (
    "continuous",
    "magnitude",
    "magnitude-l1",
    "magnitude-l2",
    "magnitude-l1-smallest",
    "magnitude-l2-smallest",
)


@dataclass(frozen=True)
class Selection:
    """How descendants pick rows of the transformation matrices.

    ``kind`` is ``"continuous"`` (first rows) or ``"magnitude"`` (rows by ``norm``,
    ``"l1"`` or ``"l2"``, the ``largest`` or the smallest).
    """

    kind: str = "continuous"
    norm: str = "l1"
    largest: bool = True


def parse_selection(selection: str | Selection) -> Selection:
    """``"continuous"``, ``"magnitude"`` (= L1, largest) or ``"magnitude-l2-smallest"`` etc."""
    if isinstance(selection, Selection):
        return selection
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; one of {', '.join(SELECTIONS)}")
    parts = selection.split("-")
    if parts[0] == "continuous":
        return Selection()
    norm = parts[1] if len(parts) > 1 else "l1"
    return Selection("magnitude", norm, largest=not selection.endswith("-smallest"))


def row_scores(matrix: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """L1 or L2 norm of every row of a 2-D matrix."""
    if norm == "l1":
        return matrix.abs().sum(dim=1)
    if norm == "l2":
        return matrix.norm(dim=1)
    raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")


def select_rows(
    matrix: torch.Tensor, n: int, selection: str | Selection = "continuous"
) -> torch.Tensor:
    """Indices (ascending) of ``n`` rows of ``matrix``: the first ones, or by magnitude.

    Examples
    --------
    >>> F = torch.tensor([[0.1, 0.0], [0.0, 0.2], [3.0, 0.0], [0.0, -4.0]])
    >>> select_rows(F, 2).tolist(), select_rows(F, 2, "magnitude-l1").tolist()
    ([0, 1], [2, 3])
    """
    sel = parse_selection(selection)
    if not 0 <= n <= matrix.shape[0]:
        raise ValueError(f"cannot select {n} of {matrix.shape[0]} rows")
    if sel.kind == "continuous":
        return torch.arange(n, device=matrix.device)
    return _pick(row_scores(matrix.detach(), sel.norm), n, sel.largest)


def _pick(scores: torch.Tensor, n: int, largest: bool) -> torch.Tensor:
    # stable sort: equal scores resolve to the lower index, so selection is deterministic
    order = torch.sort(scores, descending=largest, stable=True).indices[:n]
    return torch.sort(order).values


@dataclass(frozen=True)
class LeTsArch:
    """Sizes of a LeTs learngene: widths ``w`` → ``W``, depths ``k`` → ``L``."""

    w: int  # learngene width (channels)
    W: int  # Aux-Net width (channels)
    k: int  # learngene layers
    L: int  # Aux-Net layers
    head_dim: int  # channels per head, the same at every width
    ratio: int  # MLP hidden units per channel

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> LeTsArch:
        arch = arch_from_meta(meta)
        W, L, w, k = (
            arch["embed_dim"],
            arch["depth"],
            meta["learngene_width"],
            meta["learngene_depth"],
        )
        head_dim = W // arch["num_heads"]
        ratio = arch["mlp_ratio"]
        for name, v in (("learngene_width", w), ("learngene_depth", k), ("depth", L)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if w > W or w % head_dim:
            raise ValueError(f"learngene_width {w} must be a multiple of head_dim {head_dim} ≤ {W}")
        if float(ratio) != int(ratio):
            raise ValueError(f"LeTs needs an integer mlp_ratio, got {ratio}")
        return cls(w=w, W=W, k=k, L=L, head_dim=head_dim, ratio=int(ratio))

    def learngene_arch(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """`create_vit` arguments of the learngene's own small ViT."""
        return {
            **arch_from_meta(meta),
            "embed_dim": self.w,
            "depth": self.k,
            "num_heads": self.w // self.head_dim,
        }


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a LeTs learngene (small ViT, width and depth matrices)."""
    a = LeTsArch.from_meta(meta)
    shapes = vit_shapes(**a.learngene_arch(meta))
    shapes["width.residual"] = (a.W - a.w, a.w)
    for i in range(a.k):
        shapes.update({f"width.{i}.{m}": (a.W - a.w, a.w) for m in LAYER_MATRICES})
    shapes["depth"] = (a.L, a.k)
    return shapes


def expand(
    learngene: Learngene,
    depth: int | None = None,
    width: int | None = None,
    selection: str | Selection = "continuous",
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a `create_vit` descendant of ``depth`` ≤ L blocks and ``width`` ≤ W.

    A pure map (learngene in, timm state dict out); ``depth`` / ``width`` default to the
    Aux-Net's. See the module docstring for the selection rules.
    """
    a = LeTsArch.from_meta(learngene.meta)
    return _expand(
        learngene.tensors,
        a,
        a.L if depth is None else depth,
        a.W if width is None else width,
        parse_selection(selection),
        include_head=include_head,
    )


def _expand(
    tensors: Mapping[str, torch.Tensor],
    a: LeTsArch,
    depth: int,
    width: int,
    sel: Selection,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    if not 1 <= depth <= a.L:
        raise ValueError(f"LeTs descendant depth must be in 1..{a.L}, got {depth}")
    if not 0 < width <= a.W or width % a.head_dim:
        raise ValueError(
            f"LeTs descendant width must be a multiple of head_dim {a.head_dim} in "
            f"{a.head_dim}..{a.W}, got {width}"
        )
    n_new = max(width - a.w, 0)  # rows taken from every F
    f_res, g = tensors["width.residual"], tensors["depth"]
    layers = select_rows(g, depth, sel)
    p_res = _projection(f_res, select_rows(f_res, n_new, sel), a.w, width)
    blocks, rest = split_blocks(tensors)

    out: dict[str, torch.Tensor] = {}
    cache: dict[tuple, dict[str, torch.Tensor]] = {}  # (i, rows) -> expanded layer i
    for t, j in enumerate(layers.tolist()):
        att_rows, ffn_rows = _inner_rows(tensors, a, g[j], n_new, sel)
        mixed: dict[str, torch.Tensor] = {}
        for i in range(a.k):
            key = (i, tuple(att_rows.tolist()), tuple(ffn_rows.tolist()))
            if key not in cache:
                f = {m: tensors[f"width.{i}.{m}"] for m in LAYER_MATRICES}
                p_att = [_projection(f[m], att_rows, a.w, width) for m in "qkv"]
                p_ffn = _ffn_projection(f["ffn"], ffn_rows, a.w, a.ratio, width)
                cache[key] = _expand_block(blocks[i], p_res, p_att, p_ffn)
            for name, value in cache[key].items():
                term = g[j, i] * value
                mixed[name] = term if name not in mixed else mixed[name] + term
        out.update({f"blocks.{t}.{name}": v for name, v in mixed.items()})

    out["patch_embed.proj.weight"] = torch.einsum(
        "ow,wchk->ochk", p_res, rest["patch_embed.proj.weight"]
    )
    out["patch_embed.proj.bias"] = p_res @ rest["patch_embed.proj.bias"]
    out["pos_embed"] = rest["pos_embed"] @ p_res.T
    out["fc_norm.weight"] = p_res @ rest["fc_norm.weight"]
    out["fc_norm.bias"] = p_res @ rest["fc_norm.bias"]
    if include_head:
        out["head.weight"] = rest["head.weight"] @ p_res.T
        out["head.bias"] = rest["head.bias"]
    return out


def _inner_rows(
    tensors: Mapping[str, torch.Tensor],
    a: LeTsArch,
    g_row: torch.Tensor,
    n_new: int,
    sel: Selection,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the attention and MLP width matrices that one descendant layer uses."""
    if sel.kind == "continuous" or n_new == 0:
        rows = torch.arange(n_new, device=g_row.device)
        return rows, rows
    mix = g_row.detach().abs()
    att = sum(
        mix[i] * row_scores(tensors[f"width.{i}.{m}"].detach(), sel.norm)
        for i in range(a.k)
        for m in "qkv"
    )
    ffn = sum(mix[i] * row_scores(tensors[f"width.{i}.ffn"].detach(), sel.norm) for i in range(a.k))
    # attention: whole heads (head_dim consecutive rows; w is a multiple of head_dim, so
    # new rows start on a head boundary)
    heads = _pick(att.reshape(-1, a.head_dim).sum(dim=1), n_new // a.head_dim, sel.largest)
    att_rows = (
        heads[:, None] * a.head_dim + torch.arange(a.head_dim, device=heads.device)
    ).flatten()
    return att_rows, _pick(ffn, n_new, sel.largest)


def _projection(f: torch.Tensor, rows: torch.Tensor, w: int, width: int) -> torch.Tensor:
    """``P = [I_w ; F[rows]]`` (``width × w``); the first ``width`` rows of I when narrower."""
    eye = torch.eye(w, dtype=f.dtype, device=f.device)
    if width <= w:
        return eye[:width]
    return torch.cat([eye, f[rows]])


def _ffn_projection(
    f: torch.Tensor, rows: torch.Tensor, w: int, ratio: int, width: int
) -> torch.Tensor:
    """``[I_rw ; I_r ⊗ F[rows]]`` (``r·width × r·w``): F acts on each group of ``w`` units."""
    eye = torch.eye(ratio * w, dtype=f.dtype, device=f.device)
    if width <= w:
        return eye[: ratio * width]
    group = torch.eye(ratio, dtype=f.dtype, device=f.device)
    return torch.cat([eye, torch.kron(group, f[rows])])


def _expand_block(
    theta: Mapping[str, torch.Tensor],
    p_res: torch.Tensor,
    p_att: list[torch.Tensor],
    p_ffn: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Width expansion ``P_out M P_inᵀ`` of one learngene block."""
    p_q, p_k, p_v = p_att
    out = {}
    for name, v in theta.items():
        if name == "attn.qkv.weight":
            q, k, vv = v.chunk(3)
            out[name] = torch.cat([p_q @ q @ p_res.T, p_k @ k @ p_res.T, p_v @ vv @ p_res.T])
        elif name == "attn.qkv.bias":
            q, k, vv = v.chunk(3)
            out[name] = torch.cat([p_q @ q, p_k @ k, p_v @ vv])
        elif name == "attn.proj.weight":
            out[name] = p_res @ v @ p_v.T
        elif name == "mlp.fc1.weight":
            out[name] = p_ffn @ v @ p_res.T
        elif name == "mlp.fc1.bias":
            out[name] = p_ffn @ v
        elif name == "mlp.fc2.weight":
            out[name] = p_res @ v @ p_ffn.T
        elif name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"):
            out[name] = p_res @ v
        elif name in ("attn.proj.bias", "mlp.fc2.bias"):
            out[name] = p_res @ v
        else:
            raise ValueError(f"LeTs cannot expand block parameter {name!r}")
    return out


class _LayerWidth(nn.Module):
    """F_q, F_k, F_v, F_ffn of one learngene layer."""

    def __init__(self, rows: int, w: int, generator: torch.Generator | None) -> None:
        super().__init__()
        for m in LAYER_MATRICES:
            self.register_parameter(m, nn.Parameter(_init_width(rows, w, generator)))


def _init_width(rows: int, w: int, generator: torch.Generator | None) -> torch.Tensor:
    # std w^-1/2: a new channel F·h has about the variance of one learngene channel
    return torch.randn(rows, w, generator=generator) * w**-0.5


class LeTsAuxNet(nn.Module):
    """Aux-Net of width ``embed_dim`` (W) and ``depth`` (L) built from a LeTs learngene.

    Trainable parameters are the learngene: ``core`` (a timm ViT of width
    ``learngene_width`` with ``learngene_depth`` blocks), the width matrices
    (``width_residual``, ``width_layers.{i}.{q,k,v,ffn}``) and the depth matrix
    (``depth_weights``). The forward expands them with the `expand` code (continuous
    selection, full size) and runs timm's ViT on the result, so ``expand(learngene)``
    loaded into `create_vit` computes the Aux-Net's function.

    Stochastic depth is not supported; dropout keywords pass through to timm.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int],
        patch_size: int,
        in_chans: int,
        num_classes: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        learngene_width: int,
        learngene_depth: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        *,
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        if kw.get("drop_path_rate"):
            raise ValueError("LeTsAuxNet does not support drop_path_rate")
        self.arch = dict(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            learngene_width=learngene_width,
            learngene_depth=learngene_depth,
        )
        meta = self.learngene_meta()
        a = self.sizes = LeTsArch.from_meta(meta)
        vit_arch = {k: v for k, v in self.arch.items() if not k.startswith("learngene_")}
        self.vit = skeleton(**vit_arch, **kw)
        self.core = create_vit(**a.learngene_arch(meta), seed=seed, **kw)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.width_residual = nn.Parameter(_init_width(a.W - a.w, a.w, generator))
        self.width_layers = nn.ModuleList(
            _LayerWidth(a.W - a.w, a.w, generator) for _ in range(a.k)
        )
        stack = torch.zeros(a.L, a.k)
        stack[torch.arange(a.L), torch.arange(a.L) * a.k // a.L] = 1.0
        self.depth_weights = nn.Parameter(stack)

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        """The learngene, named as in `learngene_shapes` (live parameters, not copies)."""
        out = dict(self.core.named_parameters())
        out["width.residual"] = self.width_residual
        for i, layer in enumerate(self.width_layers):
            out.update({f"width.{i}.{m}": getattr(layer, m) for m in LAYER_MATRICES})
        out["depth"] = self.depth_weights
        return out

    def learngene_meta(self) -> dict[str, Any]:
        """Metadata for `save_learngene` (the application adds teacher, task, ...)."""
        meta = {"method": "lets", **self.arch}
        if isinstance(meta["img_size"], tuple):
            meta["img_size"] = list(meta["img_size"])
        return meta

    def learngene(self) -> Learngene:
        """A detached copy of the current learngene with its metadata."""
        tensors = {k: v.detach().clone() for k, v in self.learngene_tensors().items()}
        return Learngene(meta=self.learngene_meta(), tensors=tensors)

    @classmethod
    def from_learngene(cls, learngene: Learngene, **kw) -> LeTsAuxNet:
        """An Aux-Net (of the stored size) holding a saved learngene's tensors."""
        meta = learngene.meta
        aux = cls(
            **arch_from_meta(meta),
            learngene_width=meta["learngene_width"],
            learngene_depth=meta["learngene_depth"],
            **kw,
        )
        with torch.no_grad():
            for key, param in aux.learngene_tensors().items():
                param.copy_(learngene.tensors[key])
        return aux

    def no_weight_decay(self) -> set[str]:
        """Parameters an optimiser should not decay (timm's convention); decaying the depth
        matrix would pull every Aux-Net layer towards zero."""
        return {"core.pos_embed", "depth_weights"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.sizes
        weights = _expand(self.learngene_tensors(), a, a.L, a.W, Selection())
        return functional_call(self.vit, weights, (x,))
