"""The convolutional stem: its forward by hand, and every learngene method carrying it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _learngene_helpers import ancestry_descendants, saved_aux_is_its_descendant, two_instance_pool

import learngene as lg
from learngene.vit import ConvStem, num_parameters

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=32, num_heads=4)
STEM = dict(ARCH, stem_width=8)


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(seed))


def _stem_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith("patch_embed.stem.")}


def test_stem_forward_by_hand_and_token_grid():
    stem = ConvStem(img_size=16, patch_size=4, in_chans=2, embed_dim=32, stem_width=8)
    x = _images()
    h = x
    for i in (0, 3):  # two stride-2 3x3 convs (patch 4 = 2²), GroupNorm(1) + GELU each
        conv, norm = stem.stem[i], stem.stem[i + 1]
        h = F.conv2d(h, conv.weight, stride=2, padding=1)
        mu = h.mean(dim=(1, 2, 3), keepdim=True)
        var = h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        h = (h - mu) / torch.sqrt(var + norm.eps) * norm.weight[:, None, None] + norm.bias[
            :, None, None
        ]
        h = 0.5 * h * (1 + torch.erf(h / 2**0.5))
    h = F.conv2d(h, stem.proj.weight, stem.proj.bias)  # 1x1 to embed_dim
    want = h.flatten(2).transpose(1, 2)
    torch.testing.assert_close(stem(x), want, rtol=1e-5, atol=1e-5)
    assert stem.num_patches == 16 and want.shape == (3, 16, 32)  # (16/4)² tokens, as patch 4
    with pytest.raises(ValueError, match="power-of-2 patch size"):
        ConvStem(img_size=18, patch_size=6, in_chans=2, embed_dim=32)


def test_stem_parameters_counted_in_every_learngene_by_hand():
    # stem: conv 2->8 (3x3, no bias) + GN 8 + conv 8->16 + GN 16; proj 1x1 16->32 + bias,
    # replacing the 4x4 patch conv 2->32 + bias
    stem_n = 2 * 8 * 9 + 2 * 8 + 8 * 16 * 9 + 2 * 16
    delta = stem_n + (16 * 32 + 32) - (2 * 32 * 16 + 32)
    for method, extra in (
        ("tleg", {}),
        ("ldr", {"components": 2}),
        ("inherit", {"learngene_depth": 1}),
        ("weight_select", {}),
        ("prefin", {}),
        ("lets", {"learngene_width": 16, "learngene_depth": 2}),
    ):
        plain = lg.parameters_stored(method, [2, 3], **ARCH, **extra)
        stem = lg.parameters_stored(method, [2, 3], **STEM, **extra)
        # prefin stores the stem once per size; LeTs' proj is w = 16 wide: (16·16 + 16) vs
        # (2·16·16 + 16)
        want = {
            "prefin": 2 * delta,
            "lets": stem_n + (16 * 16 + 16) - (2 * 16 * 16 + 16),
        }.get(method, delta)
        assert stem - plain == want, method


@pytest.mark.parametrize("method", ["tleg", "ldr", "lets"])
def test_aux_net_with_stem_is_its_descendant(method, tmp_path):
    if method == "tleg":
        aux = lg.TLEGAuxNet(**STEM, depth=3, seed=0)
    elif method == "ldr":
        aux = lg.LDRAuxNet(**STEM, depth=3, components=2, seed=0)
    else:
        aux = lg.LeTsAuxNet(**STEM, depth=4, learngene_width=16, learngene_depth=2, seed=0)
    with torch.no_grad():  # a stem that is not timm's fresh init, so copying is visible
        for name, p in aux.named_parameters():
            if "stem" in name:
                p.add_(0.1)
    aux(_images()).sum().backward()  # the stem is trained with the learngene
    assert all(p.grad is not None for n, p in aux.named_parameters() if "stem" in n)
    gene, path = saved_aux_is_its_descendant(aux, tmp_path, method)
    assert gene.meta["stem_width"] == 8
    # a smaller descendant (LeTs also narrower) carries the same stem convolutions
    width = 16 if method == "lets" else None
    small = lg.build_descendant(path, depth=2, num_classes=5, width=width)
    for k, v in _stem_state(small).items():
        assert torch.equal(v, gene.tensors[k]), k  # LeTs: the core ViT's own names
    assert small(_images()).shape == (3, 5)


def test_inherit_weight_select_and_pool_carry_the_stem(tmp_path):
    state, arch, descendants = ancestry_descendants(STEM, tmp_path)
    assert arch["stem_width"] == 8 and arch["in_chans"] == 2
    # narrower weight selection keeps the stem whole (its channels are not the ViT's)
    for method, _, model in descendants:
        for k, v in _stem_state(model).items():
            assert torch.equal(v, state[k]), (method, k)
    gene, vits, path = two_instance_pool(STEM, tmp_path)
    assert num_parameters(gene.tensors) == lg.parameters_stored(
        "pool", [2], **STEM, pool_widths=[16, 32], pool_depth=2
    )
    whole = lg.build_descendant(path, depth=2, num_classes=3, pool_path=[(0, [0, 1])])
    with torch.no_grad():
        torch.testing.assert_close(whole.eval()(_images()), vits[0](_images()))
