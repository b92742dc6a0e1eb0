"""Learngene: condense a trained ViT into a compact, reusable initialiser for many sizes.

Methods (one file each, every weight map a pure ``state_dict -> state_dict`` function):

* `learngene.tleg` — TLEG, layers as a linear expansion θ_A + (l/L)·θ_B;
* `learngene.lets` — LeTs, width/depth transformation matrices on a small learngene;
* `learngene.ldr` — LDR, blocks as a Chebyshev/Taylor polynomial in layer position;
* `learngene.pool` — Learngene Pool, small distilled ViTs stitched into variable sizes;
* `learngene.inherit` — layer inheritance (Heur-/Auto-Learngene) and weight selection;
* `learngene.mmlg` — MM-LG for detector views, per-view blocks α_v·θ_MM + β_v·θ_UM(v).

Descendants are timm `VisionTransformer` s (`learngene.vit.create_vit`; pool:
`StitchedViT`; mmlg: `MultiViewViT`, one timm ViT per view); learngenes are
`Learngene` records (`learngene.gene`) saved as safetensors + JSON (`learngene.io`).
This package depends on torch and timm only.
"""

from learngene.descendant import build_descendant, descendant_state
from learngene.distill import distill_loss, kd_kl
from learngene.gene import Learngene, LearngeneError
from learngene.inherit import (
    blocks_by_cka,
    cka_matrix,
    inherit_layers,
    linear_cka,
    select_blocks_by_cka,
    weight_select,
    weight_select_learngene,
)
from learngene.io import load_learngene, save_learngene
from learngene.ldr import LDRAuxNet
from learngene.lets import LeTsAuxNet, Selection, parse_selection, select_rows
from learngene.mmlg import MMLGAuxNet, MultiViewViT
from learngene.pool import PoolAuxNet, StitchedViT
from learngene.storage import parameters_stored, storage_table
from learngene.tleg import TLEGAuxNet
from learngene.vit import create_vit, vit_arch

__all__ = [
    "LDRAuxNet",
    "LeTsAuxNet",
    "Learngene",
    "LearngeneError",
    "MMLGAuxNet",
    "MultiViewViT",
    "PoolAuxNet",
    "Selection",
    "StitchedViT",
    "TLEGAuxNet",
    "blocks_by_cka",
    "build_descendant",
    "cka_matrix",
    "create_vit",
    "descendant_state",
    "distill_loss",
    "inherit_layers",
    "kd_kl",
    "linear_cka",
    "load_learngene",
    "parameters_stored",
    "parse_selection",
    "save_learngene",
    "select_blocks_by_cka",
    "select_rows",
    "storage_table",
    "vit_arch",
    "weight_select",
    "weight_select_learngene",
]
