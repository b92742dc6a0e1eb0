"""MM-LG for detector views: the weighted-sum blocks, single-view descendants, storage."""

from __future__ import annotations

import pytest
import torch

import learngene as lg
from learngene import mmlg

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=32, num_heads=4)
VIEWS = ["xy", "zy"]


def _aux(depth: int = 3, seed: int = 0) -> lg.MMLGAuxNet:
    return lg.MMLGAuxNet(**ARCH, depth=depth, views=VIEWS, view_channels=1, seed=seed)


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(0))


def test_weighted_sum_blocks_match_hand_numbers():
    gene = _aux().learngene()
    t = gene.tensors
    t["alpha"].copy_(torch.tensor([2.0, 3.0]))
    t["beta"].copy_(torch.tensor([0.5, -1.0]))
    for name, value in (("mm.a", 1.0), ("mm.b", 2.0), ("um.xy.a", 4.0), ("um.xy.b", 8.0)):
        t[f"{name}.mlp.fc2.bias"].fill_(value)
    t["um.zy.a.mlp.fc2.bias"].fill_(1.0)
    t["um.zy.b.mlp.fc2.bias"].fill_(0.0)
    state = mmlg.expand(gene, 4)
    got = {v: [state[f"encoders.{v}.blocks.{i}.mlp.fc2.bias"][0].item() for i in range(4)]
           for v in VIEWS}  # fmt: skip
    # xy, block l of 4: 2·(1 + (l/4)·2) + 0.5·(4 + (l/4)·8)
    assert got["xy"] == [4.0, 6.0, 8.0, 10.0]
    # zy: 3·(1 + (l/4)·2) − 1·(1 + 0)
    assert got["zy"] == [2.0, 3.5, 5.0, 6.5]
    # a whole matrix too: block 2 of 5, view zy
    a = t["mm.a.attn.qkv.weight"] + 2 / 5 * t["mm.b.attn.qkv.weight"]
    b = t["um.zy.a.attn.qkv.weight"] + 2 / 5 * t["um.zy.b.attn.qkv.weight"]
    torch.testing.assert_close(
        mmlg.expand(gene, 5)["encoders.zy.blocks.2.attn.qkv.weight"], 3.0 * a - 1.0 * b
    )


def test_descendant_of_aux_depth_is_the_aux_net(tmp_path):
    aux = _aux(depth=3, seed=1)
    with torch.no_grad():
        aux.alpha.copy_(torch.tensor([0.7, 1.3]))
        for p in aux.mm[1].parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
    path = lg.save_learngene(tmp_path / "mmlg", aux.learngene_tensors(), aux.learngene_meta())
    model = lg.build_descendant(path, depth=3, num_classes=3)
    assert isinstance(model, lg.MultiViewViT) and list(model.encoders) == VIEWS
    model.eval()
    aux.eval()
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), aux(x), rtol=1e-5, atol=1e-5)


def test_single_view_descendant_reads_only_theta_mm_and_its_own_theta_um():
    gene = _aux().learngene()
    for name, tensor in gene.tensors.items():
        if name.startswith(("um.zy.", "embed.zy.")):
            tensor.fill_(float("nan"))
    gene.tensors["beta"][1] = float("nan")
    gene.tensors["alpha"][1] = float("nan")
    model = lg.build_descendant(gene, depth=6, num_classes=3, views=["xy"])
    assert list(model.encoders) == ["xy"]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model(_images())).all()
    # it reads channel 0 (xy) only: changing channel 1 changes nothing
    x = _images()
    y = x.clone()
    y[:, 1] = 100.0
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(y))
    # and it does read θ_MM: block 0 of xy is α_xy·θ_MM,A + β_xy·θ_UM(xy),A
    t = gene.tensors
    want = t["alpha"][0] * t["mm.a.mlp.fc1.weight"] + t["beta"][0] * t["um.xy.a.mlp.fc1.weight"]
    torch.testing.assert_close(model.encoders["xy"].blocks[0].mlp.fc1.weight, want)


def test_storage_counted_by_hand():
    d, r, tokens = 32, 4, (16 // 4) ** 2
    block = (
        2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * r * d + r * d) + (r * d * d + d)
    )
    per_view = (1 * 4 * 4 * d + d) + tokens * d + 2 * d  # patch embedding, pos_embed, fc_norm
    head = d * 3 + 3
    want = 2 * block + 2 * 2 * block + 2 * per_view + 2 + 2 + head  # θ_MM, θ_UM(v), α, β
    assert want == 78567
    assert _aux().learngene().num_parameters == want
    arch = {**ARCH, "views": VIEWS}
    assert lg.parameters_stored("mmlg", [2, 4, 6, 8], **arch) == want
    # one multi-view model per depth 2, 4, 6, 8 (what Pre-Fin of per-view models keeps)
    models = sum(
        sum(p.numel() for p in mmlg.MultiViewViT({**ARCH, "depth": k, "mlp_ratio": 4.0,
                                                  "qkv_bias": True}, VIEWS, 1, None, k, 3)
            .parameters())
        for k in (2, 4, 6, 8)
    )  # fmt: skip
    assert models == 2 * 20 * block + 4 * 2 * per_view + 4 * head  # 517,516: 6.6x the gene
    assert lg.parameters_stored("prefin_views", [2, 4, 6, 8], **arch) == models


def test_saved_learngene_round_trips_and_bad_metadata_fails(tmp_path):
    gene = _aux().learngene()
    path = lg.save_learngene(tmp_path / "g", gene.tensors, gene.meta)
    back = lg.load_learngene(path)
    assert back.meta["views"] == VIEWS and back.meta["view_channels"] == 1
    assert all(torch.equal(back.tensors[k], v) for k, v in gene.tensors.items())
    with pytest.raises(lg.LearngeneError, match="in_chans 2 != 2 views x 2 channels"):
        lg.save_learngene(tmp_path / "h", gene.tensors, {**gene.meta, "view_channels": 2})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth must be >= 1"),
        ({"depth": 2, "width": 16}, "makes width 32 only"),
        ({"depth": 2, "views": ["zx"]}, "views \\['zx'\\] must be distinct views"),
        ({"depth": 2, "views": []}, "must be distinct views"),
    ],
)
def test_sizes_and_views_outside_the_method_fail_clearly(kwargs, message):
    gene = _aux().learngene()
    with pytest.raises(lg.LearngeneError, match=message):
        lg.build_descendant(gene, num_classes=3, **kwargs)


def test_other_methods_reject_views():
    gene = lg.TLEGAuxNet(**ARCH, depth=2, seed=0).learngene()
    with pytest.raises(lg.LearngeneError, match="views applies to mmlg learngenes, not tleg"):
        lg.build_descendant(gene, depth=2, num_classes=3, views=["xy"])


def test_aux_net_gradients_reach_every_part_of_the_learngene():
    aux = _aux()
    aux(_images(2)).square().sum().backward()
    for name, p in aux.learngene_tensors().items():
        assert p.grad is not None, name
    assert aux.alpha.grad.abs().sum() > 0 and aux.mm[0].attn.qkv.weight.grad.abs().sum() > 0
    assert aux.um["zy"][1].mlp.fc1.weight.grad.abs().sum() > 0


def test_view_dropout_trains_on_one_view_at_a_time():
    aux = lg.MMLGAuxNet(**ARCH, depth=2, views=VIEWS, view_dropout=0.99, seed=0)
    gene = aux.learngene()
    x = _images(2)
    with torch.no_grad():
        single = {v: lg.build_descendant(gene, 2, 3, views=[v]).eval()(x) for v in VIEWS}
        both = lg.build_descendant(gene, 2, 3).eval()(x)
        torch.testing.assert_close(aux.eval()(x), both)  # eval: every view
        aux.train()
        torch.manual_seed(0)
        seen = set()
        for _ in range(20):
            out = aux(x)
            match = [v for v, ref in single.items() if torch.allclose(out, ref, atol=1e-5)]
            assert len(match) == 1
            seen.add(match[0])
    assert seen == set(VIEWS)
    with pytest.raises(ValueError, match="view_dropout"):
        lg.MMLGAuxNet(**ARCH, depth=2, views=VIEWS, view_dropout=1.0)
