"""`build_model`: the model a `ModelConfig` describes, with its first weights.

The bare architecture comes from the registry (`attpc_classify.models.create_model`);
the first weights from what the config names: ImageNet (``pretrained_file``), a learngene
descendant (``init=learngene:PATH``) or another run (``init=run:DIR``, read with
`attpc_classify.checkpoint.read_run`). Reading runs puts this module above
`attpc_classify.checkpoint`, which itself rebuilds models from the registry below it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from attpc_classify.checkpoint import read_run
from attpc_classify.models import create_model, input_kind, model_args
from attpc_classify.models.cnn import load_imagenet_weights
from attpc_classify.models.vit import vit_args
from data_prep.errors import InputError
from data_prep.images import ImageConfig

logger = logging.getLogger(__name__)


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

    Examples
    --------
    >>> from attpc_classify.train_config import ModelConfig
    >>> m = build_model(ModelConfig(name="vit", depth=2), image_config=ImageConfig(),
    ...                 num_classes=3)  # doctest: +SKIP
    """
    if cfg.init.startswith("learngene:"):
        return _descendant(cfg, image_config, num_classes, output_names)
    model = create_model(cfg.name, model_args(cfg, image_config, num_classes))
    if cfg.pretrained_file:
        fresh = load_imagenet_weights(model, cfg.pretrained_file)
        logger.info(
            f"ImageNet weights from {cfg.pretrained_file}; fresh: {', '.join(fresh) or 'none'}"
        )
    # gbt + run:DIR refits on that run's training events (trees_adapt), copies nothing
    if cfg.init.startswith("run:") and cfg.name != "gbt":
        _init_from_run(model, cfg.init.partition(":")[2], output_names)
    return model


def _descendant(
    cfg: Any,
    image_config: ImageConfig,
    num_classes: int,
    output_names: tuple[str, ...] | None,
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
        if gene.method in ("pool", "mmlg"):
            # a StitchedViT / MultiViewViT is no `vit` the run files could rebuild
            raise InputError(
                f"a {gene.method} learngene builds a "
                f"{'stitched' if gene.method == 'pool' else 'multi-view'} ViT, not a `vit` "
                "model; use learngene.build_descendant or the transfer benchmark",
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
            # true: a DeiT token (fresh if the learngene has none); false: the learngene's
            distill_token=True if cfg.distill_token else None,
        )
        arch = learngene.vit_arch(model)
    except (learngene.LearngeneError, ValueError) as err:
        raise InputError(f"learngene: {err}", path=path) from None
    for key, want in (("img_size", image_config.size), ("in_chans", image_config.n_channels)):
        if arch[key] != want:
            raise InputError(
                f"learngene was made for {key}={arch[key]}, the images have {want}", path=path
            )
    spec = {k: arch[k] for k in ("img_size", "in_chans", "num_classes", "embed_dim", "depth",
                                 "num_heads", "mlp_ratio", "qkv_bias", "stem_width",
                                 "stem_norm", "distill_token")}  # fmt: skip
    spec |= {"patch_size": arch["patch_size"], "drop_path_rate": args["drop_path_rate"],
             "drop_rate": args["drop_rate"]}  # fmt: skip
    model.model_spec = {"name": "vit", "args": spec}
    model.input_kind = "images"
    logger.info(
        f"initialised from learngene {path}: depth {arch['depth']}, width {arch['embed_dim']}, "
        f"heads {arch['num_heads']}, patch {arch['patch_size']}"
    )
    return model


def _init_from_run(
    model: nn.Module,
    run_dir: str,
    output_names: tuple[str, ...] | None,
) -> None:
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
    logger.info(
        f"initialised from run {run_dir}: {len(copy)}/{len(target)} tensors copied"
        + (f"; fresh: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}" if fresh else "")
    )
