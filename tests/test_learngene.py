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


def test_lets_continuous_descendant_is_the_aux_nets_first_channels_and_layers():
    learngene = _lets_aux(seed=3).learngene()
    full = lets.expand(learngene)
    small = lets.expand(learngene, depth=2, width=24)
    # first 24 residual channels, first 3 heads of q/k/v, first 96 MLP units, layers 0-1
    torch.testing.assert_close(small["pos_embed"], full["pos_embed"][..., :24])
    q_full = full["blocks.1.attn.qkv.weight"].reshape(3, 32, 32)[:, :24, :24]
    torch.testing.assert_close(small["blocks.1.attn.qkv.weight"].reshape(3, 24, 24), q_full)
    # MLP units come as 4 groups of w=16 learngene units + 4 groups of new units
    fc1 = full["blocks.0.mlp.fc1.weight"]
    keep = [*range(64), *(64 + g * 16 + c for g in range(4) for c in range(8))]
    torch.testing.assert_close(small["blocks.0.mlp.fc1.weight"], fc1[keep, :24])


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
        learngene.tensors["width.residual"][-8:] *= 10
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
    assert aux.depth_weights.grad.abs().sum() > 0 and aux.width_layers[0].ffn.grad is not None


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
    assert table["lets"]["ratio"] >= 20  # learngene <= 1/20 of storing each trained model
    # TLEG keeps 2 blocks where the five models keep 32: at most 16x, about 14x with embeddings
    assert 14 <= table["tleg"]["ratio"] <= 16
    assert table["weight_select"]["ratio"] < table["inherit"]["ratio"] < table["tleg"]["ratio"]
