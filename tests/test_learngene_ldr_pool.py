"""LDR and Learngene Pool: recomposition by hand, K = 2 Taylor = TLEG, stitches, files."""

from __future__ import annotations

import random

import pytest
import torch

import learngene as lg
from learngene import ldr, pool, tleg

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=32, num_heads=4)


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(seed))


# -- LDR ---------------------------------------------------------------------------------


def _ldr(k: int = 3, basis: str = "chebyshev", depth: int = 4, seed: int = 0) -> lg.Learngene:
    gene = lg.LDRAuxNet(**ARCH, depth=depth, components=k, basis=basis, seed=seed).learngene()
    gen = torch.Generator().manual_seed(seed)
    for name, v in gene.tensors.items():  # every component non-zero
        gene.tensors[name] = torch.randn(v.shape, generator=gen, dtype=torch.float64)
    return gene


@pytest.mark.parametrize(
    ("basis", "k", "want"),
    [
        # x_l = 2l/L − 1 = −1, −1/2, 0, 1/2 for L = 4; G_k's fc2 bias = k + 1
        # Chebyshev 1·T0 + 2·T1 + 3·T2, T2 = 2x² − 1
        ("chebyshev", 3, [1 - 2 + 3, 1 - 1 - 1.5, 1 + 0 - 3, 1 + 1 - 1.5]),
        # Taylor 1 + 2x + 3x²
        ("taylor", 3, [1 - 2 + 3, 1 - 1 + 0.75, 1.0, 1 + 1 + 0.75]),
        # the first K′ = 2 components only: 1 + 2x in either basis
        ("chebyshev", 2, [-1.0, 0.0, 1.0, 2.0]),
    ],
)
def test_ldr_recomposition_by_hand(basis, k, want):
    gene = _ldr(k=3, basis=basis)
    for c in range(3):
        gene.tensors[f"component.{c}.mlp.fc2.bias"].fill_(c + 1.0)
    state = ldr.expand(gene, 4, components=k)
    got = [state[f"blocks.{layer}.mlp.fc2.bias"][0].item() for layer in range(4)]
    assert got == pytest.approx(want)


def test_ldr_taylor_with_two_components_is_tleg():
    gene = _ldr(k=2, basis="taylor", seed=3)
    g0 = {
        n[len("component.0.") :]: v for n, v in gene.tensors.items() if n.startswith("component.0.")
    }
    g1 = {
        n[len("component.1.") :]: v for n, v in gene.tensors.items() if n.startswith("component.1.")
    }
    # G_0 + x·G_1 with x = 2l/L − 1 is θ_A + (l/L)·θ_B with θ_A = G_0 − G_1, θ_B = 2·G_1
    tensors = {f"theta_a.{n}": g0[n] - g1[n] for n in g0}
    tensors |= {f"theta_b.{n}": 2 * g1[n] for n in g0}
    tensors |= {n: v for n, v in gene.tensors.items() if not n.startswith("component.")}
    for depth in (1, 2, 5, 12):
        a, b = ldr.expand(gene, depth), tleg.expand(tensors, depth)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name])


def test_ldr_aux_net_is_its_descendant_and_trains_incrementally(tmp_path):
    aux = lg.LDRAuxNet(**ARCH, depth=4, components=3, seed=1)
    assert all(p.abs().sum() == 0 for p in aux.components[1].parameters())  # new ones start at 0
    with torch.no_grad():
        for p in aux.components[2].parameters():
            p.normal_(0, 0.05)
    path = lg.save_learngene(tmp_path / "ldr", aux.learngene_tensors(), aux.learngene_meta())
    model = lg.build_descendant(path, depth=4, num_classes=3)
    aux.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(_images()), aux(_images()))
    # stage 2: component 1 trains, 0 and the shared tensors are frozen, 2 is unused
    aux.set_stage(2)
    aux.train()
    aux(_images(2)).square().sum().backward()
    grads = [all(p.grad is not None for p in c.parameters()) for c in aux.components]
    assert grads == [False, True, False]
    assert aux.vit.pos_embed.grad is None
    with pytest.raises(lg.LearngeneError, match=r"recomposes from 1\.\.3 components"):
        lg.build_descendant(path, depth=2, num_classes=3, components=4)
    with pytest.raises(lg.LearngeneError, match="makes width 32 only"):
        lg.build_descendant(path, depth=2, num_classes=3, width=16)
    assert len(lg.build_descendant(path, depth=9, num_classes=3, components=1).blocks) == 9


def test_ldr_storage_is_k_blocks_plus_shared():
    block = lg.parameters_stored("tleg", [4], **ARCH) - lg.parameters_stored(
        "inherit", [4], **ARCH, learngene_depth=1
    )
    # tleg keeps 2 blocks + shared, inherit(k=1) 1 block + shared: their difference is a block
    ldr_n = lg.parameters_stored("ldr", [4], **ARCH, components=5)
    assert ldr_n == lg.parameters_stored("tleg", [4], **ARCH) + 3 * block


# -- Learngene Pool ----------------------------------------------------------------------

POOL = dict(ARCH, mlp_ratio=4.0)


def _instances(seed: int = 0) -> list[torch.nn.Module]:
    return [
        lg.create_vit(
            **{**ARCH, "embed_dim": w, "num_heads": w // 8}, depth=3, seed=seed + w
        ).eval()
        for w in (16, 32)
    ]


def _pool(seed: int = 0) -> tuple[lg.Learngene, list[torch.nn.Module]]:
    meta = pool.pool_meta(POOL, [16, 32], 3)
    vits = _instances(seed)
    stitches = pool.init_stitches(vits, _images(8, seed=5), meta)
    return pool.pool_learngene(vits, stitches, meta), vits


def test_pool_stitch_is_the_least_squares_solution():
    gene, vits = _pool()
    # features leaving block 0 of instance 0 (width 16), entering block 1 of instance 1 (32)
    x = _images(8, seed=5)
    with torch.no_grad():
        h0 = vits[0].patch_embed(x) + vits[0].pos_embed
        h1 = vits[1].patch_embed(x) + vits[1].pos_embed
        xa = vits[0].blocks[0](h0).reshape(-1, 16).double()
        yb = vits[1].blocks[0](h1).reshape(-1, 32).double()
    w, b = gene.tensors["stitch.0.1.1.weight"].double(), gene.tensors["stitch.0.1.1.bias"].double()
    residual = xa @ w.T + b - yb
    # normal equations: the residual is orthogonal to every input feature and to the constant
    assert residual.sum(0).abs().max() < 1e-3 * yb.abs().sum(0).max()
    assert (xa.T @ residual).abs().max() < 1e-3 * (xa.T @ yb).abs().max()
    # and it beats a perturbed map
    worse = xa @ (w + 0.01).T + b - yb
    assert residual.square().sum() < worse.square().sum()


def test_pool_one_instance_path_is_that_instance_and_stitched_paths_run(tmp_path):
    gene, vits = _pool(seed=1)
    path = lg.save_learngene(tmp_path / "pool", gene.tensors, gene.meta)
    x = _images(3)
    whole = lg.build_descendant(path, depth=3, num_classes=3, pool_path=[(1, [0, 1, 2])])
    with torch.no_grad():
        torch.testing.assert_close(whole.eval()(x), vits[1](x))
    # a stitched path, by hand with timm's modules: instance 0 blocks 0, stitch, instance 1
    # blocks 1, 2, instance 1's fc_norm and head
    model = lg.build_descendant(path, depth=3, num_classes=3, pool_path=[(0, [0]), (1, [1, 2])])
    with torch.no_grad():
        h = vits[0].blocks[0](vits[0].patch_embed(x) + vits[0].pos_embed)
        h = h @ gene.tensors["stitch.0.1.1.weight"].T + gene.tensors["stitch.0.1.1.bias"]
        h = vits[1].blocks[2](vits[1].blocks[1](h))
        want = vits[1].head(vits[1].fc_norm(h.mean(1)))
        torch.testing.assert_close(model.eval()(x), want)
    # the default path for depth 2, width 32: position 0 from width 16, position 1 from 32
    assert pool.default_path(gene.meta, 2, 32) == [(0, [0]), (1, [1])]
    assert lg.build_descendant(path, depth=2, num_classes=5, width=32)(x).shape == (3, 5)
    with pytest.raises(lg.LearngeneError, match=r"width must be one of \[16, 32\]"):
        lg.build_descendant(path, depth=2, num_classes=3, width=24)
    with pytest.raises(lg.LearngeneError, match=r"depth must be in 1\.\.3"):
        lg.build_descendant(path, depth=4, num_classes=3, width=32)
    with pytest.raises(lg.LearngeneError, match="positions must increase"):
        lg.build_descendant(path, depth=2, num_classes=3, pool_path=[(0, [1]), (1, [0])])


def test_pool_aux_net_trains_only_stitches_on_sampled_paths():
    gene, _ = _pool(seed=2)
    aux = lg.PoolAuxNet(gene, seed=0)
    trainable = {n for n, p in aux.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("stitches.") for n in trainable)
    teacher = lg.create_vit(**ARCH, depth=2, seed=9).eval()
    x = _images(16, seed=3)
    with torch.no_grad():
        target = teacher(x)
    opt = torch.optim.Adam([p for p in aux.parameters() if p.requires_grad], lr=1e-2)
    aux.train()
    for _ in range(20):
        loss = lg.distill_loss(aux(x), target, None, alpha=1.0, tau=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = aux.learngene()
    changed = [k for k in after.tensors if not torch.equal(after.tensors[k], gene.tensors[k])]
    assert changed and all(k.startswith("stitch.") for k in changed)
    rng = random.Random(0)
    paths = {str(pool.random_path(gene.meta, rng)) for _ in range(50)}
    assert len(paths) == 4  # 2 ordered pairs x cuts at 1, 2
