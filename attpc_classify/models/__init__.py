"""Every classifier family: the registry a checkpoint records and rebuilds.

=============  ======================================================  ========
name           model                                                   input
=============  ======================================================  ========
``logreg``     logistic regression on 20^3 L2-normalised voxels         voxels
``voxel_mlp``  small fully connected net on the same voxels             voxels
``cnn``        small CNN trained from scratch                          images
``timm_cnn``   any timm CNN, ``in_chans`` adapted, optional ImageNet    images
``vit``        timm VisionTransformer, no class token, average pooled  images
``gbt``        gradient-boosted trees on physics features (fitted by   features
               scikit-learn, walked as tensors; `models.gbt`)
=============  ======================================================  ========

`model_args` turns a `ModelConfig` into constructor arguments (the sizes actually used,
defaults filled in); `create_model` builds the bare architecture from them -- that pair
is what a checkpoint records, so `attpc_classify.checkpoint.load_run` rebuilds any run.
`attpc_classify.models.build.build_model` adds the first weights a config asks for
(ImageNet, a learngene, another run); it reads run directories, so it lives above
`attpc_classify.checkpoint`, and this registry below it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from data_prep.errors import InputError
from data_prep.images import ImageConfig

from .cnn import SmallCNN, create_timm_cnn
from .gbt import create_gbt
from .vit import create_vit, vit_args
from .voxel import VoxelLogReg, VoxelMLP

logger = logging.getLogger(__name__)

#: sizes used where a ModelConfig leaves depth/width at 0 (vit: see vit.VIT_DEFAULTS)
FAMILY_DEFAULTS: dict[str, dict[str, int]] = {
    "cnn": {"width": 32, "depth": 3},
    "voxel_mlp": {"width": 256, "depth": 2},
}
VOXEL_MODELS = ("logreg", "voxel_mlp")
FEATURE_MODELS = ("gbt",)
#: fitted by scikit-learn in one process, not by the epoch loop
SKLEARN_MODELS = ("logreg", "gbt")


def input_kind(model_or_name: nn.Module | str) -> str:
    """``"voxels"``, ``"features"`` or ``"images"``: what a model (or family name) reads."""
    if isinstance(model_or_name, str):
        if model_or_name in FEATURE_MODELS:
            return "features"
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
    if name in FEATURE_MODELS:
        if image_config.features == "none":
            raise InputError(f"model {name} needs features: preprocess with features=tracks_v2")
        names = list(image_config.feature_names)
        args = {"n_features": len(names), "num_classes": num_classes, "feature_names": names}
        from data_prep.features import NAMED_SETS, PAIR_SETS, pair_columns, track_columns

        if cfg.light_pair != "likeliest" and image_config.features not in PAIR_SETS:
            raise InputError(
                f"model.light_pair={cfg.light_pair} reads the track pairs of features=tracks_v6, "
                f"v8 or v9 (this file: {image_config.features})"
            )
        if image_config.features in NAMED_SETS:  # its five tracks are named first
            unit = image_config.charge_calibration != "none"
            args["track_columns"] = track_columns(image_config.features, run_unit=unit)
            if image_config.features in PAIR_SETS:  # and the light pair's columns read
                args["pair_columns"] = pair_columns(image_config.features, run_unit=unit)
                if cfg.light_pair != "likeliest":  # runs before it load as they were
                    args["light_pair"] = cfg.light_pair
            args["light_counts"] = True  # runs from before 2026-12-05 load without them
        return args
    in_chans = image_config.n_channels
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
    "gbt": create_gbt,
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
