"""LeTs: a compact learngene turned into ViTs of many sizes by learnable transformations.

Xia et al., "Initializing Variable-sized Vision Transformers from Learngene with Learnable
Transformation" (NeurIPS 2024). Shapes, ties, initialisations and the depth mapping follow
the official code (github.com/eddiexia98/LeTs, ``lets.py``, ``transmodule.py``,
``utils.initialize_model_with_lets_seq``), generalised from its one configuration
(8 → 16 layers) to any even ``k`` and any ``L ≥ k/2``; timm's fused ``qkv`` holds the
official separate q, k, v.

The learngene:

* a timm ViT of width ``w`` and ``k`` blocks (``patch_embed.*`` — with a conv stem its
  width-independent convolutions ``patch_embed.stem.*``, BatchNorm statistics included,
  are copied unchanged, its 1x1 ``proj`` expanded like the patch embedding —,
  ``blocks.{i}.*``,
  ``fc_norm.*``, ``head.*``) — without its own position embedding;
* ``pos_embed``: the Aux-Net's position embedding, ``W`` wide (the official code keeps it
  out of the transformation and descendants slice its first channels);
* width matrices (each new channel a learnable linear combination of learngene channels):
  ``width.embed`` F_e ``(W−w)×w`` (patch embedding, position-free residual stream: norms,
  qkv/fc1 inputs, proj/fc2 outputs, ``fc_norm``), ``width.head`` F_cls ``(W−w)×w`` (the
  classifier's inputs), and per learngene layer ``i``: ``width.{i}.q``, ``.k``, ``.v``
  ``(W−w)×w`` and ``width.{i}.ffn`` ``(rW−rw)×rw`` (MLP hidden units, ``r = mlp_ratio``);
* depth coefficients ``depth.weight`` and ``depth.bias``, ``(S, 8, 2)``: per coefficient set
  ``s`` and per sub-module (`SUBMODULES`: norm1, q, k, v, proj, norm2, fc1, fc2) two numbers
  mixing a window of two learngene layers, for weights and biases separately.

Width expansion with ``P = [I ; F]``: a weight ``M`` (out × in) becomes ``P_out M P_inᵀ``, a
bias ``b`` becomes ``P_out b``; the first channels are the learngene's own.

Depth: Aux-Net layer ``j`` (of ``L``) mixes the window ``(2m, 2m+1)``, ``m = ⌊j·(k/2)/L⌋``,
with coefficient set ``s = ⌊j / coeff_share⌋``: sub-module weight ``Σ_t c_w[s, sub, t]·E(θ)``
over the window's two learngene layers, its bias likewise with ``c_b``. The official code
has ``coeff_share = 2`` (layers 2s and 2s+1 share a set, so they start — and stay — equal);
``coeff_share = 1`` (one set per layer) is our option. ``k = 1`` has a window of one layer.

Initialisation (official defaults ``--trans_init_scheme stackbert_noisy rand``): every F row
uniform on [0, 1) normalised to sum 1 (``width_init="uniform"``); every coefficient vector
one-hot at ``(first layer of its set) mod window`` plus uniform [0, 0.03) noise, normalised
to sum 1. ``width_init="gaussian"`` (N(0, 1/w), ours) is kept as an option.

Descendants (width ``W' ≤ W``, depth ``d``) take the first ``W'−w`` rows of F_e, F_cls, F_q,
F_k, F_v, the first ``r(W'−w)`` rows of F_ffn and the first ``W'`` channels of
``pos_embed`` (``continuous``, the official code); layer ``t`` is the Aux-Net's layer
``layers[t]`` (its window and coefficient set: the official ``mapping_layer`` /
``mapping_layer_coeff`` lists). The default ``layers`` is ``⌊t·L/d⌋`` (ours: the official
code has hand-written lists only). ``magnitude`` selection (the paper's text, not its code)
picks rows by L1/L2 norm instead: residual channels by F_e rows (the same in F_cls and
``pos_embed``), whole attention heads by their q, k, v rows, MLP units by F_ffn rows, each
layer's score weighted by ``|c_w|`` of its window. Widths below ``w`` keep the learngene's
first channels.

A distillation token (``distill_token``, ours: the official code has none) is carried as
``pos_embed``: ``dist_token`` W wide outside the learngene proper, descendants take the
same channels; ``head_dist.*`` sits in the small ViT next to ``head.*`` and is expanded by
F_cls like it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from learngene.gene import AuxNet, Learngene, arch_from_meta
from learngene.vit import DIST_TOKEN, create_vit, skeleton, split_blocks, stem_keys, vit_shapes

#: per-layer width matrices
LAYER_MATRICES = ("q", "k", "v", "ffn")
#: sub-modules with their own depth coefficients (the official ``trans_depth_weight`` s)
SUBMODULES = ("norm1", "q", "k", "v", "proj", "norm2", "fc1", "fc2")
SELECTIONS = (
    "continuous",
    "magnitude",
    "magnitude-l1",
    "magnitude-l2",
    "magnitude-l1-smallest",
    "magnitude-l2-smallest",
)
WIDTH_INITS = ("uniform", "gaussian")
#: noise of the official ``stackbert_noisy`` depth initialisation
DEPTH_INIT_NOISE = 0.03


@dataclass(frozen=True)
class Selection:
    """How descendants pick rows of the width matrices.

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
    share: int  # Aux-Net layers per depth-coefficient set

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> LeTsArch:
        arch = arch_from_meta(meta)
        W, L, w, k = (
            arch["embed_dim"],
            arch["depth"],
            meta["learngene_width"],
            meta["learngene_depth"],
        )
        share = meta.get("coeff_share", 2)
        head_dim = W // arch["num_heads"]
        ratio = arch["mlp_ratio"]
        for name, v in (
            ("learngene_width", w),
            ("learngene_depth", k),
            ("depth", L),
            ("coeff_share", share),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if w > W or w % head_dim:
            raise ValueError(f"learngene_width {w} must be a multiple of head_dim {head_dim} ≤ {W}")
        if k > 1 and k % 2:
            raise ValueError(f"learngene_depth must be 1 or even (windows of 2 layers), got {k}")
        if L < max(1, k // 2):
            raise ValueError(f"depth {L} must be >= learngene_depth / 2 = {k // 2}")
        if float(ratio) != int(ratio):
            raise ValueError(f"LeTs needs an integer mlp_ratio, got {ratio}")
        return cls(w=w, W=W, k=k, L=L, head_dim=head_dim, ratio=int(ratio), share=share)

    @property
    def window(self) -> int:
        """Learngene layers mixed into one Aux-Net layer."""
        return 1 if self.k == 1 else 2

    @property
    def coeff_sets(self) -> int:
        return -(-self.L // self.share)

    def source_layers(self, j: int) -> tuple[int, ...]:
        """The learngene layers Aux-Net layer ``j`` mixes (official ``layer_mapping``)."""
        if self.k == 1:
            return (0,)
        m = j * (self.k // 2) // self.L
        return (2 * m, 2 * m + 1)

    def learngene_arch(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """`create_vit` arguments of the learngene's own small ViT."""
        return {
            **arch_from_meta(meta),
            "embed_dim": self.w,
            "depth": self.k,
            "num_heads": self.w // self.head_dim,
        }


def learngene_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a LeTs learngene (see the module docstring)."""
    a = LeTsArch.from_meta(meta)
    shapes = vit_shapes(**a.learngene_arch(meta))
    n_tokens = shapes["pos_embed"][1]
    shapes["pos_embed"] = (1, n_tokens, a.W)
    if DIST_TOKEN in shapes:  # carried as the position embedding: W wide, sliced
        shapes[DIST_TOKEN] = (1, 1, a.W)
    shapes["width.embed"] = (a.W - a.w, a.w)
    shapes["width.head"] = (a.W - a.w, a.w)
    for i in range(a.k):
        shapes.update({f"width.{i}.{m}": (a.W - a.w, a.w) for m in "qkv"})
        shapes[f"width.{i}.ffn"] = (a.ratio * (a.W - a.w), a.ratio * a.w)
    shapes["depth.weight"] = (a.coeff_sets, len(SUBMODULES), a.window)
    shapes["depth.bias"] = (a.coeff_sets, len(SUBMODULES), a.window)
    return shapes


def default_layers(depth: int, aux_depth: int) -> list[int]:
    """Aux-Net layers a ``depth``-layer descendant takes by default: ``⌊t·L/d⌋``."""
    return [t * aux_depth // depth for t in range(depth)]


def expand(
    learngene: Learngene,
    depth: int | None = None,
    width: int | None = None,
    selection: str | Selection = "continuous",
    *,
    layers: Sequence[int] | None = None,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    """State dict of a `create_vit` descendant of ``depth`` blocks and ``width`` ≤ W.

    A pure map (learngene in, timm state dict out); ``depth`` / ``width`` default to the
    Aux-Net's; ``layers`` (one Aux-Net layer index per descendant layer, the official
    ``mapping_layer``) defaults to `default_layers`.
    """
    a = LeTsArch.from_meta(learngene.meta)
    depth = a.L if depth is None else depth
    if layers is None:
        if not 1 <= depth <= a.L:
            raise ValueError(f"LeTs descendant depth must be in 1..{a.L}, got {depth}")
        layers = default_layers(depth, a.L)
    return _expand(
        learngene.tensors,
        a,
        list(layers),
        a.W if width is None else width,
        parse_selection(selection),
        include_head=include_head,
    )


def _expand(
    tensors: Mapping[str, torch.Tensor],
    a: LeTsArch,
    layers: list[int],
    width: int,
    sel: Selection,
    *,
    include_head: bool = True,
) -> dict[str, torch.Tensor]:
    if not layers or any(not 0 <= j < a.L for j in layers):
        raise ValueError(f"LeTs descendant layers must be Aux-Net layers in 0..{a.L - 1}")
    if not 0 < width <= a.W or width % a.head_dim:
        raise ValueError(
            f"LeTs descendant width must be a multiple of head_dim {a.head_dim} in "
            f"{a.head_dim}..{a.W}, got {width}"
        )
    n_new = max(width - a.w, 0)  # rows taken from every F
    cw, cb = tensors["depth.weight"], tensors["depth.bias"]
    res_rows = select_rows(tensors["width.embed"], n_new, sel)
    p_res = _projection(tensors["width.embed"], res_rows, a.w, width)
    blocks, rest = split_blocks(tensors)

    out: dict[str, torch.Tensor] = {}
    cache: dict[tuple, dict[str, torch.Tensor]] = {}  # (i, rows) -> expanded layer i
    for t, j in enumerate(layers):
        s, window = j // a.share, a.source_layers(j)
        att_rows, ffn_rows = _inner_rows(tensors, a, cw[s], window, n_new, sel)
        expanded = []
        for i in window:
            key = (i, tuple(att_rows.tolist()), tuple(ffn_rows.tolist()))
            if key not in cache:
                p_att = [
                    _projection(tensors[f"width.{i}.{m}"], att_rows, a.w, width) for m in "qkv"
                ]
                p_ffn = _projection(
                    tensors[f"width.{i}.ffn"], ffn_rows, a.ratio * a.w, a.ratio * width
                )
                cache[key] = _expand_block(blocks[i], p_res, p_att, p_ffn)
            expanded.append(cache[key])
        out.update({f"blocks.{t}.{n}": v for n, v in _mix(expanded, cw[s], cb[s]).items()})

    channels = torch.cat([torch.arange(min(a.w, width)), a.w + res_rows]).to(
        rest["pos_embed"].device
    )
    out["patch_embed.proj.weight"] = torch.einsum(
        "ow,wchk->ochk", p_res, rest["patch_embed.proj.weight"]
    )
    out["patch_embed.proj.bias"] = p_res @ rest["patch_embed.proj.bias"]
    out.update({k: rest[k] for k in stem_keys(rest)})  # width-independent: copied as is
    out["pos_embed"] = rest["pos_embed"][..., channels]
    if DIST_TOKEN in rest:  # the same channels as the position embedding
        out[DIST_TOKEN] = rest[DIST_TOKEN][..., channels]
    out["fc_norm.weight"] = p_res @ rest["fc_norm.weight"]
    out["fc_norm.bias"] = p_res @ rest["fc_norm.bias"]
    if include_head:
        p_cls = _projection(tensors["width.head"], res_rows, a.w, width)
        out["head.weight"] = rest["head.weight"] @ p_cls.T
        out["head.bias"] = rest["head.bias"]
        if "head_dist.weight" in rest:  # the distillation head reads the same features
            out["head_dist.weight"] = rest["head_dist.weight"] @ p_cls.T
            out["head_dist.bias"] = rest["head_dist.bias"]
    return out


def _mix(
    expanded: list[dict[str, torch.Tensor]], cw: torch.Tensor, cb: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Σ_t c[sub, t]·E_t per parameter; weights use ``cw`` (8 × window), biases ``cb``."""
    out = {}
    for name in expanded[0]:
        coeff = cb if name.endswith(".bias") else cw
        if name.startswith("attn.qkv."):  # q, k, v have their own coefficients
            parts = [
                sum(
                    coeff[SUBMODULES.index(m), t] * e[name].chunk(3)[c]
                    for t, e in enumerate(expanded)
                )
                for c, m in enumerate("qkv")
            ]
            out[name] = torch.cat(parts)
        else:
            sub = SUBMODULES.index(name.split(".")[-2])
            out[name] = sum(coeff[sub, t] * e[name] for t, e in enumerate(expanded))
    return out


def _inner_rows(
    tensors: Mapping[str, torch.Tensor],
    a: LeTsArch,
    cw: torch.Tensor,
    window: tuple[int, ...],
    n_new: int,
    sel: Selection,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the attention and MLP width matrices that one descendant layer uses."""
    if sel.kind == "continuous" or n_new == 0:
        return torch.arange(n_new), torch.arange(a.ratio * n_new)
    mix = cw.detach().abs()
    att = sum(
        mix[SUBMODULES.index(m), t] * row_scores(tensors[f"width.{i}.{m}"].detach(), sel.norm)
        for t, i in enumerate(window)
        for m in "qkv"
    )
    ffn = sum(
        mix[SUBMODULES.index("fc1"), t] * row_scores(tensors[f"width.{i}.ffn"].detach(), sel.norm)
        for t, i in enumerate(window)
    )
    # attention: whole heads (head_dim consecutive rows; w is a multiple of head_dim, so
    # new rows start on a head boundary)
    heads = _pick(att.reshape(-1, a.head_dim).sum(dim=1), n_new // a.head_dim, sel.largest)
    att_rows = (heads[:, None] * a.head_dim + torch.arange(a.head_dim)).flatten()
    return att_rows, _pick(ffn, a.ratio * n_new, sel.largest)


def _projection(f: torch.Tensor, rows: torch.Tensor, w: int, width: int) -> torch.Tensor:
    """``P = [I_w ; F[rows]]`` (``width × w``); the first ``width`` rows of I when narrower."""
    eye = torch.eye(w, dtype=f.dtype, device=f.device)
    if width <= w:
        return eye[:width]
    return torch.cat([eye, f[rows.to(f.device)]])


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


def init_width(
    rows: int, cols: int, scheme: str, generator: torch.Generator | None
) -> torch.Tensor:
    """A width matrix: ``uniform`` rows normalised to sum 1 (official), or N(0, 1/cols)."""
    if scheme == "uniform":
        f = torch.rand(rows, cols, generator=generator)
        return f / f.sum(dim=1, keepdim=True)
    if scheme == "gaussian":
        return torch.randn(rows, cols, generator=generator) * cols**-0.5
    raise ValueError(f"width_init must be one of {', '.join(WIDTH_INITS)}, got {scheme!r}")


def init_depth(a: LeTsArch, generator: torch.Generator | None) -> torch.Tensor:
    """Official ``stackbert_noisy``: one-hot at (first layer of the set) mod window + noise."""
    c = torch.rand(a.coeff_sets, len(SUBMODULES), a.window, generator=generator)
    c *= DEPTH_INIT_NOISE
    for s in range(a.coeff_sets):
        c[s, :, (s * a.share) % a.window] += 1.0
    return c / c.sum(dim=-1, keepdim=True)


class LeTsAuxNet(AuxNet):
    """Aux-Net of width ``embed_dim`` (W) and ``depth`` (L) built from a LeTs learngene.

    Trainable parameters are the learngene: ``core`` (a timm ViT of width
    ``learngene_width`` with ``learngene_depth`` blocks, its position embedding unused),
    ``vit.pos_embed`` (W wide), the width matrices and the depth coefficients. A
    BatchNorm stem's running statistics live in ``core`` (the skeleton's slots are empty)
    and are updated in place by every training forward. The forward
    expands them with the `expand` code (continuous selection, full size, layer ``j`` =
    Aux-Net layer ``j``) and runs timm's ViT on the result, so ``expand(learngene)`` loaded
    into `create_vit` computes the Aux-Net's function.

    ``coeff_share`` (2, official; 1 = one coefficient set per layer) and ``width_init``
    (``"uniform"``, official; ``"gaussian"``) are recorded or only used at initialisation.
    Stochastic depth is not supported; dropout keywords pass through to timm.
    """

    method = "lets"

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
        stem_width: int = 0,
        *,
        stem_norm: str = "group",
        coeff_share: int = 2,
        width_init: str = "uniform",
        seed: int | None = None,
        **kw,
    ) -> None:
        super().__init__()
        self._set_arch(locals())
        meta = self.learngene_meta()
        a = self.sizes = LeTsArch.from_meta(meta)
        token = (DIST_TOKEN,) if self.arch["distill_token"] else ()
        self.vit = skeleton(keep=("pos_embed", *token), seed=seed, **self.arch, **kw)
        self.core = create_vit(**a.learngene_arch(meta), seed=seed, **kw)
        # the learngene's position embedding (and distillation token) are the W-wide ones
        self.core.pos_embed = None
        if token:
            self.core.dist_token = None
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.widths = nn.ParameterDict()
        for name, shape in learngene_shapes(meta).items():
            if name.startswith("width."):
                self.widths[name[6:].replace(".", "_")] = nn.Parameter(
                    init_width(*shape, width_init, generator)
                )
        self.depth_weight = nn.Parameter(init_depth(a, generator))
        self.depth_bias = nn.Parameter(init_depth(a, generator))

    def learngene_tensors(self) -> dict[str, torch.Tensor]:
        """The learngene, named as in `learngene_shapes` (live parameters, not copies, and
        a BatchNorm stem's live buffers: the forward passes the core's on and so updates
        them)."""
        out = dict(self.core.named_parameters())
        out.update(self.core.named_buffers())
        out["pos_embed"] = self.vit.pos_embed
        if self.arch["distill_token"]:
            out[DIST_TOKEN] = self.vit.dist_token
        for key, p in self.widths.items():
            out["width." + key.replace("_", ".")] = p
        out["depth.weight"] = self.depth_weight
        out["depth.bias"] = self.depth_bias
        return out

    def no_weight_decay(self) -> set[str]:
        """Parameters an optimiser should not decay (timm's convention); decaying the depth
        coefficients would pull every Aux-Net layer towards zero."""
        return {"vit.pos_embed", "vit.dist_token", "depth_weight", "depth_bias"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.sizes
        # the weights in fp32 even under autocast (LayerNorm wants fp32 parameters); the
        # network's own forward still runs in the caller's precision
        with torch.autocast(x.device.type, enabled=False):
            weights = _expand(self.learngene_tensors(), a, list(range(a.L)), a.W, Selection())
        return functional_call(self.vit, weights, (x,))
