"""DeiT's distillation token: forward, loss and inference average by hand, and every
learngene method carrying the token (and counting it in storage)."""

from __future__ import annotations

import math

import pytest
import torch
from _learngene_helpers import ancestry_descendants, saved_aux_is_its_descendant, two_instance_pool

import learngene as lg
from learngene import mmlg
from learngene.distill import deit_loss
from learngene.vit import average_heads, num_parameters

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=32, num_heads=4)
TOKEN = dict(ARCH, distill_token=True)


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_average_of_the_two_heads_by_hand():
    cls = torch.tensor([[0.0, math.log(3.0)]])  # softmax 1/4, 3/4
    dist = torch.tensor([[0.0, 0.0]])  # softmax 1/2, 1/2
    got = average_heads(cls, dist)
    torch.testing.assert_close(got.exp(), torch.tensor([[3 / 8, 5 / 8]]))
    # DeiT's code averages logits instead: (0, ln3/2) → 0.366 / 0.634, not what we return
    assert abs(got.exp()[0, 1].item() - 1 / (1 + 3**-0.5)) > 0.005


def test_deit_loss_hard_soft_and_without_teacher_by_hand():
    cls = torch.tensor([[0.0, math.log(3.0)]])  # p(class 1) = 3/4
    dist = torch.tensor([[math.log(2.0), 0.0]])  # p = 2/3, 1/3
    labels = torch.tensor([1])
    teacher = torch.tensor([[0.0, 5.0]])  # argmax 1
    base = -math.log(3 / 4)
    hard = deit_loss(cls, dist, labels, teacher, kind="hard", alpha=0.25)
    assert hard.item() == pytest.approx(0.75 * base + 0.25 * -math.log(1 / 3))
    # soft, τ = 2: KL(softmax(t/2) ‖ softmax(s/2)) · τ²
    pt = torch.tensor([1.0, math.exp(2.5)])
    pt = pt / pt.sum()
    ps = torch.tensor([2.0**0.5, 1.0])
    ps = ps / ps.sum()
    kl = float((pt * (pt / ps).log()).sum())
    soft = deit_loss(cls, dist, labels, teacher, kind="soft", alpha=0.5, tau=2.0)
    assert soft.item() == pytest.approx(0.5 * base + 0.5 * 4.0 * kl, rel=1e-5)
    # no teacher: the distillation head learns the labels (ours)
    none = deit_loss(cls, dist, labels, None, alpha=0.5)
    assert none.item() == pytest.approx(0.5 * base + 0.5 * -math.log(1 / 3))
    with pytest.raises(ValueError, match="kind"):
        deit_loss(cls, dist, labels, teacher, kind="medium")


def test_token_forward_by_hand():
    vit = lg.create_vit(**TOKEN, depth=2, seed=0)
    assert lg.vit_arch(vit)["distill_token"] is True
    x = _images()
    with torch.no_grad():
        h = vit.patch_embed(x) + vit.pos_embed  # the patch tokens' position embedding only
        h = torch.cat([vit.dist_token.expand(3, -1, -1), h], dim=1)
        for block in vit.blocks:
            h = block(h)
        cls = vit.head(vit.fc_norm(h[:, 1:].mean(1)))  # the pool leaves the token out
        dist = vit.head_dist(vit.fc_norm(h[:, 0]))
        got_cls, got_dist = vit.train()(x)
        torch.testing.assert_close(got_cls, cls)
        torch.testing.assert_close(got_dist, dist)
        probs = (cls.softmax(-1) + dist.softmax(-1)) / 2
        torch.testing.assert_close(vit.eval()(x).exp(), probs)
    names = {k: tuple(v.shape) for k, v in vit.state_dict().items() if "dist" in k}
    assert names == {"dist_token": (1, 1, 32), "head_dist.weight": (3, 32), "head_dist.bias": (3,)}
    assert "pos_embed" in vit.no_weight_decay() and "dist_token" in vit.no_weight_decay()


def test_token_counted_in_every_learngene_by_hand():
    # token W + head_dist K·W + K, W = 32, K = 3
    token = 32 + 3 * 32 + 3
    for method, extra, want in (
        ("tleg", {}, token),
        ("ldr", {"components": 2}, token),
        ("inherit", {"learngene_depth": 1}, token),
        ("weight_select", {}, token),
        ("prefin", {}, 2 * token),  # one per model
        # the token W wide (as pos_embed); head_dist at w = 16 in the small ViT
        ("lets", {"learngene_width": 16, "learngene_depth": 2}, 32 + 3 * 16 + 3),
        ("pool", {"pool_widths": [16, 32], "pool_depth": 3}, (16 + 51) + token),
        ("mmlg", {"views": ["xy", "zy"]}, 2 * 32 + 3 * 32 + 3),  # a token per view
    ):
        plain = lg.parameters_stored(method, [2, 3], **ARCH, **extra)
        with_token = lg.parameters_stored(method, [2, 3], **TOKEN, **extra)
        assert with_token - plain == want, method


def _aux(method: str, seed: int = 0):
    if method == "tleg":
        return lg.TLEGAuxNet(**TOKEN, depth=3, seed=seed)
    if method == "ldr":
        return lg.LDRAuxNet(**TOKEN, depth=3, components=2, seed=seed)
    if method == "mmlg":
        return lg.MMLGAuxNet(**TOKEN, depth=3, views=["xy", "zy"], view_channels=1, seed=seed)
    return lg.LeTsAuxNet(**TOKEN, depth=4, learngene_width=16, learngene_depth=2, seed=seed)


@pytest.mark.parametrize("method", ["tleg", "ldr", "lets", "mmlg"])
def test_aux_net_with_token_is_its_descendant(method, tmp_path):
    aux = _aux(method)
    cls, dist = aux.train()(_images())  # trained as DeiT: two outputs
    deit_loss(cls, dist, torch.tensor([0, 1, 2]), torch.randn(3, 3)).backward()
    grads = {n: p.grad for n, p in aux.named_parameters() if "dist" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    gene, path = saved_aux_is_its_descendant(aux, tmp_path, method)
    assert gene.meta["distill_token"] is True
    assert lg.load_learngene(path).num_parameters == num_parameters(gene.tensors)
    width = 16 if method == "lets" else None
    small = lg.build_descendant(path, depth=2, num_classes=3, width=width)
    out = small.train()(_images())
    assert isinstance(out, tuple) and out[1].shape == (3, 3)
    if method == "lets":  # narrower: the token's first channels, as the position embedding
        assert torch.equal(small.dist_token, gene.tensors["dist_token"][..., :16])
        want = gene.tensors["head_dist.weight"]  # w = 16: P_cls = I, the first 16 columns
        torch.testing.assert_close(small.head_dist.weight, want)
    elif method == "mmlg":
        for v in ("xy", "zy"):
            torch.testing.assert_close(
                small.encoders[v].dist_token, gene.tensors[f"embed.{v}.dist_token"]
            )
    else:
        torch.testing.assert_close(small.dist_token, gene.tensors["dist_token"])
    other = lg.build_descendant(path, depth=2, num_classes=5, width=width)  # fresh heads
    assert other.eval()(_images()).shape == (3, 5)


def test_inherit_weight_select_and_pool_carry_the_token(tmp_path):
    state, _, descendants = ancestry_descendants(TOKEN, tmp_path)
    for method, width, model in descendants:
        n = width or 32  # weight selection narrowed: the first channels, as pos_embed
        assert torch.equal(model.dist_token, state["dist_token"][..., :n]), method
        assert torch.equal(model.head_dist.weight, state["head_dist.weight"][:, :n])
    gene, vits, path = two_instance_pool(TOKEN, tmp_path)
    assert gene.meta["distill_token"] is True
    whole = lg.build_descendant(path, depth=2, num_classes=3, pool_path=[(0, [0, 1])])
    with torch.no_grad():
        torch.testing.assert_close(whole.eval()(_images()), vits[0](_images()))
        cls, dist = whole.train()(_images())
        assert cls.shape == dist.shape == (3, 3)
    stitched = lg.build_descendant(path, depth=2, num_classes=3, width=32)  # 16 then 32
    assert torch.equal(stitched.dist_token, vits[0].dist_token)  # the first instance's
    assert torch.equal(stitched.head_dist.weight, vits[1].head_dist.weight)  # the last's
    aux = lg.PoolAuxNet(gene, seed=0)
    assert isinstance(aux.train()(_images()), tuple)


def test_token_on_a_learngene_without_one_and_off(tmp_path):
    gene = lg.TLEGAuxNet(**ARCH, depth=3, seed=0).learngene()
    path = lg.save_learngene(tmp_path / "tleg", gene.tensors, gene.meta)
    model = lg.build_descendant(path, depth=2, num_classes=3, distill_token=True, seed=1)
    assert lg.vit_arch(model)["distill_token"] and isinstance(model.train()(_images()), tuple)
    torch.testing.assert_close(model.pos_embed, gene.tensors["pos_embed"])
    token = lg.TLEGAuxNet(**TOKEN, depth=3, seed=0).learngene()
    path = lg.save_learngene(tmp_path / "tok", token.tensors, token.meta)
    plain = lg.build_descendant(path, depth=2, num_classes=3, distill_token=False)
    assert not hasattr(plain, "dist_token") and plain.eval()(_images()).shape == (3, 3)


def test_multi_view_model_with_token_averages_both_features_over_views():
    arch = dict(TOKEN, depth=2, mlp_ratio=4.0, qkv_bias=True)
    mm = mmlg.MultiViewViT(arch, ["xy", "zy"], 1, None, 2, 3, seed=0)
    x = _images()
    with torch.no_grad():
        pairs = [mm.encoders[v].eval()(x[:, i : i + 1]) for i, v in enumerate(("xy", "zy"))]
        cls = mm.head((pairs[0][0] + pairs[1][0]) / 2)
        dist = mm.head_dist((pairs[0][1] + pairs[1][1]) / 2)
        torch.testing.assert_close(mm.eval()(x).exp(), (cls.softmax(-1) + dist.softmax(-1)) / 2)
