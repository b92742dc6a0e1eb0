"""Every classifier behind one `build_model`.

=============  ======================================================  ========
name           model                                                   input
=============  ======================================================  ========
``logreg``     logistic regression on 20^3 L2-normalised voxels         voxels
``voxel_mlp``  small fully connected net on the same voxels             voxels
``cnn``        small CNN trained from scratch                          images
``timm_cnn``   any timm CNN, ``in_chans`` adapted, optional ImageNet    images
``vit``        timm VisionTransformer, no class token, average pooled  images
=============  ======================================================  ========

`model_args` turns a `ModelConfig` into constructor arguments (the sizes actually used,
defaults filled in); `create_model` builds the bare architecture from them -- that pair
is what a checkpoint records, so `attpc_classify.checkpoint.load_run` rebuilds any run.
`build_model` adds the first weights the config asks for: ImageNet (``pretrained_file``),
a learngene descendant (``init=learngene:PATH``) or another run (``init=run:DIR``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from data_prep.errors import InputError
from data_prep.images import ImageConfig

from .cnn import SmallCNN, create_timm_cnn, load_imagenet_weights
from .vit import create_vit, vit_args
from .voxel import VoxelLogReg, VoxelMLP

#: sizes used where a ModelConfig leaves depth/width at 0 (vit: see vit.VIT_DEFAULTS)
FAMILY_DEFAULTS: dict[str, dict[str, int]] = {
    "cnn": {"width": 32, "depth": 3},
    "voxel_mlp": {"width": 256, "depth": 2},
}
VOXEL_MODELS = ("logreg", "voxel_mlp")


def input_kind(model_or_name: nn.Module | str) -> str:
    """``"voxels"`` or ``"images"``: what a model (or model family name) reads."""
    if isinstance(model_or_name, str):
        return "voxels" if model_or_name in VOXEL_MODELS else "images"
    return getattr(model_or_name, "input_kind", "images")


def model_args(cfg: Any, image_config: ImageConfig, num_classes: int) -> dict[str, Any]:
    """Constructor arguments for `create_model` (``cfg``: a `ModelConfig`)."""
    name = cfg.name
    if name in VOXEL_MODELS:
        if not image_config.voxel_grid:
            raise InputError(f"model {name} needs voxels: preprocess with voxel_grid > 0")
        if name == "logreg":
            return {"grid": image_config.voxel_grid, "num_classes": num_classes}
        size = {k: getattr(cfg, k) or v for k, v in FAMILY_DEFAULTS[name].items()}
        return {"grid": image_config.voxel_grid, "num_classes": num_classes, **size,
                "dropout": float(cfg.dropout)}  # fmt: skip
    in_chans = len(image_config.views)
    if name == "cnn":
        size = {k: getattr(cfg, k) or v for k, v in FAMILY_DEFAULTS["cnn"].items()}
        if image_config.size < 2 ** size["depth"]:
            raise InputError(f"image size {image_config.size} is too small for a CNN of "
                             f"depth {size['depth']} (needs >= {2 ** size['depth']})")  # fmt: skip
        return {"in_chans": in_chans, "num_classes": num_classes, **size,
                "dropout": float(cfg.dropout), "global_pool": cfg.global_pool}  # fmt: skip
    if name == "timm_cnn":
        return {
            "timm_name": cfg.timm_name,
            "in_chans": in_chans,
            "num_classes": num_classes,
            "drop_rate": float(cfg.dropout),
            "drop_path_rate": float(cfg.drop_path),
            "global_pool": cfg.global_pool,
        }
    if name == "vit":
        return vit_args(cfg, image_config, num_classes)
    raise InputError(f"unknown model name {name!r}")


_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "logreg": VoxelLogReg,
    "voxel_mlp": VoxelMLP,
    "cnn": SmallCNN,
    "timm_cnn": create_timm_cnn,
    "vit": create_vit,
}


def create_model(name: str, args: dict[str, Any]) -> nn.Module:
    """The bare architecture ``name`` with constructor ``args`` (random weights).

    The module carries ``model_spec = {"name": name, "args": args}`` and ``input_kind``,
    which checkpoints record.
    """
    if name not in _FACTORIES:
        raise InputError(f"unknown model name {name!r}; one of {', '.join(_FACTORIES)}")
    model = _FACTORIES[name](**args)
    model.model_spec = {"name": name, "args": dict(args)}
    model.input_kind = input_kind(name)
    return model


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the classifier head (re-initialised for a new label space)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or "head"
    return (names,) if isinstance(names, str) else tuple(names)


def _is_head(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def build_model(
    cfg: Any,
    *,
    image_config: ImageConfig,
    num_classes: int,
    output_names: tuple[str, ...] | None = None,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """The model a `ModelConfig` describes, with its first weights.

    Parameters
    ----------
    cfg
        `attpc_classify.train_config.ModelConfig`.
    image_config
        Views (input channels), image size and voxel grid of the training images.
    num_classes
        Number of outputs.
    output_names
        Names of the outputs; with ``init=run:DIR`` the head is copied only when they
        equal the other run's.
    log
        Receives one line on what was loaded.

    Examples
    --------
    >>> from attpc_classify.train_config import ModelConfig
    >>> m = build_model(ModelConfig(name="vit", depth=2), image_config=ImageConfig(),
    ...                 num_classes=3)  # doctest: +SKIP
    """
    log = log or (lambda _msg: None)
    if cfg.init.startswith("learngene:"):
        return _descendant(cfg, image_config, num_classes, output_names, log)
    model = create_model(cfg.name, model_args(cfg, image_config, num_classes))
    if cfg.pretrained_file:
        fresh = load_imagenet_weights(model, cfg.pretrained_file)
        log(f"ImageNet weights from {cfg.pretrained_file}; fresh: {', '.join(fresh) or 'none'}")
    if cfg.init.startswith("run:"):
        _init_from_run(model, cfg.init.partition(":")[2], output_names, log)
    return model


def _descendant(
    cfg: Any,
    image_config: ImageConfig,
    num_classes: int,
    output_names: tuple[str, ...] | None,
    log: Callable[[str], None],
) -> nn.Module:
    """A ViT built by `learngene.build_descendant` (``init=learngene:PATH``).

    Depth comes from the config; width too when set (else the learngene's); heads follow
    the learngene's head dimension and patch size, image size and channels are the
    learngene's, which must match the images.
    """
    import learngene  # lazily: only this init needs it

    path = cfg.init.partition(":")[2]
    args = vit_args(cfg, image_config, num_classes)
    try:
        gene = learngene.load_learngene(path)
        if gene.method == "pool":
            # a StitchedViT is no `vit` the run files could rebuild
            raise InputError(
                "a pool learngene builds a stitched ViT, not a `vit` model; use "
                "learngene.build_descendant or the transfer benchmark",
                path=path,
            )
        model = learngene.build_descendant(
            gene,
            depth=args["depth"],
            num_classes=num_classes,
            width=cfg.width or None,
            class_names=output_names,
            drop_path_rate=args["drop_path_rate"],
            drop_rate=args["drop_rate"],
        )
        arch = learngene.vit_arch(model)
    except (learngene.LearngeneError, ValueError) as err:
        raise InputError(f"learngene: {err}", path=path) from None
    for key, want in (("img_size", image_config.size), ("in_chans", len(image_config.views))):
        if arch[key] != want:
            raise InputError(
                f"learngene was made for {key}={arch[key]}, the images have {want}", path=path
            )
    spec = {k: arch[k] for k in ("img_size", "in_chans", "num_classes", "embed_dim", "depth",
                                 "num_heads", "mlp_ratio", "qkv_bias")}  # fmt: skip
    spec |= {"patch_size": arch["patch_size"], "drop_path_rate": args["drop_path_rate"],
             "drop_rate": args["drop_rate"]}  # fmt: skip
    model.model_spec = {"name": "vit", "args": spec}
    model.input_kind = "images"
    log(
        f"initialised from learngene {path}: depth {arch['depth']}, width {arch['embed_dim']}, "
        f"heads {arch['num_heads']}, patch {arch['patch_size']}"
    )
    return model


def _init_from_run(
    model: nn.Module,
    run_dir: str,
    output_names: tuple[str, ...] | None,
    log: Callable[[str], None],
) -> None:
    from attpc_classify.checkpoint import read_run

    info, state = read_run(run_dir)
    if info.input != input_kind(model):
        raise InputError(f"run reads {info.input}, this model {input_kind(model)}", path=run_dir)
    heads = head_prefixes(model)
    keep_head = output_names is not None and tuple(output_names) == tuple(info.output_names)
    target = model.state_dict()
    copy = {
        k: v
        for k, v in state.items()
        if k in target and v.shape == target[k].shape and (keep_head or not _is_head(k, heads))
    }
    if not any(not _is_head(k, heads) for k in copy):
        raise InputError("no tensor of that run fits this model", path=run_dir)
    with torch.no_grad():
        model.load_state_dict(copy, strict=False)
    fresh = [k for k in target if k not in copy]
    log(
        f"initialised from run {run_dir}: {len(copy)}/{len(target)} tensors copied"
        + (f"; fresh: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}" if fresh else "")
    )
