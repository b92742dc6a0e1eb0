"""Parameters each learngene method stores to initialise ViTs of depths 2, 4, 6, 8, 12.

Compares with storing one trained model per depth ("scratch" / pre-train and fine-tune).
Counts come from the learngene artifacts' own shapes (`learngene.parameters_stored`).

    .venv/bin/python benchmarks/learngene_storage.py

Prints a table per architecture, then MM-LG against one per-view model per depth
(`learngene.MultiViewViT`: an encoder per view, as MM-LG's descendants) for 2 and 3
views, and ends with one JSON line of the ratios.
"""

from __future__ import annotations

import json

import learngene

DEPTHS = [2, 4, 6, 8, 12]
ARCHS = {
    # ViT-S width on ImageNet-sized inputs, as in the TLEG / LeTs papers
    "vit_s_224": dict(
        img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=384, num_heads=6
    ),
    # this project's images: 2 views, 64 px, 3 classes, the default ViT width
    "attpc_64": dict(
        img_size=64, patch_size=8, in_chans=2, num_classes=3, embed_dim=192, num_heads=3
    ),
}


def methods(embed_dim: int, head_dim: int) -> dict[str, dict]:
    half = embed_dim // 2 // head_dim * head_dim
    return {
        "tleg": {},
        "lets": {"learngene_width": half, "learngene_depth": 4, "aux_depth": 12},
        "ldr": {"components": 3},
        "inherit": {"learngene_depth": 3},
        "weight_select": {"depth": 12},
    }


def main() -> None:
    summary = {}
    for name, arch in ARCHS.items():
        head_dim = arch["embed_dim"] // arch["num_heads"]
        extra = methods(arch["embed_dim"], head_dim)
        table = learngene.storage_table(DEPTHS, extra, **arch)
        print(f"{name}: depths {DEPTHS}, width {arch['embed_dim']}, head_dim {head_dim}")
        print(f"  {'method':14s} {'parameters':>12s} {'scratch / method':>17s}  settings")
        for method, row in table.items():
            print(
                f"  {method:14s} {row['parameters']:>12,d} {row['ratio']:>16.2f}x  "
                f"{extra.get(method, {})}"
            )
        summary[name] = {m: round(r["ratio"], 2) for m, r in table.items()}
        summary[name]["scratch_parameters"] = table["scratch"]["parameters"]
    arch = ARCHS["attpc_64"]
    for views in (["xy", "zy"], ["xy", "zy", "zx"]):
        a = {**arch, "in_chans": len(views)}
        gene = learngene.parameters_stored("mmlg", DEPTHS, **a, views=views)
        models = learngene.parameters_stored("prefin_views", DEPTHS, **a, views=views)
        print(
            f"attpc_64, {len(views)} views {views}: per-view models {models:,}, mmlg {gene:,} "
            f"({gene / models:.1%}, {models / gene:.2f}x less)"
        )
        summary[f"mmlg_{len(views)}views"] = {"prefin_views": models, "mmlg": gene}
    print(json.dumps({"benchmark": "learngene_storage", "depths": DEPTHS, **summary}))


if __name__ == "__main__":
    main()
