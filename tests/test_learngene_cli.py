"""``attpc-classify learngene`` end to end: teacher run -> learngene -> descendant run.

Real files throughout: a synthetic image file written by the real `ImageWriter`, a teacher
trained by ``train``, learngenes written by ``learngene train``, descendants fine-tuned by
``train model.init=learngene:PATH``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _synthetic import make_image_file

import learngene as lg
from attpc_classify.cli import main

TINY = ["optim.epochs=1", "optim.batch_size=16", "device=cpu"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "learngene"
VIT = ["model.name=vit", "model.width=32", "model.heads=2", "model.patch=8"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("learngene_cli")
    data = make_image_file(root / "images.h5", n_per_class=16)
    run = root / "teacher"
    assert main(["train", "--data", str(data), "--out", str(run), "--quiet", *VIT,
                 "model.depth=2", *TINY]) == 0  # fmt: skip
    return root, data, run


def test_tleg_learngene_then_descendant_run(teacher, capsys):
    root, data, run = teacher
    out = root / "genes" / "tleg"
    argv = ["learngene", "train", "--method", "tleg", "--teacher", str(run), "--data", str(data),
            "--config", str(CONFIGS / "tleg.yaml"), "--out", str(out), "--quiet",
            "learngene.depth=4", *TINY]  # fmt: skip
    assert main(argv) == 0
    gene = lg.load_learngene(out)
    assert gene.meta["teacher_run"] == str(run) and gene.meta["depth"] == 4
    assert gene.meta["class_names"] == ["proton", "carbon", "other"]
    assert gene.meta["img_size"] == 32 and gene.meta["in_chans"] == 2
    assert (root / "genes" / "tleg.aux" / "metrics.jsonl").exists()
    # the Aux-Net's best weights are what was saved: a depth-4 descendant is the Aux-Net
    aux = lg.TLEGAuxNet.from_learngene(gene).eval()
    desc = lg.build_descendant(out, depth=4, num_classes=3).eval()
    x = torch.rand(3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(desc(x), aux(x), rtol=1e-5, atol=1e-5)

    assert main(["learngene", "info", str(out) + ".json"]) == 0
    printed = capsys.readouterr().out
    assert "method       tleg" in printed and "theta_b" in printed and "storage" in printed

    child = root / "child"
    assert main(["train", "--data", str(data), "--out", str(child), "--quiet", *VIT,
                 f"model.init=learngene:{out}", "model.depth=3", *TINY]) == 0  # fmt: skip
    spec = json.loads((child / "model.json").read_text())["model"]["args"]
    assert spec["depth"] == 3 and spec["embed_dim"] == 32

    assert main(argv) == 2  # refuses to overwrite the learngene
    assert "already there" in capsys.readouterr().err


def test_token_teacher_gives_token_learngene_and_descendant(teacher):
    root, data, _ = teacher
    run = root / "token_teacher"
    token = [*VIT, "model.distill_token=true"]
    assert main(["train", "--data", str(data), "--out", str(run), "--quiet", *token,
                 "model.depth=1", *TINY]) == 0  # fmt: skip
    out = root / "genes" / "tleg_token"
    assert main(["learngene", "train", "--method", "tleg", "--teacher", str(run), "--data",
                 str(data), "--config", str(CONFIGS / "tleg.yaml"), "--out", str(out),
                 "--quiet", "learngene.depth=2", *TINY]) == 0  # fmt: skip
    gene = lg.load_learngene(out)
    assert gene.meta["distill_token"] is True and "dist_token" in gene.tensors
    child = root / "token_child"
    assert main(["train", "--data", str(data), "--out", str(child), "--quiet", *VIT,
                 f"model.init=learngene:{out}", "model.depth=3", *TINY]) == 0  # fmt: skip
    spec = json.loads((child / "model.json").read_text())["model"]["args"]
    assert spec["distill_token"] is True  # the learngene's token is kept


def test_lets_and_inherit_learngenes_initialise_descendants(teacher, capsys):
    root, data, run = teacher
    lets = root / "genes" / "lets"
    assert main(["learngene", "train", "--method", "lets", "--teacher", str(run), "--data",
                 str(data), "--out", str(lets), "--quiet", "learngene.depth=3",
                 "learngene.width=64", "learngene.heads=4", "learngene.learngene_depth=2",
                 *TINY]) == 0  # fmt: skip
    meta = lg.load_learngene(lets).meta
    assert (meta["embed_dim"], meta["learngene_width"], meta["learngene_depth"]) == (64, 32, 2)
    child = root / "lets_child"
    assert main(["train", "--data", str(data), "--out", str(child), "--quiet", "model.name=vit",
                 "model.width=48", "model.heads=3", "model.patch=8",
                 f"model.init=learngene:{lets}", "model.depth=2", *TINY]) == 0  # fmt: skip

    inherit = root / "genes" / "auto"
    assert main(["learngene", "train", "--method", "inherit", "--teacher", str(run), "--data",
                 str(data), "--out", str(inherit), "--quiet", "learngene.position=auto",
                 "learngene.learngene_depth=1", "learngene.pseudo_epochs=1",
                 "learngene.cka_images=32", *TINY]) == 0  # fmt: skip
    gene = lg.load_learngene(inherit)
    assert gene.meta["position"] == "auto" and len(gene.meta["source_blocks"]) == 1
    capsys.readouterr()


def test_learngene_errors_are_one_line(teacher, capsys):
    root, data, run = teacher
    assert main(["learngene", "info", str(root / "absent")]) == 2
    err = capsys.readouterr().err
    assert "learngene file not found" in err and err.count("\n") == 1
    (root / "broken.json").write_text(json.dumps({"format": "learngene", "method": "tleg"}))
    (root / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert main(["learngene", "info", str(root / "broken")]) == 2
    assert "metadata lacks 'img_size'" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(root / "x"), "--quiet", *VIT,
                 f"model.init=learngene:{root / 'broken'}", *TINY]) == 2  # fmt: skip
    assert "metadata lacks" in capsys.readouterr().err
    assert main(["learngene", "train", "--teacher", str(run), "--data", str(data), "--out",
                 str(root / "y"), "learngene.position=middle"]) == 2  # fmt: skip
    assert "learngene.position" in capsys.readouterr().err


def test_ldr_and_pool_learngenes_train_and_initialise(teacher, capsys):
    root, data, run = teacher
    ldr = root / "genes" / "ldr"
    assert main(["learngene", "train", "--method", "ldr", "--teacher", str(run), "--data",
                 str(data), "--out", str(ldr), "--quiet", "learngene.depth=3",
                 "learngene.components=2", "optim.epochs=2", "optim.batch_size=16",
                 "device=cpu"]) == 0  # fmt: skip
    gene = lg.load_learngene(ldr)
    assert (gene.meta["components"], gene.meta["aux"]["epochs_run"]) == (2, 2)  # 1 per stage
    assert sorted(p.name for p in ldr.with_suffix(".aux").glob("stage*")) == ["stage1", "stage2"]
    child = root / "ldr_child"
    assert main(["train", "--data", str(data), "--out", str(child), "--quiet", *VIT,
                 f"model.init=learngene:{ldr}", "model.depth=5", *TINY]) == 0  # fmt: skip

    pool = root / "genes" / "pool"
    assert main(["learngene", "train", "--method", "pool", "--teacher", str(run), "--data",
                 str(data), "--out", str(pool), "--quiet", "learngene.depth=2",
                 "learngene.pool_widths=[16,32]", "learngene.cka_images=16",
                 *TINY]) == 0  # fmt: skip
    gene = lg.load_learngene(pool)
    assert gene.meta["pool_widths"] == [16, 32] and gene.meta["aux"]["epochs_run"] == 3
    assert main(["learngene", "info", str(pool)]) == 0
    assert "instances of widths [16, 32], 2 blocks" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(root / "pool_child"), "--quiet",
                 *VIT, f"model.init=learngene:{pool}", "model.depth=2", *TINY]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "stitched ViT" in err and err.count("\n") == 1


def test_mmlg_learngene_trains_one_encoder_per_view(teacher, capsys):
    root, data, run = teacher
    out = root / "genes" / "mmlg"
    assert main(["learngene", "train", "--method", "mmlg", "--teacher", str(run), "--data",
                 str(data), "--config", str(CONFIGS / "mmlg.yaml"), "--out", str(out),
                 "--quiet", "learngene.depth=2", *TINY]) == 0  # fmt: skip
    gene = lg.load_learngene(out)
    assert (gene.meta["views"], gene.meta["view_channels"]) == (["xy", "zy"], 1)
    assert gene.meta["depth"] == 2 and gene.meta["aux"]["epochs_run"] == 1
    # the saved learngene is the Aux-Net's: a depth-2 descendant computes its function
    aux = lg.MMLGAuxNet.from_learngene(gene).eval()
    x = torch.rand(3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            lg.build_descendant(gene, depth=2, num_classes=3).eval()(x), aux(x)
        )
    assert main(["learngene", "info", str(out)]) == 0
    assert "views ['xy', 'zy'], 1 channel(s) each" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(root / "mmlg_child"), "--quiet",
                 *VIT, f"model.init=learngene:{out}", "model.depth=2", *TINY]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "multi-view ViT" in err and err.count("\n") == 1
