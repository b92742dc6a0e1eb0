"""A BatchNorm conv stem (``stem_norm="batch"``): its running statistics are updated by
every Aux-Net, stored in every learngene file and copied unchanged into descendants."""

from __future__ import annotations

import json

import pytest
import torch
from _learngene_helpers import ancestry_descendants, images, saved_aux_is_its_descendant
from torch import nn

import learngene as lg
from learngene import pool
from learngene.gene import arch_from_meta
from learngene.vit import ConvStem, num_parameters

ARCH = dict(img_size=16, patch_size=4, in_chans=2, num_classes=3, embed_dim=16, num_heads=2)
BN = dict(ARCH, stem_width=8, stem_norm="batch")
#: the stem's BatchNorms (after the 3x3 convs at Sequential index 0 and 3) and their buffers
NORMS = (1, 4)
STATS = ("running_mean", "running_var", "num_batches_tracked")


def _stats(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """A module's stem buffers by their state-dict names (``prefix`` for wrapped ViTs)."""
    return {
        f"{prefix}patch_embed.stem.{i}.{b}": getattr(module.patch_embed.stem[i], b)
        for i in NORMS
        for b in STATS
    }


def _nontrivial(vit: nn.Module, seed: int = 3) -> nn.Module:
    """Two train-mode forwards (statistics away from 0 / 1), then eval mode."""
    vit.train()
    with torch.no_grad():
        for s in (seed, seed + 1):
            vit(images(4, seed=s) * 2.0 + 0.5)
    return vit.eval()


def _train_step(aux: nn.Module) -> None:
    aux.train()
    opt = torch.optim.SGD([p for p in aux.parameters() if p.requires_grad], lr=0.1)
    out = aux(images(4, seed=1) * 2.0 + 0.5)
    out = out[0] if isinstance(out, tuple) else out
    out.square().mean().backward()
    opt.step()


def _assert_stem_equal(model: nn.Module, want: dict[str, torch.Tensor], prefix: str = ""):
    got = _stats(model, prefix)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def test_batch_stem_names_buffers_arch_and_errors():
    group = ConvStem(img_size=16, patch_size=4, in_chans=2, embed_dim=16, stem_width=8)
    batch = ConvStem(
        img_size=16, patch_size=4, in_chans=2, embed_dim=16, stem_width=8, stem_norm="batch"
    )
    names = [n for n, _ in group.named_parameters()]
    assert [n for n, _ in batch.named_parameters()] == names  # same parameter names
    assert not list(group.buffers())
    assert [n for n, _ in batch.named_buffers()] == [f"stem.{i}.{b}" for i in NORMS for b in STATS]
    assert all(isinstance(batch.stem[i], nn.BatchNorm2d) for i in NORMS)
    for norm in ("group", "batch"):
        vit = lg.create_vit(**{**BN, "stem_norm": norm}, depth=1, seed=0)
        assert lg.vit_arch(vit)["stem_norm"] == norm
    assert lg.vit_arch(lg.create_vit(**ARCH, depth=1))["stem_norm"] == "group"
    with pytest.raises(ValueError, match="stem_norm must be one of group, batch"):
        lg.create_vit(**{**BN, "stem_norm": "layer"}, depth=1)
    with pytest.raises(ValueError, match="needs a conv stem"):
        lg.create_vit(**ARCH, stem_norm="batch", depth=1)


def test_batch_stem_in_eval_mode_normalises_by_its_running_statistics():
    vit = _nontrivial(lg.create_vit(**BN, depth=1, seed=0))
    bn = vit.patch_embed.stem[1]
    assert bn.num_batches_tracked == 2 and not torch.allclose(bn.running_mean, torch.zeros(8))
    x = images(4, seed=9)
    h = vit.patch_embed.stem[0](x)
    want = (h - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var + bn.eps)[
        :, None, None
    ] * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(bn(h), want, rtol=1e-5, atol=1e-5)


def _aux(method: str) -> nn.Module:
    if method == "tleg":
        return lg.TLEGAuxNet(**BN, depth=2, seed=0)
    if method == "ldr":
        return lg.LDRAuxNet(**BN, depth=2, components=2, seed=0)
    if method == "lets":
        return lg.LeTsAuxNet(**BN, depth=2, learngene_width=8, learngene_depth=2, seed=0)
    return lg.MMLGAuxNet(**BN, depth=2, views=["xy", "zy"], view_channels=1, seed=0)


def _live(aux: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The Aux-Net's own stem buffers (the modules themselves, not `learngene_tensors`),
    per encoder: ``{"": ...}``, or ``{view: ...}`` for MM-LG."""
    if aux.method == "mmlg":
        return {v: _stats(aux.embed[v]) for v in aux.view_names}
    return {"": _stats(aux.core if aux.method == "lets" else aux.vit)}


@pytest.mark.parametrize("method", ["tleg", "ldr", "lets", "mmlg"])
def test_aux_net_updates_stores_and_hands_down_its_stem_statistics(method, tmp_path):
    aux = _aux(method)
    before = {v: {k: t.clone() for k, t in s.items()} for v, s in _live(aux).items()}
    _train_step(aux)
    live = _live(aux)
    for v, stats in live.items():  # one training step moved every statistic
        for k, t in stats.items():
            assert t.device.type == "cpu"  # real, never a meta tensor
            if k.endswith("num_batches_tracked"):
                assert t.item() == 1, (v, k)
            else:
                assert not torch.equal(t, before[v][k]), (v, k)
    # eval mode reads them: shifting one running mean changes the output
    aux.eval()
    with torch.no_grad():
        out = aux(images())
        stats = next(iter(live.values()))
        stats["patch_embed.stem.1.running_mean"].add_(1.0)
        assert not torch.allclose(aux(images()), out)
        stats["patch_embed.stem.1.running_mean"].sub_(1.0)
    # file -> descendant of the Aux-Net's size computes the Aux-Net (eval) ...
    gene, path = saved_aux_is_its_descendant(aux, tmp_path, method)
    assert json.loads(path.with_suffix(".json").read_text())["stem_norm"] == "batch"
    loaded = lg.load_learngene(path)
    assert loaded.num_parameters == gene.num_parameters == num_parameters(loaded.tensors)
    # ... and a smaller one (LeTs also narrower) carries the very same statistics
    width = 8 if method == "lets" else None
    small = lg.build_descendant(path, depth=1, num_classes=5, width=width)
    if method == "mmlg":
        for v, stats in live.items():
            _assert_stem_equal(small.encoders[v], stats)
    else:
        _assert_stem_equal(small, live[""])
    # a saved learngene loads back into an Aux-Net with its statistics
    again = type(aux).from_learngene(loaded)
    for v, stats in _live(again).items():
        for k, t in stats.items():
            assert torch.equal(t, live[v][k]), (v, k)


@pytest.mark.parametrize("method", ["tleg", "ldr", "lets", "mmlg"])
def test_aux_net_reloads_a_plain_copy_of_its_state(method, tmp_path):
    """Found by the CPU benchmark: the engine keeps the best epoch as a plain dict (no
    ``_metadata``), and BatchNorm's version-1 upgrade then added ``num_batches_tracked``
    for the LeTs skeleton's empty slots, failing the load; a safetensors round trip (the
    run checkpoints) loses the metadata the same way."""
    from safetensors.torch import load_file, save_file

    aux = _aux(method)
    _train_step(aux)
    plain = {k: v.detach().clone() for k, v in aux.state_dict().items()}
    save_file(plain, str(tmp_path / "aux.safetensors"))
    other = _aux(method)
    other.load_state_dict(load_file(str(tmp_path / "aux.safetensors")))  # strict
    aux.load_state_dict(plain)
    for v, stats in _live(other).items():  # the statistics came with the state
        for k, t in stats.items():
            assert torch.equal(t, _live(aux)[v][k]), (v, k)


def test_ldr_frozen_stem_still_tracks_statistics_and_lets_skeleton_holds_none():
    aux = _aux("ldr")
    aux.set_stage(2)  # the shared tensors, stem included, are frozen
    mean = aux.vit.patch_embed.stem[1].running_mean.clone()
    _train_step(aux)
    assert not torch.equal(aux.vit.patch_embed.stem[1].running_mean, mean)
    # LeTs: the statistics live in the learngene's core; the skeleton's slots stay empty
    lets = _aux("lets")
    assert lets.vit.patch_embed.stem[1].running_mean is None
    assert not any("vit.patch_embed.stem" in k for k in lets.state_dict())
    assert "core.patch_embed.stem.1.running_var" in lets.state_dict()


def test_inherit_and_weight_select_carry_the_ancestry_statistics(tmp_path):
    wide = dict(BN, embed_dim=32, num_heads=4)
    ancestry = _nontrivial(lg.create_vit(**wide, depth=3, seed=0))
    want = {k: v.clone() for k, v in _stats(ancestry).items()}
    _, arch, descendants = ancestry_descendants(wide, tmp_path, ancestry)
    assert arch["stem_norm"] == "batch"
    for method, width, model in descendants:  # weight selection narrower: the same stem
        assert model.embed_dim == (width or 32)
        _assert_stem_equal(model, want)
        gene = lg.load_learngene(tmp_path / method)
        assert gene.tensors["patch_embed.stem.4.num_batches_tracked"].dtype == torch.int64


def test_pool_instances_statistics_in_the_file_the_aux_net_and_the_stitched_model(tmp_path):
    meta = pool.pool_meta(dict(BN, mlp_ratio=4.0), [8, 16], 2)
    assert meta["stem_norm"] == "batch"
    vits = [_nontrivial(lg.create_vit(**pool.instance_arch(meta, n), seed=n), n) for n in (0, 1)]
    stitches = pool.init_stitches(vits, images(8, seed=5), meta)
    gene = pool.pool_learngene(vits, stitches, meta)
    path = lg.save_learngene(tmp_path / "pool", gene.tensors, gene.meta)
    assert num_parameters(gene.tensors) == lg.parameters_stored(
        "pool", [2], **BN, pool_widths=[8, 16], pool_depth=2
    )
    # the stitched descendant takes the first instance's stem, statistics and all
    model = lg.build_descendant(path, depth=2, num_classes=3, pool_path=[(0, [0]), (1, [1])])
    _assert_stem_equal(model, _stats(vits[0]))
    whole = lg.build_descendant(path, depth=2, num_classes=3, pool_path=[(1, [0, 1])])
    with torch.no_grad():
        torch.testing.assert_close(whole.eval()(images()), vits[1](images()))
    # the stitches' Aux-Net: a real module per instance, statistics tracked in training
    aux = lg.PoolAuxNet(lg.load_learngene(path), seed=0)
    mean = aux.instances[0].patch_embed.stem[1].running_mean.clone()
    torch.testing.assert_close(mean, vits[0].patch_embed.stem[1].running_mean)
    aux.train()
    while aux.instances[0].patch_embed.stem[1].num_batches_tracked == 2:  # a path from 0
        aux(images(4, seed=1))
    assert not torch.equal(aux.instances[0].patch_embed.stem[1].running_mean, mean)
    out = aux.learngene().tensors["instance.0.patch_embed.stem.1.running_mean"]
    assert torch.equal(out, aux.instances[0].patch_embed.stem[1].running_mean)


def test_storage_counts_the_statistics_as_stored_numbers():
    group = dict(BN, stem_norm="group")
    stats = 2 * (8 + 16) + 2  # running mean and variance of 8 and 16 channels, 2 counters
    for method, extra, copies in (
        ("tleg", {}, 1),
        ("lets", {"learngene_width": 8, "learngene_depth": 2}, 1),
        ("inherit", {"learngene_depth": 1}, 1),
        ("prefin", {}, 2),  # one stem per stored model
        ("mmlg", {"views": ["xy", "zy"]}, 2),  # one stem per view
    ):
        n_bn = lg.parameters_stored(method, [1, 2], **BN, **extra)
        n_gn = lg.parameters_stored(method, [1, 2], **group, **extra)
        assert n_bn - n_gn == copies * stats, method


def test_group_learngene_written_before_stem_norm_still_loads_and_builds(tmp_path):
    aux = lg.TLEGAuxNet(**ARCH, stem_width=8, depth=2, seed=0)
    gene = aux.learngene()
    assert gene.meta["stem_norm"] == "group"
    path = lg.save_learngene(tmp_path / "old", gene.tensors, gene.meta)
    js = path.with_suffix(".json")
    meta = json.loads(js.read_text())
    del meta["stem_norm"]  # as the writer did before the key existed
    js.write_text(json.dumps(meta))
    loaded = lg.load_learngene(path)
    assert "stem_norm" not in loaded.meta and arch_from_meta(loaded.meta)["stem_norm"] == "group"
    model = lg.build_descendant(path, depth=3, num_classes=3)
    assert isinstance(model.patch_embed.stem[1], nn.GroupNorm) and not list(model.buffers())
    assert lg.vit_arch(model)["stem_norm"] == "group"


def test_files_with_wrong_statistics_fail_at_load(tmp_path):
    gene = lg.TLEGAuxNet(**BN, depth=2, seed=0).learngene()
    cases = {
        "missing": ({k: v for k, v in gene.tensors.items() if "running_var" not in k}, {}),
        "counter": (
            {**gene.tensors, "patch_embed.stem.1.num_batches_tracked": torch.tensor(0.0)},
            {},
        ),
        "norm": (gene.tensors, {"stem_norm": "layer"}),
        "stemless": (gene.tensors, {"stem_width": 0}),
    }
    messages = {
        "missing": "missing tensor 'patch_embed.stem.1.running_var'",
        "counter": "not an int64 counter",
        "norm": "stem_norm must be one of",
        "stemless": "needs a conv stem",
    }
    for name, (tensors, meta) in cases.items():
        with pytest.raises(lg.LearngeneError, match=messages[name]):
            lg.save_learngene(tmp_path / name, tensors, {**gene.meta, **meta})


def test_benchmark_vit_stem_norm_reaches_models_aux_nets_and_keys():
    from types import SimpleNamespace

    from attpc_classify.config import load_config
    from attpc_classify.train_config import STEM_NORMS
    from attpc_classify.transfer.benchmark import _grid_hash
    from attpc_classify.transfer.config import BenchConfig
    from attpc_classify.transfer.learngene import LearngeneSpec, _aux_arch
    from attpc_classify.transfer.stages import _model_key, vit_model_config
    from data_prep.errors import InputError

    def bench(*overrides: str) -> BenchConfig:
        return load_config(BenchConfig, overrides=["vit.stem_width=8", *overrides])

    assert STEM_NORMS == lg.vit.STEM_NORMS  # kept apart: the config module has no torch
    group, batch = bench(), bench("vit.stem_norm=batch")
    assert vit_model_config(batch, 2).stem_norm == "batch"
    # group (the default) leaves stage keys and the grid hash as before the option
    assert "stem_norm" not in _model_key(vit_model_config(group, 2))
    assert _model_key(vit_model_config(batch, 2))["stem_norm"] == "batch"
    assert _grid_hash(group) != _grid_hash(batch)
    for bad in (["vit.stem_norm=layer"], ["vit.stem_width=0", "vit.stem_norm=batch"]):
        with pytest.raises(InputError, match=r"vit\.stem_norm"):
            load_config(BenchConfig, overrides=bad)
    # an Aux-Net keeps its teacher's stem: norm included; a teacher from before: group
    info = SimpleNamespace(
        model={"name": "vit", "args": {"stem_width": 8, "stem_norm": "batch"}},
        image_config=SimpleNamespace(size=16, views=("xy", "zy")),
    )
    spec = LearngeneSpec(method="tleg", width=16, heads=2, depth=2, patch=4)
    assert _aux_arch(spec, info, 3)["stem_norm"] == "batch"
    del info.model["args"]["stem_norm"]
    assert _aux_arch(spec, info, 3)["stem_norm"] == "group"
