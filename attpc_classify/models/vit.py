"""Vision transformers of any depth, width, heads and patch: timm's `VisionTransformer`.

No class token and global average pooling over the patch tokens, so the parameter set is
the same for every depth and a learngene descendant (built by ``learngene``) loads
straight into it: the block names stay timm's (``blocks.{i}.attn.qkv.weight``, ...).
`vit_args` is the one place that turns a config into constructor arguments; the
learngene library calls it too, so both sides build identical architectures.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from data_prep.errors import InputError
from data_prep.images import ImageConfig

#: sizes used when the config leaves them at 0: a CPU-friendly ViT for 64 x 64 images
VIT_DEFAULTS = {"depth": 4, "width": 192, "heads": 3, "patch": 8}


def vit_args(cfg: Any, image_config: ImageConfig, num_classes: int) -> dict[str, Any]:
    """Constructor arguments of `create_vit` for a `ModelConfig` and an image config.

    Parameters
    ----------
    cfg
        `attpc_classify.train_config.ModelConfig` (``depth``, ``width``, ``heads``,
        ``patch``, ``stem_width``, ``stem_norm``, ``mlp_ratio``, ``drop_path``,
        ``dropout``; zeros mean `VIT_DEFAULTS`, ``stem_width`` 0 timm's patch embedding).
    image_config
        Gives ``img_size`` (pixels per side) and ``in_chans`` (number of views).
    num_classes
        Outputs of the head.
    """
    size = {k: getattr(cfg, k) or v for k, v in VIT_DEFAULTS.items()}
    if size["width"] % size["heads"]:
        raise InputError(f"model.width {size['width']} must be a multiple of model.heads")
    if image_config.size % size["patch"]:
        raise InputError(
            f"image size {image_config.size} must be a multiple of model.patch {size['patch']}"
        )
    return {
        "img_size": image_config.size,
        "patch_size": size["patch"],
        "in_chans": image_config.n_channels,
        "num_classes": num_classes,
        "embed_dim": size["width"],
        "depth": size["depth"],
        "num_heads": size["heads"],
        "mlp_ratio": float(cfg.mlp_ratio),
        "qkv_bias": True,
        "stem_width": int(cfg.stem_width),
        "stem_norm": str(cfg.stem_norm),
        "distill_token": bool(cfg.distill_token),
        "drop_path_rate": float(cfg.drop_path),
        "drop_rate": float(cfg.dropout),
    }


def create_vit(**kwargs: Any) -> nn.Module:
    """timm `VisionTransformer` without class token, average-pooled (see `vit_args`); the
    learngene layout's own constructor, so a conv stem (``stem_width``, ``stem_norm``) is
    built alike."""
    from learngene.vit import create_vit as learngene_vit

    return learngene_vit(**kwargs)
