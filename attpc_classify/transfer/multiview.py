"""The benchmark's multi-view models: one ViT encoder per detector view (MM-LG, scratch).

``mmlg`` / ``mmlg_xy`` start from the MM-LG learngene (`learngene.mmlg`): every view's
encoder, or the pad plane's alone; ``scratch_views`` / ``scratch_xy`` are the same
`learngene.MultiViewViT` s with timm's random initialisation (per-view models from
scratch). All read the benchmark's multi-view images and use their own views' channels.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from attpc_classify.transfer.config import MULTIVIEW, BenchConfig


def build_multiview(
    cell, cfg: BenchConfig, gene_file: str | None, image_config, names: Sequence[str]
) -> nn.Module:
    """The initial `learngene.MultiViewViT` of a multi-view `grid.Cell` (seeded by it)."""
    import learngene

    views = MULTIVIEW[cell.strategy]
    if cell.strategy.startswith("mmlg"):
        return learngene.build_descendant(
            gene_file,
            depth=cell.depth,
            num_classes=len(names),
            width=cell.width,
            views=views,
            class_names=names,
            seed=cell.seed,
            drop_path_rate=cfg.vit.drop_path,
        )
    arch = dict(
        img_size=image_config.size,
        patch_size=cfg.vit.patch,
        in_chans=image_config.n_channels,
        embed_dim=cell.width,
        num_heads=cell.width // cfg.vit.head_dim,
        mlp_ratio=cfg.vit.mlp_ratio,
        qkv_bias=True,
        num_classes=len(names),
        depth=cell.depth,
        stem_width=cfg.vit.stem_width,
        stem_norm=cfg.vit.stem_norm,
    )
    return learngene.MultiViewViT(
        arch,
        image_config.views,
        len(image_config.pixel_values),
        views,
        cell.depth,
        len(names),
        seed=cell.seed,
        drop_path_rate=cfg.vit.drop_path,
    )
