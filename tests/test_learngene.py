"""The learngene library: expansion formulas, Aux-Net equivalence, selection, files, storage."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import learngene as lg
from learngene import lets, tleg
from learngene.vit import num_parameters

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=32, num_heads=4)
HEAD_DIM = 8


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 16, 16, generator=torch.Generator().manual_seed(seed))


def _same_logits(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> None:
    model.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


# -- TLEG -------------------------------------------------------------------------------


def test_tleg_expansion_matches_hand_computation():
    learngene = lg.TLEGAuxNet(**ARCH, depth=3, seed=0).learngene()
    learngene.tensors["theta_a.mlp.fc2.bias"].fill_(1.0)
    learngene.tensors["theta_b.mlp.fc2.bias"].fill_(2.0)
    # θ_l = θ_A + (l/L)·θ_B with 0-based l and L the descendant's depth: 1, 1.5, 2, 2.5
    state = tleg.expand(learngene, 4)
    got = [state[f"blocks.{i}.mlp.fc2.bias"][0].item() for i in range(4)]
    assert got == [1.0, 1.5, 2.0, 2.5]
    # a 1-layer descendant gets θ_A alone
    one = tleg.expand(learngene, 1)
    assert torch.equal(
        one["blocks.0.attn.qkv.weight"], learngene.tensors["theta_a.attn.qkv.weight"]
    )
    a, b = (learngene.tensors[f"theta_{x}.attn.proj.weight"] for x in "ab")
    torch.testing.assert_close(
        tleg.expand(learngene, 6)["blocks.5.attn.proj.weight"], a + 5 / 6 * b
    )


def test_tleg_descendant_of_aux_depth_is_the_aux_net(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, depth=5, seed=1)
    with torch.no_grad():  # give θ_B weight so the test sees the expansion at work
        for p in aux.theta_b.parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
    path = lg.save_learngene(tmp_path / "tleg", aux.learngene_tensors(), aux.learngene_meta())
    model = lg.build_descendant(path, depth=5, num_classes=3)
    _same_logits(model, aux, _images())


def test_tleg_every_depth_builds_and_is_linear_in_the_block_index(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, depth=4, seed=0)
    gene = aux.learngene()
    path = lg.save_learngene(tmp_path / "tleg", gene.tensors, gene.meta)
    x = _images(2)
    for depth in range(1, 13):
        model = lg.build_descendant(path, depth=depth, num_classes=3)
        assert model(x).shape == (2, 3)
    w = [model.blocks[i].attn.qkv.weight.detach() for i in range(12)]
    steps = [w[i + 1] - w[i] for i in range(11)]
    for step in steps[1:]:
        torch.testing.assert_close(step, steps[0])


def test_aux_net_gradients_reach_the_learngene():
    aux = lg.TLEGAuxNet(**ARCH, depth=3, seed=0)
    aux(_images(2)).square().sum().backward()
    assert aux.theta_b.mlp.fc1.weight.grad.abs().sum() > 0
    assert aux.vit.pos_embed.grad.abs().sum() > 0
    names = {n for n, _ in aux.named_parameters()}
    assert not any(n.startswith("vit.blocks") for n in names)  # the skeleton holds no blocks


# -- LeTs -------------------------------------------------------------------------------


def _lets_aux(seed: int = 0) -> lg.LeTsAuxNet:
    return lg.LeTsAuxNet(**ARCH, depth=4, learngene_width=16, learngene_depth=2, seed=seed)


def test_lets_descendant_of_aux_size_is_the_aux_net(tmp_path):
    aux = _lets_aux()
    gene = aux.learngene()
    path = lg.save_learngene(tmp_path / "lets", gene.tensors, gene.meta)
    _same_logits(lg.build_descendant(path, depth=4, num_classes=3), aux, _images())
    # magnitude selection at full size selects everything: the same network
    full = lg.build_descendant(path, depth=4, num_classes=3, selection="magnitude-l2")
    _same_logits(full, aux, _images())


def test_lets_widths_and_depths_build_and_run(tmp_path):
    gene = _lets_aux().learngene()
    path = lg.save_learngene(tmp_path / "lets", gene.tensors, gene.meta)
    x = _images(2)
    for width in (8, 16, 24, 32):
        for depth in (1, 3, 4):
            for selection in ("continuous", "magnitude", "magnitude-l2-smallest"):
                model = lg.build_descendant(path, depth, 3, width=width, selection=selection)
                assert model.embed_dim == width and len(model.blocks) == depth
                assert model.blocks[0].attn.num_heads == width // HEAD_DIM
                assert model(x).shape == (2, 3)
    with pytest.raises(lg.LearngeneError, match="multiple of head_dim"):
        lg.build_descendant(path, 2, 3, width=20)
    with pytest.raises(lg.LearngeneError, match=r"depth must be in 1\.\.4"):
        lg.build_descendant(path, 5, 3)


def _rand_lets(seed: int = 0, **kw) -> lg.Learngene:
    """A LeTs learngene with every tensor random (no structure a test could lean on)."""
    gene = lg.LeTsAuxNet(
        **{**ARCH, "depth": 4, "learngene_width": 16, "learngene_depth": 4, **kw}
    ).learngene()
    gen = torch.Generator().manual_seed(seed)
    for k, v in gene.tensors.items():  # float64, so hand sums compare to rounding
        gene.tensors[k] = torch.randn(v.shape, generator=gen, dtype=torch.float64)
    return gene


def test_lets_expansion_matches_scalar_hand_computation():
    """Entries of a descendant recomputed scalar by scalar from the official formulas."""
    gene = _rand_lets(seed=11)
    t = gene.tensors
    w, r = 16, 4
    width = 24  # 8 new residual channels, 8·r = 32 new MLP units
    state = lets.expand(gene, depth=2, width=width)
    # depth 2 of L = 4 takes Aux-Net layers 0 and 2 (⌊t·L/d⌋); k = 4: layer 2 mixes
    # learngene layers (2, 3) with coefficient set ⌊2 / 2⌋ = 1 (official coeff_share 2)
    layer, window, s = 1, (2, 3), 1
    cw, cb = t["depth.weight"][s], t["depth.bias"][s]  # rows: norm1 q k v proj norm2 fc1 fc2
    fe, fh = t["width.embed"], t["width.head"]

    def residual(vec, c):  # channel c of P_e·vec
        return vec[c] if c < w else sum(fe[c - w, a] * vec[a] for a in range(w))

    # norm1 bias, a new channel: Σ_t c_b[norm1, t] · (F_e · b_i)[c]
    got = state[f"blocks.{layer}.norm1.bias"][w + 5]
    want = sum(
        cb[0, n] * residual(t[f"blocks.{i}.norm1.bias"], w + 5) for n, i in enumerate(window)
    )
    torch.testing.assert_close(got, want)
    # q weight, new row (head 2) x new column: Σ_t c_w[q, t] Σ_ab F_q[i][r, a] Wq[a, b] F_e[c, b]
    row, col = 3, 6
    want = 0.0
    for n, i in enumerate(window):
        wq = t[f"blocks.{i}.attn.qkv.weight"][:w]
        fq = t[f"width.{i}.q"]
        want += cw[1, n] * sum(
            fq[row, a] * wq[a, b] * fe[col, b] for a in range(w) for b in range(w)
        )
    got = state[f"blocks.{layer}.attn.qkv.weight"][w + row, w + col]
    torch.testing.assert_close(got, want)
    # v bias of an old row uses its own coefficient row (index 3), untouched by F
    got = state[f"blocks.{layer}.attn.qkv.bias"][2 * width + 4]
    want = sum(cb[3, n] * t[f"blocks.{i}.attn.qkv.bias"][2 * w + 4] for n, i in enumerate(window))
    torch.testing.assert_close(got, want)
    # proj: rows on F_e, columns on F_v; an old row, a new column
    got = state[f"blocks.{layer}.attn.proj.weight"][2, w + 1]
    want = sum(
        cw[4, n]
        * sum(t[f"blocks.{i}.attn.proj.weight"][2, a] * t[f"width.{i}.v"][1, a] for a in range(w))
        for n, i in enumerate(window)
    )
    torch.testing.assert_close(got, want)
    # fc1: a new MLP unit u is row r·w + u, from F_ffn ((rW − rw) × rw), an old column
    u, col = 7, 9
    got = state[f"blocks.{layer}.mlp.fc1.weight"][r * w + u, col]
    want = sum(
        cw[6, n]
        * sum(
            t[f"width.{i}.ffn"][u, a] * t[f"blocks.{i}.mlp.fc1.weight"][a, col]
            for a in range(r * w)
        )
        for n, i in enumerate(window)
    )
    torch.testing.assert_close(got, want)
    assert state[f"blocks.{layer}.mlp.fc1.weight"].shape == (r * width, width)
    # fc2 bias, a new residual channel
    got = state[f"blocks.{layer}.mlp.fc2.bias"][w + 2]
    want = sum(
        cb[7, n] * residual(t[f"blocks.{i}.mlp.fc2.bias"], w + 2) for n, i in enumerate(window)
    )
    torch.testing.assert_close(got, want)
    # head: its own matrix F_cls, not F_e; position embedding: the W-wide one, sliced
    got = state["head.weight"][1, w + 3]
    torch.testing.assert_close(got, sum(t["head.weight"][1, a] * fh[3, a] for a in range(w)))
    torch.testing.assert_close(state["pos_embed"], t["pos_embed"][..., :width])
    # patch embedding: a new channel is F_e · (the learngene's filters)
    got = state["patch_embed.proj.weight"][w + 4, 1, 2, 3]
    want = sum(fe[4, a] * t["patch_embed.proj.weight"][a, 1, 2, 3] for a in range(w))
    torch.testing.assert_close(got, want)
    # layer 0 of the descendant is Aux-Net layer 0: window (0, 1), coefficient set 0
    got = state["blocks.0.norm2.weight"][1]
    cw0 = t["depth.weight"][0]
    want = sum(cw0[5, n] * t[f"blocks.{i}.norm2.weight"][1] for n, i in enumerate((0, 1)))
    torch.testing.assert_close(got, want)


def test_lets_shapes_and_inits_are_the_official_ones():
    aux = lg.LeTsAuxNet(**ARCH, depth=8, learngene_width=16, learngene_depth=4, seed=0)
    t = aux.learngene_tensors()
    # width matrices (W − w) × w, the MLP's (rW − rw) × rw; a W-wide position embedding
    assert t["width.embed"].shape == t["width.head"].shape == t["width.3.q"].shape == (16, 16)
    assert t["width.0.ffn"].shape == (64, 64) and t["pos_embed"].shape == (1, 16, 32)
    assert "width.residual" not in t and "depth" not in t
    # F rows uniform on [0, 1), normalised to sum 1
    for name in ("width.embed", "width.head", "width.1.ffn"):
        f = t[name].detach()
        assert (f >= 0).all() and torch.allclose(f.sum(1), torch.ones(len(f)))
    # depth: 8 layers / coeff_share 2 = 4 sets x 8 sub-modules x window 2; stackbert_noisy:
    # one-hot at (first layer of the set) mod 2 = 0, plus noise < 0.03, sum 1
    c = t["depth.weight"].detach()
    assert c.shape == (4, 8, 2) and torch.allclose(c.sum(-1), torch.ones(4, 8))
    assert (c[..., 0] > 0.97).all() and (c[..., 1] < 0.03).all()
    # one set per layer (ours): the peak alternates with the layer index
    one = lg.LeTsAuxNet(**ARCH, depth=4, learngene_width=16, learngene_depth=2, coeff_share=1)
    assert one.depth_bias.argmax(-1)[:, 0].tolist() == [0, 1, 0, 1]
    # the official tie: layers 2s and 2s+1 of the Aux-Net are the same layer
    state = lets.expand(aux.learngene())
    torch.testing.assert_close(state["blocks.2.mlp.fc1.weight"], state["blocks.3.mlp.fc1.weight"])
    with pytest.raises(ValueError, match="1 or even"):
        lg.LeTsAuxNet(**ARCH, depth=4, learngene_width=16, learngene_depth=3)


def test_lets_storage_count_by_hand():
    # w = 16, W = 32, k = 2, L = 4, r = 4, 16 tokens, 2 input channels, 3 classes
    w, W, k, r, n_sets = 16, 32, 2, 4, 2
    core = (16 * 2 * 4 * 4 + 16) + 2 * w + (3 * w + 3)  # patch embed, fc_norm, head
    block = (3 * w * w + 3 * w) + (w * w + w) + (r * w * w + r * w) + (r * w * w + w) + 4 * w
    want = core + k * block + 16 * W  # + the W-wide position embedding
    want += 2 * (W - w) * w + k * (3 * (W - w) * w + (r * (W - w)) * (r * w))
    want += 2 * n_sets * 8 * 2
    got = lg.parameters_stored("lets", [4], **ARCH, learngene_width=w, learngene_depth=k)
    assert got == want


def test_lets_explicit_layers_follow_the_official_mapping_lists():
    gene = _rand_lets(seed=2)
    full = lets.expand(gene)
    picked = lets.expand(gene, depth=2, layers=[3, 1])
    torch.testing.assert_close(picked["blocks.0.attn.qkv.weight"], full["blocks.3.attn.qkv.weight"])
    torch.testing.assert_close(picked["blocks.1.mlp.fc2.bias"], full["blocks.1.mlp.fc2.bias"])
    with pytest.raises(lg.LearngeneError, match="layers given for depth"):
        lg.build_descendant(gene, depth=3, num_classes=3, layers=[0, 1])
    with pytest.raises(lg.LearngeneError, match=r"Aux-Net layers in 0\.\.3"):
        lg.build_descendant(gene, depth=1, num_classes=3, layers=[4])


def test_continuous_and_magnitude_selection_pick_different_rows():
    f = torch.tensor(
        [
            [0.1, 0.0, 0.0],  # small
            [0.2, -0.1, 0.0],  # small
            [2.0, 0.0, 0.0],  # L1 2.0, L2 2.0
            [-1.2, 1.2, 0.0],  # L1 2.4, L2 1.70
            [0.0, 0.0, 0.05],  # smallest
        ]
    )
    assert lg.select_rows(f, 2).tolist() == [0, 1]
    assert lg.select_rows(f, 2, "magnitude-l1").tolist() == [2, 3]
    assert lg.select_rows(f, 1, "magnitude-l1").tolist() == [3]
    assert lg.select_rows(f, 1, "magnitude-l2").tolist() == [2]
    assert lg.select_rows(f, 2, "magnitude-l1-smallest").tolist() == [0, 4]
    with pytest.raises(ValueError, match="unknown selection"):
        lg.select_rows(f, 1, "biggest")


def test_magnitude_selection_changes_the_descendant():
    learngene = _lets_aux(seed=4).learngene()
    with torch.no_grad():  # make the last new residual rows the heaviest
        learngene.tensors["width.embed"][-8:] *= 10
    cont = lets.expand(learngene, depth=2, width=24)
    mag = lets.expand(learngene, depth=2, width=24, selection="magnitude-l1")
    full = lets.expand(learngene)
    torch.testing.assert_close(
        mag["pos_embed"], full["pos_embed"][..., [*range(16), *range(24, 32)]]
    )
    assert not torch.allclose(cont["pos_embed"], mag["pos_embed"])


def test_lets_aux_net_learns_by_distillation():
    aux, teacher = _lets_aux(seed=5), lg.create_vit(**ARCH, depth=2, seed=6).eval()
    x = _images(16, seed=7)
    with torch.no_grad():
        target = teacher(x)
    opt = torch.optim.AdamW(aux.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = lg.distill_loss(aux(x), target, None, alpha=1.0, tau=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert aux.depth_weight.grad.abs().sum() > 0 and aux.widths["0_ffn"].grad is not None


# -- inheritance and weight selection ---------------------------------------------------


def test_inherit_puts_learngene_blocks_on_top_of_random_ones(tmp_path):
    ancestry = lg.create_vit(**ARCH, depth=6, seed=0)
    gene = lg.inherit_layers(ancestry.state_dict(), lg.vit_arch(ancestry), 2)
    assert gene.meta["source_blocks"] == [4, 5]
    path = lg.save_learngene(tmp_path / "inh", gene.tensors, gene.meta)
    model = lg.build_descendant(path, depth=5, num_classes=3, seed=1)
    assert torch.equal(model.blocks[3].attn.qkv.weight, ancestry.blocks[4].attn.qkv.weight)
    assert torch.equal(model.blocks[4].mlp.fc2.weight, ancestry.blocks[5].mlp.fc2.weight)
    assert not torch.equal(model.blocks[0].attn.qkv.weight, ancestry.blocks[0].attn.qkv.weight)
    first = lg.inherit_layers(ancestry.state_dict(), lg.vit_arch(ancestry), 3, position="first")
    assert first.meta["source_blocks"] == [0, 1, 2]
    with pytest.raises(ValueError, match="distinct blocks"):
        lg.inherit_layers(ancestry.state_dict(), lg.vit_arch(ancestry), 2, position=[1, 1])


def test_weight_selection_first_blocks_and_consistent_channels():
    ancestry = lg.create_vit(**ARCH, depth=4, seed=0)
    cfg = lg.vit_arch(ancestry)
    same = lg.create_vit(**ARCH, depth=4)
    same.load_state_dict(lg.weight_select(ancestry.state_dict(), cfg, 4))
    _same_logits(same, ancestry, _images())
    state = lg.weight_select(ancestry.state_dict(), cfg, 2, width=16)
    q, k, v = ancestry.blocks[1].attn.qkv.weight.detach().chunk(3)
    torch.testing.assert_close(
        state["blocks.1.attn.qkv.weight"], torch.cat([q[:16, :16], k[:16, :16], v[:16, :16]])
    )
    narrow = lg.create_vit(**{**ARCH, "embed_dim": 16, "num_heads": 2}, depth=2)
    narrow.load_state_dict(state)  # strict: every name and shape fits
    assert narrow(_images(2)).shape == (2, 3)


def test_linear_cka_and_auto_learngene_block_choice():
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    rotation = torch.linalg.qr(torch.randn(10, 10, generator=torch.Generator().manual_seed(1)))[0]
    assert lg.linear_cka(x, x).item() == pytest.approx(1.0)
    assert lg.linear_cka(x, 3 * x @ rotation).item() == pytest.approx(1.0)
    y = torch.randn(64, 7, generator=torch.Generator().manual_seed(2))
    assert lg.linear_cka(x, y).item() < 0.5
    # a pseudo descendant that is the ancestry's first two blocks: CKA finds them
    ancestry = lg.create_vit(**ARCH, depth=5, seed=0)
    pseudo = lg.create_vit(**ARCH, depth=2)
    pseudo.load_state_dict(lg.weight_select(ancestry.state_dict(), lg.vit_arch(ancestry), 2))
    cka = lg.cka_matrix(ancestry, pseudo, _images(32))
    assert cka.shape == (5, 2)
    assert cka[0, 0].item() == pytest.approx(1.0) and cka[1, 1].item() == pytest.approx(1.0)
    assert lg.select_blocks_by_cka(ancestry, pseudo, _images(32), 2) == [0, 1]


# -- head, distillation ------------------------------------------------------------------


def test_head_is_copied_only_when_the_label_space_matches(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, depth=2, seed=0)
    meta = {**aux.learngene_meta(), "class_names": ["proton", "carbon", "other"]}
    path = lg.save_learngene(tmp_path / "t", aux.learngene_tensors(), meta)
    same = lg.build_descendant(path, 2, 3, class_names=["proton", "carbon", "other"])
    assert torch.equal(same.head.weight, aux.vit.head.weight)
    other = lg.build_descendant(path, 2, 3, class_names=["proton", "rest", "x"], seed=0)
    assert not torch.equal(other.head.weight, aux.vit.head.weight)
    binary = lg.build_descendant(path, 2, 2)
    assert binary.head.weight.shape == (2, 32)
    assert torch.equal(binary.pos_embed, aux.vit.pos_embed)


def test_distill_loss_formula():
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    y = torch.tensor([0, -1])  # the second label is unknown
    tau, alpha = 2.0, 0.3
    p_t, log_p_s = torch.softmax(t / tau, 1), torch.log_softmax(s / tau, 1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(1).mean()
    ce = -torch.log_softmax(s, 1)[0, 0]
    expected = (1 - alpha) * ce + alpha * tau**2 * kl
    torch.testing.assert_close(lg.distill_loss(s, t, y, alpha=alpha, tau=tau), expected)
    torch.testing.assert_close(
        lg.distill_loss(s, t, None, alpha=alpha, tau=tau), alpha * tau**2 * kl
    )
    assert lg.distill_loss(t, t, None, alpha=1.0, tau=3.0).abs().item() < 1e-6


# -- files -------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    aux = _lets_aux(seed=8)
    meta = {**aux.learngene_meta(), "teacher_run": "runs/vit", "class_names": ["a", "b", "c"]}
    path = lg.save_learngene(tmp_path / "gene.safetensors", aux.learngene_tensors(), meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gene.json", "gene.safetensors"]
    loaded = lg.load_learngene(tmp_path / "gene")
    assert loaded.meta["teacher_run"] == "runs/vit" and loaded.meta["method"] == "lets"
    assert loaded.meta["num_parameters"] == num_parameters(aux.learngene_tensors())
    for key, value in aux.learngene_tensors().items():
        assert torch.equal(loaded.tensors[key], value.detach())
    again = lg.LeTsAuxNet.from_learngene(loaded)
    _same_logits(again, aux, _images(2))
    with safe_open(str(path), "pt") as f:  # a plain safetensors file, no pickle inside
        assert f.metadata() == {"format": "learngene", "method": "lets"}


def _saved(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, depth=2, seed=0)
    return lg.save_learngene(tmp_path / "g", aux.learngene_tensors(), aux.learngene_meta())


def test_bad_learngene_files_are_clear_errors(tmp_path):
    path = _saved(tmp_path)
    js = path.with_suffix(".json")
    meta = json.loads(js.read_text())

    js.write_text(json.dumps({k: v for k, v in meta.items() if k != "patch_size"}))
    with pytest.raises(lg.LearngeneError, match="metadata lacks 'patch_size'") as err:
        lg.load_learngene(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)

    js.write_text(json.dumps({**meta, "embed_dim": 64, "num_heads": 8}))
    with pytest.raises(lg.LearngeneError, match=r"has shape \[.*\], metadata implies"):
        lg.load_learngene(path)

    js.write_text(json.dumps({**meta, "method": "magic"}))
    with pytest.raises(lg.LearngeneError, match="unknown learngene method 'magic'"):
        lg.load_learngene(path)

    js.write_text("{not json")
    with pytest.raises(lg.LearngeneError, match="not a learngene metadata file"):
        lg.load_learngene(path)

    js.write_text(json.dumps(meta))
    path.write_bytes(b"garbage")
    with pytest.raises(lg.LearngeneError, match="unreadable safetensors"):
        lg.load_learngene(path)

    with pytest.raises(lg.LearngeneError, match="learngene file not found"):
        lg.load_learngene(tmp_path / "absent")


def test_wrong_tensors_are_refused_at_save_and_load(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, depth=2, seed=0)
    tensors = dict(aux.learngene_tensors())
    tensors["theta_a.attn.qkv.weight"] = torch.zeros(5, 5)
    with pytest.raises(lg.LearngeneError, match=r"theta_a\.attn\.qkv\.weight"):
        lg.save_learngene(tmp_path / "bad", tensors, aux.learngene_meta())
    del tensors["theta_a.attn.qkv.weight"]
    with pytest.raises(lg.LearngeneError, match="missing tensor"):
        lg.save_learngene(tmp_path / "bad", tensors, aux.learngene_meta())
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert issubclass(lg.LearngeneError, ValueError)


# -- storage -----------------------------------------------------------------------------

VIT_S = dict(img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=384, num_heads=6)
DEPTHS = [2, 4, 6, 8, 12]


def test_storage_counts_match_real_models_and_files(tmp_path):
    arch = {**ARCH, "mlp_ratio": 4.0, "qkv_bias": True}
    scratch = lg.parameters_stored("scratch", [2, {"depth": 3, "width": 16}], **ARCH)
    real = sum(
        num_parameters(lg.create_vit(**{**arch, **a}).state_dict())
        for a in ({"depth": 2}, {"depth": 3, "embed_dim": 16, "num_heads": 2})
    )
    assert scratch == real
    aux = _lets_aux()
    lets_n = lg.parameters_stored(
        "lets", [1, 4], **ARCH, learngene_width=16, learngene_depth=2, aux_depth=4
    )
    assert lets_n == num_parameters(aux.learngene_tensors())
    tleg_n = lg.parameters_stored("tleg", [1, 7], **ARCH)
    assert tleg_n == num_parameters(lg.TLEGAuxNet(**ARCH, depth=3).learngene_tensors())


def test_storage_target_for_depths_2_to_12_at_vit_s_width():
    table = lg.storage_table(
        DEPTHS,
        {
            "lets": {"learngene_width": 192, "learngene_depth": 4},
            "tleg": {},
            "inherit": {"learngene_depth": 3},
            "weight_select": {},
        },
        **VIT_S,
    )
    # official shapes: each layer's F_ffn is (rW − rw) × rw, r² = 16x a (W − w) × w matrix,
    # so LeTs at w = W/2, k = 4 keeps 1/12 of the five models, not 1/20
    assert 11.5 <= table["lets"]["ratio"] <= 12.5
    # TLEG keeps 2 blocks where the five models keep 32: at most 16x, about 14x with embeddings
    assert 14 <= table["tleg"]["ratio"] <= 16
    assert table["weight_select"]["ratio"] < table["inherit"]["ratio"] < table["tleg"]["ratio"]
