"""Small learngenes the learngene tests share (sizes of `ARCH` in those tests)."""

from __future__ import annotations

from pathlib import Path

import torch

import learngene as lg
from learngene import pool


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    """``n`` random two-view 16 x 16 images."""
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(seed))


def ancestry_descendants(arch: dict, tmp_path: Path, ancestry: torch.nn.Module | None = None):
    """A depth-3 ancestry ViT of ``arch`` (or ``ancestry`` as given) and the depth-2
    descendants of its ``inherit`` (k = 1) and ``weight_select`` (width 16) learngenes,
    saved and loaded as files.

    Returns ``(ancestry state, its vit_arch, [(method, width or None, descendant), ...])``.
    """
    if ancestry is None:
        ancestry = lg.create_vit(**arch, depth=3, seed=0)
    state, a = ancestry.state_dict(), lg.vit_arch(ancestry)
    out = []
    for gene in (
        lg.inherit.inherit_layers(state, a, 1),
        lg.inherit.weight_select_learngene(state, a),
    ):
        path = lg.save_learngene(tmp_path / gene.method, gene.tensors, gene.meta)
        width = 16 if gene.method == "weight_select" else None
        out.append(
            (gene.method, width, lg.build_descendant(path, depth=2, num_classes=3, width=width))
        )
    return state, a, out


def two_instance_pool(arch: dict, tmp_path: Path):
    """A pool of two depth-2 instances (widths 16, 32) of ``arch`` with least-squares
    stitches, saved: ``(learngene, instances, path)``."""
    meta = pool.pool_meta(dict(arch, mlp_ratio=4.0), [16, 32], 2)
    vits = [lg.create_vit(**pool.instance_arch(meta, n), seed=n).eval() for n in (0, 1)]
    stitches = pool.init_stitches(vits, images(8, seed=5), meta)
    gene = pool.pool_learngene(vits, stitches, meta)
    return gene, vits, lg.save_learngene(tmp_path / "pool", gene.tensors, gene.meta)


def saved_aux_is_its_descendant(aux: torch.nn.Module, tmp_path: Path, name: str):
    """Save ``aux``'s learngene, build the descendant of the Aux-Net's depth and check it
    computes the Aux-Net's function (eval mode); returns ``(learngene, path)``."""
    gene = aux.learngene()
    path = lg.save_learngene(tmp_path / name, gene.tensors, gene.meta)
    full = lg.build_descendant(path, depth=aux.arch["depth"], num_classes=3)
    aux.eval()
    with torch.no_grad():
        torch.testing.assert_close(full.eval()(images()), aux(images()), rtol=1e-5, atol=1e-5)
    return gene, path
