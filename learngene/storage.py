"""How many parameters must be kept to initialise a set of model sizes, per method.

The count is the size of the artifact each method saves (`learngene.io.expected_shapes`
of the metadata it would write), so the numbers are the files' own, not a formula kept
beside them. ``scratch`` / ``prefin`` store every trained model of every size. Numbers
stored, not only trainable ones: a BatchNorm stem's (``stem_norm="batch"``) running mean
and variance and its batch counter are counted, as the file holds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from learngene.io import expected_shapes
from learngene.mmlg import encoder_arch
from learngene.vit import head_keys, vit_shapes

METHODS = (
    "tleg",
    "lets",
    "ldr",
    "pool",
    "inherit",
    "weight_select",
    "mmlg",
    "scratch",
    "prefin",
    "prefin_views",
)


def parameters_stored(method: str, sizes: Sequence[int | Mapping[str, int]], **arch: Any) -> int:
    """Parameters to keep so that every size in ``sizes`` can be initialised.

    Parameters
    ----------
    method
        ``"tleg"``, ``"lets"``, ``"ldr"``, ``"pool"``, ``"inherit"``, ``"weight_select"``,
        or ``"scratch"`` / ``"prefin"`` (one trained model per size), ``"prefin_views"`` (one
        trained `learngene.MultiViewViT` per size: an encoder per view and a head).
    sizes
        Depths (ints, at width ``embed_dim``) or ``{"depth": d, "width": w}`` dicts.
    **arch
        ``img_size``, ``patch_size``, ``in_chans``, ``num_classes``, ``embed_dim``,
        ``num_heads`` (at ``embed_dim``; head_dim is fixed), ``mlp_ratio`` (4.0),
        ``qkv_bias`` (True), ``stem_width`` and ``stem_norm`` (a conv stem); for ``lets``
        ``learngene_width``, ``learngene_depth`` and ``aux_depth`` (default: the deepest
        size), ``coeff_share`` (2); for ``ldr`` ``components``, ``basis``; for ``pool``
        ``pool_widths``, ``pool_depth``; for ``inherit`` ``learngene_depth``; for ``mmlg``
        and ``prefin_views`` ``views`` and ``view_channels`` (1); for ``weight_select``
        ``depth`` of the ancestry (default: the deepest size).

    Examples
    --------
    >>> vit_s = dict(img_size=224, patch_size=16, in_chans=3, num_classes=1000,
    ...              embed_dim=384, num_heads=6)
    >>> parameters_stored("tleg", [2, 4, 6, 8, 12], **vit_s)  # θ_A, θ_B + embeddings + head
    4305256
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    arch = {"mlp_ratio": 4.0, "qkv_bias": True, **arch}
    pairs = [_size(s, arch["embed_dim"]) for s in sizes]
    if not pairs:
        raise ValueError("no sizes given")
    head_dim = arch["embed_dim"] // arch["num_heads"]
    deepest, widest = max(d for d, _ in pairs), max(w for _, w in pairs)
    if widest > arch["embed_dim"]:
        raise ValueError(f"width {widest} exceeds embed_dim {arch['embed_dim']}")
    extra = {
        k: arch.pop(k)
        for k in (
            "learngene_width",
            "learngene_depth",
            "aux_depth",
            "coeff_share",
            "components",
            "basis",
            "pool_widths",
            "pool_depth",
            "views",
            "view_channels",
        )
        if k in arch
    }
    base = {**arch, "depth": arch.pop("depth", deepest)}

    if method == "prefin_views":
        views, c = list(extra["views"]), extra.get("view_channels", 1)
        head = vit_shapes(**{**base, "depth": 0})
        per_size = [
            len(views) * _count(vit_shapes(**encoder_arch({**base, "embed_dim": w}, c, d)))
            + _count({k: head[k] for k in head_keys(head)})
            for d, w in pairs
        ]
        if any(w != arch["embed_dim"] for _, w in pairs):
            raise ValueError("prefin_views counts the learngene's width only")
        return sum(per_size)
    if method in ("scratch", "prefin"):
        return sum(
            _count(vit_shapes(**{**base, "depth": d, "embed_dim": w, "num_heads": w // head_dim}))
            for d, w in pairs
        )
    if method in ("tleg", "ldr", "mmlg") and any(w != arch["embed_dim"] for _, w in pairs):
        raise ValueError(f"{method} initialises the learngene's width only")
    meta: dict[str, Any] = {"method": method, **base}
    if method == "lets":
        meta.update(
            depth=extra.get("aux_depth", deepest),
            learngene_width=extra["learngene_width"],
            learngene_depth=extra["learngene_depth"],
            coeff_share=extra.get("coeff_share", 2),
        )
        if deepest > meta["depth"]:
            raise ValueError(f"depth {deepest} exceeds the LeTs Aux-Net depth {meta['depth']}")
    elif method == "ldr":
        meta.update(components=extra["components"], basis=extra.get("basis", "chebyshev"))
    elif method == "pool":
        widths = sorted(extra["pool_widths"])
        meta.update(
            embed_dim=widths[-1],
            num_heads=widths[-1] // head_dim,
            depth=extra["pool_depth"],
            pool_widths=widths,
            pool_depth=extra["pool_depth"],
        )
    elif method == "mmlg":
        meta.update(views=list(extra["views"]), view_channels=extra.get("view_channels", 1))
    elif method == "inherit":
        k = extra["learngene_depth"]
        meta.update(learngene_depth=k, source_blocks=list(range(k)))
    elif method == "weight_select" and deepest > meta["depth"]:
        raise ValueError(f"depth {deepest} exceeds the ancestry depth {meta['depth']}")
    return _count(expected_shapes(meta))


def storage_table(
    sizes: Sequence[int | Mapping[str, int]],
    methods: Mapping[str, Mapping[str, Any]],
    **arch: Any,
) -> dict[str, dict[str, float]]:
    """``{method: {"parameters": n, "ratio": scratch / n}}`` for several methods at once.

    ``methods`` maps a method name to its extra keywords (e.g. ``{"lets":
    {"learngene_width": 192, "learngene_depth": 4}}``); ``scratch`` is always included.
    """
    scratch = parameters_stored("scratch", sizes, **arch)
    table = {"scratch": {"parameters": scratch, "ratio": 1.0}}
    for method, extra in methods.items():
        n = parameters_stored(method, sizes, **arch, **extra)
        table[method] = {"parameters": n, "ratio": scratch / n}
    return table


def _size(size: int | Mapping[str, int], embed_dim: int) -> tuple[int, int]:
    if isinstance(size, Mapping):
        return int(size["depth"]), int(size.get("width", embed_dim))
    return int(size), embed_dim


def _count(shapes: Mapping[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())
