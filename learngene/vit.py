"""The one ViT layout every learngene method maps into, and small helpers around it.

Descendants and Aux-Nets are plain timm `VisionTransformer` s with no class token, global
average pooling and timm's post-pool norm (``fc_norm``), so weights keep timm's own names
(``blocks.{i}.attn.qkv.weight``, ...). Aux-Nets run the same module with weights computed
on the fly (`skeleton` + `torch.func.functional_call`), which is why a descendant of the
Aux-Net's size computes exactly the Aux-Net's function: the forward code is timm's, once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
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
    "stem_width",  # 0 = timm's one-conv patch embedding, else `ConvStem` channels
    "stem_norm",  # a `ConvStem`'s norm layers: "group" (GroupNorm(1)) or "batch"
    "distill_token",  # a DeiT distillation token with its own head (`DistilledViT`)
)
#: `ARCH_KEYS` that metadata may omit (learngenes written before the key existed) and the
#: value their absence means: the architecture those files were written for
OPTIONAL_ARCH_KEYS: Mapping[str, object] = MappingProxyType(
    {"stem_width": 0, "stem_norm": "group", "distill_token": False}
)
#: a `ConvStem`'s norm layers (``stem_norm``)
STEM_NORMS = ("group", "batch")
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
#: a `DistilledViT`'s distillation token (width-dependent, carried like ``pos_embed``)
DIST_TOKEN = "dist_token"
#: a `DistilledViT`'s second classifier, on the distillation token (carried like the head)
DIST_HEAD_KEYS = ("head_dist.weight", "head_dist.bias")

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
#: parameters of a convolutional stem's early convolutions (not ``patch_embed.proj``), and
#: with ``stem_norm="batch"`` its BatchNorm buffers: they do not depend on the ViT's width,
#: so every method copies them unchanged
STEM_PREFIX = "patch_embed.stem."
#: the one integer tensor a learngene may hold: a stem BatchNorm's batch counter (a scalar)
BATCH_COUNT = "num_batches_tracked"


class ConvStem(nn.Module):
    """Early convolutions (Xiao et al. 2021) in place of the one-conv patch embedding.

    ``log2(patch_size)`` 3x3 convolutions of stride 2, each norm + GELU, with
    ``stem_width * 2**i`` channels, then a 1x1 convolution ``proj`` to ``embed_dim``:
    the same token grid as a ``patch_size`` patch embedding, seen through small receptive
    fields first. Only ``proj`` depends on the ViT's width; the convolutions and norms
    before it (``stem.*``) are shared unchanged by every descendant.

    ``stem_norm="group"`` (default): GroupNorm(1), no buffers and no train/eval
    difference, so the stem is plain parameters everywhere. ``"batch"``: BatchNorm2d, the
    paper's choice, at the same ``stem`` index (same parameter names) plus the buffers
    ``running_mean``, ``running_var`` and ``num_batches_tracked``. Fine-tuning then
    re-estimates the statistics on the target detector's events, as the CNN's BatchNorm
    does; that transferred far better in our pilot (docs/benchmark.md). Every learngene
    carries the buffers with the stem's parameters.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 32,
        patch_size: int = 8,
        in_chans: int = 2,
        embed_dim: int = 96,
        bias: bool = True,
        *,
        stem_width: int = 24,
        stem_norm: str = "group",
        **_: object,  # timm's other PatchEmbed arguments (dynamic_img_pad, ...) do not apply
    ):
        super().__init__()
        check_stem_norm(stem_norm, stem_width)
        steps = int(math.log2(patch_size))
        if patch_size < 2 or 2**steps != patch_size:
            raise ValueError(f"a conv stem needs a power-of-2 patch size, not {patch_size}")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if size[0] % patch_size or size[1] % patch_size:
            raise ValueError(f"image size {size} is not a multiple of patch size {patch_size}")
        self.img_size, self.patch_size = size, (patch_size, patch_size)
        self.grid_size = (size[0] // patch_size, size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten, self.dynamic_img_pad = True, False
        layers: list[nn.Module] = []
        c_in = in_chans
        for i in range(steps):
            c_out = stem_width * 2**i
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out) if stem_norm == "batch" else nn.GroupNorm(1, c_out),
                nn.GELU(),
            ]
            c_in = c_out
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, embed_dim, 1, bias=bias)
        self.norm = nn.Identity()

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.patch_size[0] if as_scalar else self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.stem(x))
        return x.flatten(2).transpose(1, 2)  # (B, tokens, embed_dim), as PatchEmbed


def with_arch_defaults(arch: Mapping[str, object]) -> dict[str, object]:
    """The `ARCH_KEYS` of ``arch``; the `OPTIONAL_ARCH_KEYS` it lacks as their defaults."""
    return {k: arch[k] if k in arch else OPTIONAL_ARCH_KEYS[k] for k in ARCH_KEYS}


def check_stem_norm(stem_norm: str, stem_width: int) -> None:
    """ValueError unless ``stem_norm`` is one of `STEM_NORMS` and, when ``"batch"``, there
    is a conv stem to hold it (``stem_width`` > 0)."""
    if stem_norm not in STEM_NORMS:
        raise ValueError(f"stem_norm must be one of {', '.join(STEM_NORMS)}, got {stem_norm!r}")
    if stem_norm == "batch" and not stem_width:
        raise ValueError("stem_norm 'batch' needs a conv stem (stem_width > 0)")


def stem_keys(names: Iterable[str]) -> tuple[str, ...]:
    """The conv stem's tensors (``patch_embed.stem.*``: convolution and norm parameters,
    BatchNorm buffers) among ``names``."""
    return tuple(k for k in names if k.startswith(STEM_PREFIX))


def shared_keys(names: Iterable[str]) -> tuple[str, ...]:
    """`SHARED_KEYS` plus `stem_keys` and the distillation token of ``names`` (a state
    dict or shape dict): the non-block, non-head parameters every descendant takes from
    its learngene."""
    names = tuple(names)
    return (*SHARED_KEYS, *stem_keys(names), *((DIST_TOKEN,) if DIST_TOKEN in names else ()))


def head_keys(names: Iterable[str]) -> tuple[str, ...]:
    """`HEAD_KEYS` plus the distillation head's when ``names`` has them: the classifier
    parameters, copied only when the label space matches."""
    names = tuple(names)
    return (*HEAD_KEYS, *(k for k in DIST_HEAD_KEYS if k in names))


@functools.cache
def distilled_vit_class() -> type:
    """`DistilledViT`, made on first use (timm is imported lazily)."""
    base = import_timm().models.vision_transformer.VisionTransformer

    class DistilledViT(base):
        """A learngene-layout ViT with DeiT's distillation token (Touvron et al. 2021).

        One learnable token ``dist_token`` (1 × 1 × width) is put before the patch tokens
        after their position embedding; it attends with them through every block. The
        class head (``head``) reads the average of the patch tokens as before (the token is
        a prefix token, left out of the pool); the distillation head ``head_dist`` reads
        the token. Both go through the same ``fc_norm``, as DeiT's two tokens go through
        its one final norm. Training mode returns ``(class_logits, dist_logits)`` (as
        DeiT's code); eval mode returns `average_heads` of the two: log of the mean of
        their softmaxes (DeiT's paper; its code averages the logits). Without classes
        (``num_classes=0``, an encoder) both heads are identities and every mode returns
        ``(pooled features, token features)``.

        The token has no position embedding of its own: DeiT adds a learned one to it,
        which is a learned constant added to a learned constant, so leaving it out changes
        nothing the model can express and keeps ``pos_embed`` one row per patch in every
        method. Initialisation as DeiT: token and head trunc-normal, std 0.02, bias 0.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.dist_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
            nn.init.trunc_normal_(self.dist_token, std=0.02)
            self.head_dist = nn.Identity()  # as DeiT: no head without classes
            if self.num_classes:
                self.head_dist = nn.Linear(self.embed_dim, self.num_classes)
                nn.init.trunc_normal_(self.head_dist.weight, std=0.02)
                nn.init.zeros_(self.head_dist.bias)
            self.num_prefix_tokens += 1  # timm's average pool skips prefix tokens

        def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
            x = super()._pos_embed(x)
            return torch.cat([self.dist_token.expand(x.shape[0], -1, -1), x], dim=1)

        def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
            cls = super().forward_head(x, pre_logits)
            if pre_logits:
                return cls
            dist = self.head_dist(self.head_drop(self.fc_norm(x[:, 0])))
            if self.training or not self.num_classes:  # head-less: both features, always
                return cls, dist
            return average_heads(cls, dist)

    return DistilledViT


def average_heads(cls_logits: torch.Tensor, dist_logits: torch.Tensor) -> torch.Tensor:
    """``log((softmax(a) + softmax(b)) / 2)``: logits whose softmax is the average of the
    two heads' probabilities (DeiT's inference; argmax = the averaged prediction)."""
    pair = torch.stack([cls_logits.float().log_softmax(-1), dist_logits.float().log_softmax(-1)])
    return torch.logsumexp(pair, dim=0) - math.log(2.0)


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
    stem_width: int = 0,
    stem_norm: str = "group",
    distill_token: bool = False,
    seed: int | None = None,
    **kw,
) -> VisionTransformer:
    """A timm ViT in the learngene layout: no class token, average pooling, ``fc_norm``.

    Parameters
    ----------
    img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio
        As in timm's `VisionTransformer` (sizes in pixels / channels).
    stem_width
        0: timm's patch embedding (one ``patch_size`` convolution); > 0: a `ConvStem`
        whose first convolution has this many channels.
    stem_norm
        The stem's norm layers, ``"group"`` (GroupNorm(1)) or ``"batch"`` (BatchNorm2d,
        needs ``stem_width`` > 0); see `ConvStem`.
    distill_token
        A `DistilledViT` (DeiT's distillation token and second head) instead of timm's
        `VisionTransformer`.
    seed
        Seeds timm's initialisation inside `torch.random.fork_rng`, so the caller's global
        RNG state is left untouched. ``None`` draws from the current global state.
    **kw
        Passed to `VisionTransformer` (``qkv_bias``, ``drop_path_rate``, ``drop_rate``, ...).
    """
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
    check_stem_norm(stem_norm, stem_width)
    if distill_token:
        vit_class = distilled_vit_class()
    else:
        vit_class = import_timm().models.vision_transformer.VisionTransformer
    if stem_width:
        kw["embed_layer"] = functools.partial(ConvStem, stem_width=stem_width, stem_norm=stem_norm)
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
    """A `create_vit` model whose parameters and buffers are ``None`` except those in ``keep``.

    The blocks are built on the meta device, so a skeleton costs no memory; Aux-Nets run
    it with ``torch.func.functional_call(skeleton, weights, (x,))``, ``weights`` holding
    every ``None`` name. Names in ``keep`` (outside the blocks, e.g. ``"pos_embed"``, the
    stem's) are real and freshly initialised by timm: parameters trainable, buffers (a
    BatchNorm stem's running statistics) updated in place by the forward in train mode.
    """
    seed = arch.pop("seed", None)
    with torch.device("meta"):
        model = create_vit(**arch)
    real: dict[str, torch.Tensor] = {}
    if keep:
        fresh = create_vit(**{**arch, "depth": 0}, seed=seed)
        real = {**dict(fresh.named_parameters()), **dict(fresh.named_buffers())}
    for name, module in model.named_modules():
        for slots in (module._parameters, module._buffers):
            for key in list(slots):
                full = f"{name}.{key}" if name else key
                # a None parameter or buffer is skipped by .to(), .parameters() and
                # state_dict() (never a meta tensor), and functional_call fills it for the
                # duration of one forward
                slots[key] = real[full] if full in keep else None
        if module._buffers.get(BATCH_COUNT, 0) is None:
            module.register_load_state_dict_pre_hook(_drop_batch_count)
    return model


def _drop_batch_count(module: nn.Module, state_dict: dict, prefix: str, *_: object) -> None:
    """Load hook of a skeleton BatchNorm whose buffers live elsewhere (LeTs, MM-LG).

    A state dict without torch's ``_metadata`` (a plain dict copy, as the engine's
    best-epoch weights; a safetensors checkpoint) sends BatchNorm down its version-1
    upgrade path, which adds ``num_batches_tracked`` for the empty slot and then fails
    the load as an unexpected key; the slot never holds state, so the key is dropped.
    """
    state_dict.pop(prefix + BATCH_COUNT, None)


def vit_arch(model: VisionTransformer) -> dict:
    """The `ARCH_KEYS` of a timm ViT in the learngene layout (clear error otherwise)."""
    if getattr(model, "has_class_token", True) or model.global_pool != "avg":
        raise ValueError("learngene needs a timm VisionTransformer without class token, avg pool")
    if model.num_reg_tokens or isinstance(model.fc_norm, nn.Identity):
        raise ValueError("learngene needs a ViT without register tokens and with fc_norm")
    block = model.blocks[0]
    embed = model.patch_embed
    img = tuple(embed.img_size)
    stem = isinstance(embed, ConvStem)
    return {
        "img_size": img[0] if img[0] == img[1] else list(img),
        "patch_size": int(embed.patch_size[0]),
        "in_chans": int(embed.stem[0].in_channels if stem else embed.proj.in_channels),
        "num_classes": int(model.num_classes),
        "embed_dim": int(model.embed_dim),
        "depth": len(model.blocks),
        "num_heads": int(block.attn.num_heads),
        "mlp_ratio": block.mlp.fc1.out_features / model.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
        "stem_width": int(embed.stem[0].out_channels) if stem else 0,
        "stem_norm": "batch" if stem and isinstance(embed.stem[1], nn.BatchNorm2d) else "group",
        "distill_token": hasattr(model, "dist_token"),
    }


def vit_shapes(**arch) -> dict[str, tuple[int, ...]]:
    """State-dict name -> shape of `create_vit(**arch)` (parameters and a BatchNorm stem's
    buffers), without allocating any weight."""
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
        if name.startswith(STEM_PREFIX):  # the stem's convolutions do not depend on width
            pass
        elif name == "attn.qkv.weight":
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
        elif name in ("pos_embed", "head.weight", DIST_TOKEN, "head_dist.weight"):
            # channels along the last dim
            v = v[..., :width]
        elif name in ("head.bias", "head_dist.bias"):
            pass
        else:  # every other tensor is indexed by residual channel along dim 0
            v = v[:width]
        out[key] = v
    return out


def num_parameters(tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of scalars in a state dict: the numbers stored, a BatchNorm stem's buffers
    (running mean, variance and its batch counter) included."""
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
