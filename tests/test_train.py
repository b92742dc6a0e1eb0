"""Training engine, run directories, checkpoints and the ``train`` command, on a real
(synthetic) image file written by `ImageWriter`."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import make_image_file
from safetensors.torch import load_file

from attpc_classify.checkpoint import load_run, read_json, write_json
from attpc_classify.cli import main
from attpc_classify.config import load_config
from attpc_classify.data import stratified_split
from attpc_classify.engine import distillation_loss, fit, lr_at, predict_logits, train_run
from attpc_classify.models.build import build_model
from attpc_classify.train_config import ModelConfig, TrainConfig
from data_prep.errors import InputError
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
#: a CNN small enough to train an epoch in well under a second on two cores
FAST = ["model.name=cnn", "model.width=4", "model.depth=2", "optim.batch_size=16",
        "optim.epochs=2", "optim.warmup_epochs=0.5"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 3 x 40 labelled events + 10 unknown (-1), two 32^2 views, 20^3 voxels
    return make_image_file(tmp_path_factory.mktemp("data") / "train.h5", n_per_class=40,
                           seed=1, unknown=10)  # fmt: skip


def _cfg(data: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, [f"data.path={data}", f"out={out}", *FAST, *overrides])


def _strip_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in history]


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory) -> Path:
    """One trained multiclass CNN run shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    return train_run(_cfg(data, out))


def test_cli_train_end_to_end(data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--config", str(CONFIGS / "cnn_small.yaml"), "--data", str(data),
            "--out", str(out), "--quiet", *FAST[1:], "optim.balance=sampler",
            "data.augment=rotate_reflect"]  # fmt: skip
    assert main(argv) == 0
    assert "best val macro-F1" in capsys.readouterr().out
    for name in ("config.yaml", "model.safetensors", "model.json", "last.safetensors",
                 "last.json", "metrics.jsonl", "plots/learning_curves.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert "git_sha:" in (out / "config.yaml").read_text()
    history = _history(out)
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) >= {"train_loss", "val_loss", "val_macro_f1", "val_accuracy", "lr",
                               "train_images", "wall_s"}  # fmt: skip
    info = load_run(out).info
    assert info.task == "multiclass" and info.input == "images"
    assert info.output_names == ("proton", "carbon", "other")
    assert info.metrics["n_train"] + info.metrics["n_val"] == 120  # the 10 unknown are left out
    assert info.image_config == read_images(data).config
    # a second run into the same directory is refused (one line, exit 2)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "\n" not in err


def test_checkpoint_round_trip(data, tmp_path) -> None:
    cfg = _cfg(data, tmp_path / "run", "precision=fp32")
    images = read_images(data)
    model = build_model(cfg.model, image_config=images.config, num_classes=3)
    train, val = images.subset(np.arange(0, 100)), images.subset(np.arange(100, 130))
    result = fit(model, train, val, cfg, task="multiclass", out_dir=tmp_path / "run")
    assert result.epochs_run == 2 and result.best_epoch in (1, 2)
    assert result.train_images == 2 * (len(train.label[train.label >= 0]) // 16) * 16
    before = predict_logits(model, torch.from_numpy(images.images), device=torch.device("cpu"),
                            dtype=None).softmax(-1).numpy()  # fmt: skip
    trained = load_run(tmp_path / "run", device="cpu")
    after = trained.predict_proba(images.images, precision="fp32", batch_size=7)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after.sum(1), 1.0, atol=1e-5)
    assert after.dtype == np.float32 and after.shape == (len(images), 3)
    with pytest.raises(InputError, match="shape"):
        trained.predict_proba(images.images[:, :1])


def test_same_seed_same_run(data, tmp_path) -> None:
    a = train_run(_cfg(data, tmp_path / "a"))
    b = train_run(_cfg(data, tmp_path / "b"))
    assert _strip_time(_history(a)) == _strip_time(_history(b))
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train_run(_cfg(data, tmp_path / "c", "seed=1"))
    assert _strip_time(_history(c)) != _strip_time(_history(a))


def test_resume_equals_uninterrupted(data, tmp_path) -> None:
    full = train_run(_cfg(data, tmp_path / "full"))

    class CrashAfterFirstEpoch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("epoch 1/"):
                raise KeyboardInterrupt  # as if killed after epoch 1 was written

    cut = tmp_path / "cut"
    engine_log, crash = logging.getLogger("attpc_classify.engine"), CrashAfterFirstEpoch()
    engine_log.addHandler(crash)
    level = engine_log.level
    engine_log.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_run(_cfg(data, cut))
    finally:
        engine_log.removeHandler(crash)
        engine_log.setLevel(level)
    assert len(_history(cut)) == 1
    train_run(_cfg(data, cut), resume=True)
    assert _strip_time(_history(cut)) == _strip_time(_history(full))
    wf, wc = load_file(full / "last.safetensors"), load_file(cut / "last.safetensors")
    for key in wf:
        torch.testing.assert_close(wc[key], wf[key], rtol=0, atol=1e-6)
    # the command line continues a run for more epochs, with its saved config
    assert main(["train", "--resume", str(cut), "--quiet", "optim.epochs=3"]) == 0
    assert [h["epoch"] for h in _history(cut)] == [1, 2, 3]


def test_corrupted_or_pickled_checkpoint_refused(run_dir, tmp_path, monkeypatch) -> None:
    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load must never read a user checkpoint")

    monkeypatch.setattr(torch, "load", no_torch_load)
    load_run(run_dir)  # the intact run loads without torch.load

    def copy(name: str) -> Path:
        return Path(shutil.copytree(run_dir, tmp_path / name))

    flipped = copy("flipped")
    raw = bytearray((flipped / "model.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (flipped / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="sha256"):
        load_run(flipped)

    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    meta = read_json(truncated / "model.json")
    del meta["sha256"]  # even without the checksum the damage is caught
    write_json(truncated / "model.json", meta)
    with pytest.raises(InputError, match="corrupted"):
        load_run(truncated)

    pickled = copy("pickled")
    state = {k: v.clone() for k, v in load_file(pickled / "model.safetensors").items()}
    monkeypatch.undo()
    torch.save(state, pickled / "model.safetensors")
    torch.save(state, tmp_path / "model.pt")
    monkeypatch.setattr(torch, "load", no_torch_load)
    for target in (pickled, tmp_path / "model.pt"):
        with pytest.raises(InputError, match="pickle") as err:
            load_run(target)
        assert "\n" not in str(err.value)

    garbled = copy("garbled")
    (garbled / "model.json").write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        load_run(garbled)


def test_logreg_binary_on_voxels(data, tmp_path) -> None:
    cfg = load_config(
        TrainConfig, CONFIGS / "logreg.yaml",
        [f"data.path={data}", f"out={tmp_path / 'lr'}", "data.task=binary"],
    )  # fmt: skip
    trained = load_run(train_run(cfg))
    assert trained.info.input == "voxels" and trained.info.output_names == ("proton", "rest")
    assert trained.info.metrics["val_macro_f1"] > 0.6
    images = read_images(data, voxels=True)
    proba = trained.predict_proba(None, images.voxels)
    assert proba.shape == (len(images), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    with pytest.raises(InputError, match="voxels"):
        trained.predict_proba(images.images)


def test_voxel_mlp_trains_with_budget(data, tmp_path) -> None:
    cfg = _cfg(data, tmp_path / "mlp", "model.name=voxel_mlp", "model.width=16",
               "max_train_images=40", "optim.epochs=5")  # fmt: skip
    run = train_run(cfg)
    history = _history(run)
    assert history[-1]["train_images"] == 48  # ceil(40 / 16) = 3 steps of 16
    assert len(history) == 1  # 3 steps fit in the first epoch (96 events -> 6 steps)


def test_fine_tune_from_run_reinitialises_head(run_dir, data) -> None:
    images = read_images(data)
    source = load_run(run_dir).model.state_dict()
    cfg = ModelConfig(name="cnn", width=4, depth=2, init=f"run:{run_dir}")
    binary = build_model(cfg, image_config=images.config, num_classes=2,
                         output_names=("proton", "rest"))  # fmt: skip
    state = binary.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in state if not k.startswith("head."))
    assert state["head.weight"].shape == (2, 8)
    same = build_model(cfg, image_config=images.config, num_classes=3,
                       output_names=("proton", "carbon", "other"))  # fmt: skip
    assert torch.equal(same.state_dict()["head.weight"], source["head.weight"])
    with pytest.raises(InputError, match="reads images"):
        build_model(ModelConfig(name="voxel_mlp", init=f"run:{run_dir}"),
                    image_config=images.config, num_classes=3)  # fmt: skip


def test_learngene_descendant_init(data, tmp_path) -> None:
    from learngene import TLEGAuxNet, build_descendant, save_learngene

    aux = TLEGAuxNet(img_size=32, patch_size=8, in_chans=2, num_classes=3, embed_dim=32,
                     depth=2, num_heads=2, seed=0)  # fmt: skip
    gene = aux.learngene()
    path = save_learngene(tmp_path / "lg", gene.tensors, gene.meta)
    cfg = ModelConfig(name="vit", depth=3, init=f"learngene:{path}")
    images = read_images(data)
    model = build_model(cfg, image_config=images.config, num_classes=3)
    reference = build_descendant(path, depth=3, num_classes=3)
    assert model.model_spec["args"]["num_heads"] == 2  # the learngene's head_dim, not ours
    for key, value in reference.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(InputError, match="img_size"):
        build_model(cfg, image_config=ImageConfig(size=64), num_classes=3)


def test_distillation_with_teacher(run_dir, data) -> None:
    logits = torch.randn(8, 3)
    labels = torch.randint(3, (8,))
    assert distillation_loss(logits, labels, logits, alpha=1.0, tau=2.0).item() == pytest.approx(
        0.0, abs=1e-6
    )
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(distillation_loss(logits, labels, None, alpha=0.7, tau=2.0), ce)
    teacher = load_run(run_dir).model
    images = read_images(data)
    cfg = _cfg(data, Path("unused"), "optim.epochs=1")
    student = build_model(cfg.model, image_config=images.config, num_classes=3)
    seen = []

    def on_epoch(epoch: int, model: torch.nn.Module, row: dict) -> None:
        seen.append((epoch, row["train_images"]))

    result = fit(student, images, None, cfg, task="multiclass", out_dir=None, teacher=teacher,
                 on_epoch=on_epoch)  # fmt: skip
    assert result.epochs_run == 1 and np.isnan(result.best_metric)
    assert seen == [(1, result.train_images)]


def test_distillation_token_vit_learns_the_teacher(run_dir, data, tmp_path) -> None:
    teacher = load_run(run_dir).model
    images = read_images(data)
    vit = ["model.name=vit", "model.width=16", "model.heads=2", "model.depth=1",
           "model.patch=8", "model.distill_token=true", "optim.epochs=1"]  # fmt: skip
    cfg = _cfg(data, tmp_path / "vit", *vit)
    student = build_model(cfg.model, image_config=images.config, num_classes=3)
    before = student.head_dist.weight.detach().clone()
    fit(student, images, None, cfg, task="multiclass", out_dir=None, teacher=teacher)
    assert not torch.equal(before, student.head_dist.weight)  # the token's head learned
    x = torch.from_numpy(np.ascontiguousarray(images.images[:5]))
    logits = predict_logits(student, x, device=torch.device("cpu"), dtype=None)
    # eval: log of the two heads' averaged softmax, so the exponentials sum to one
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(5))
    run = train_run(_cfg(data, tmp_path / "run", *vit, "distill.kind=soft"))
    again = load_run(run).model
    assert hasattr(again, "dist_token") and again.model_spec["args"]["distill_token"] is True
    with pytest.raises(InputError, match=r"distill\.kind"):
        _cfg(data, tmp_path / "x", "distill.kind=medium")


def test_split_and_schedule() -> None:
    labels = np.repeat([0, 1, 2], [50, 20, 3])
    tr, va = stratified_split(labels, 0.2, np.random.default_rng(0))
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(labels)
    assert np.bincount(labels[va]).tolist() == [10, 4, 1]
    tr2, _ = stratified_split(labels, 0.2, np.random.default_rng(0))
    assert np.array_equal(tr, tr2)
    lrs = [lr_at(s, total=100, warmup=10, lr=1.0, min_lr=0.1) for s in range(100)]
    assert lrs[9] == 1.0 and lrs[0] == pytest.approx(0.1) and min(lrs) >= 0.1
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))


def test_bad_config_is_one_line(data, tmp_path, capsys) -> None:
    assert (
        main(["train", "--data", str(data), "--out", str(tmp_path / "x"), "optim.balanse=1"]) == 2
    )
    assert "optim.balanse" in capsys.readouterr().err
    other = make_image_file(tmp_path / "other.h5", n_per_class=2, config=ImageConfig(size=16))
    assert main(["train", "--data", str(data), "--val", str(other), "--out",
                 str(tmp_path / "y"), "--quiet", *FAST]) == 2  # fmt: skip
    assert "preprocessed differently" in capsys.readouterr().err
