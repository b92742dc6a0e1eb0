"""Pilot: which ViT front end / recipe competes with the small CNN at 32 px (issue 13).

Chosen on VALIDATION only: the target pool (2,689 shifted events) is split into the
cell's n labelled training events (the benchmark's own stratified draw) and the remaining
pool events as validation; the benchmark's test set is never read. Optionally each ViT is
first pre-trained 3-class on the source (the benchmark's source images, its seeded
85 / 15 split; the source-validation macro-F1 is reported), as Pre-Fin / descendants are.

    OMP_NUM_THREADS=1 python scripts/vit_pilot.py --cache /tmp/lgbench/cache \
        --variants p8,p4,stem8,stem4,cnn --pretrain-epochs 0
    # DeiT distillation token learning the CNN's hard labels, after source pre-training
    OMP_NUM_THREADS=1 python scripts/vit_pilot.py --cache /tmp/lgbench/cache \
        --variants p8 --pretrain-epochs 10 --teacher --token --kind hard
    # ... and the token in source pre-training too, learning a CNN trained on the source
    OMP_NUM_THREADS=1 python scripts/vit_pilot.py --cache /tmp/lgbench/cache \
        --variants p8 --pretrain-epochs 10 --pretrain-token --teacher --token --kind hard
    # semi-supervised distillation: the CNN labels half of the pool events outside the
    # draw (never validated on) and the student trains on them too; the cnn self-trains
    OMP_NUM_THREADS=1 python scripts/vit_pilot.py --cache /tmp/lgbench/cache \
        --variants cnn,p8 --pretrain-epochs 10 --unlabelled-fraction 0.5 --self-train
    # ... on 4,000 newly simulated unlabelled target events instead; Mixup / CutMix
    ... --unlabelled-sim 4000 --self-train;  ... --teacher --token --mixup 0.8 --cutmix 1.0
    # pre-training on another source (simulated into the cache first), on a seeded draw
    # of N of its training events; cnn_pre = the CNN pre-trained the same way; stem8bn /
    # stem8id = the conv stem with BatchNorm / no norm instead of GroupNorm; cnn_gn = the
    # CNN with GroupNorm instead of BatchNorm
    OMP_NUM_THREADS=1 python scripts/vit_pilot.py --cache /work/vitp/cache \
        --variants stem8bn,cnn_pre --pretrain-epochs 10 \
        --source e15503b_nominal:12000:1 --source-events 5100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from attpc_classify.data import labelled, task_labels
from attpc_classify.engine import fit, predict_logits
from attpc_classify.metrics import f1_scores
from attpc_classify.models.build import build_model
from attpc_classify.train_config import (
    DataConfig,
    DistillConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from attpc_classify.transfer.grid import train_subset
from attpc_classify.transfer.semi import split_left_out, teacher_labels, with_pseudo_labels
from data_prep.imagefile import read_images
from learngene.vit import create_vit

#: name -> (patch, stem_width); the ViT is width 96, 3 heads, depth --depth
VARIANTS = {
    "p8": (8, 0),
    "p4": (4, 0),
    "stem8": (8, 24),
    "stem4": (4, 24),
    "stem8w32": (8, 32),
    "stem8bn": (8, 24),
    "stem8id": (8, 24),
}
#: the norm layer of a variant's conv stem in place of GroupNorm(1): BatchNorm (batch
#: statistics, as the CNN's), or none (a per-event norm removes each event's overall
#: charge and hit scale; none keeps it without BatchNorm's buffers)
STEM_NORM = {"stem8bn": "batch", "stem8id": "none"}


def _vit(name: str, **kw):
    """`create_vit`, with the stem's norms as `STEM_NORM` says (BatchNorm: the library's
    ``stem_norm="batch"``; none: the GroupNorms swapped for identities here)."""
    norm = STEM_NORM.get(name)
    model = create_vit(**kw, stem_norm="batch" if norm == "batch" else "group")
    if norm == "none":
        stem = model.patch_embed.stem
        for i, m in enumerate(stem):
            if isinstance(m, torch.nn.GroupNorm):
                stem[i] = torch.nn.Identity()
    return model


def _cnn(num_classes: int, image_config, name: str = "cnn", seed: int = 0):
    """The small CNN (width 32, depth 3) with weights drawn from ``seed``; ``cnn_gn``:
    GroupNorm(1) in place of BatchNorm."""
    # seeded as the benchmark's cells are: torch seeds each process at random, so an
    # unseeded build gave other first weights on every call (and the CNN rows moved)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(ModelConfig(name="cnn", width=32, depth=3),
                            image_config=image_config, num_classes=num_classes)  # fmt: skip
    if name.endswith("_gn"):
        f = model.features
        for i, m in enumerate(f):
            if isinstance(m, torch.nn.BatchNorm2d):
                f[i] = torch.nn.GroupNorm(1, m.num_features)
    return model


def _one(cache: Path, stage: str) -> Path:
    (path,) = cache.glob(f"{stage}-*/images.h5")
    return path


def _score(model, images, y, k) -> dict:
    x = torch.from_numpy(np.ascontiguousarray(images.images))
    logits = predict_logits(model, x, device=torch.device("cpu"), dtype=None, batch_size=500)
    return f1_scores(y, logits.argmax(1).numpy(), k)


def _cnn_teacher(train, task: str, k: int, epochs: int, path: Path, augment: str, seed: int):
    """The small CNN trained on ``train`` (kept in ``path``: every student shares it)."""
    teacher = _cnn(k, train.config, seed=seed)
    if path.exists():
        teacher.load_state_dict(load_file(str(path)))
    else:
        to = OptimConfig(lr=2e-3, epochs=epochs, warmup_epochs=1, batch_size=32, patience=0)
        fit(teacher, train, None, TrainConfig(optim=to, data=DataConfig(augment=augment),
            seed=seed), task=task, out_dir=None)  # fmt: skip
        save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(path))
    return teacher.eval()


def _stage_images(cache: Path, role: str, preset: str, events: int, seed: int,
                  workers: int = 1) -> str:  # fmt: skip
    """The image file of ``events`` events of ``preset`` (simulation seed ``seed``) with
    the CPU config's images, built (or reused) by the benchmark's own stages in ``cache``."""
    from attpc_classify.config import load_config
    from attpc_classify.stagecache import StageCache
    from attpc_classify.transfer.config import BenchConfig, SimSpec
    from attpc_classify.transfer.stages import images_stage, simulate_stage

    cfg = load_config(BenchConfig, "configs/benchmark/transfer_cpu.yaml",
                      [f"data.sim_workers={workers}"])  # fmt: skip
    st = StageCache(cache)
    sim = simulate_stage(st, cfg, role, SimSpec(preset, events, seed))
    return images_stage(st, cfg, sim).info["file"]


def _source_tag(a, src) -> str:
    """The part of a kept pre-trained state's name that says which source events made it
    (empty for the cache's whole source set)."""
    tag = "_" + a.source.replace(":", "_") if a.source else ""
    return tag + f"_n{len(src[0])}" if a.source or a.source_events else tag


def _pretrained_state(saved: Path, pretrain) -> tuple[dict, float]:
    """The headless state and best source-validation macro-F1 kept at ``saved``, else
    those of ``pretrain()`` (a pre-trained model and that F1), kept there for later runs."""
    if saved.exists():
        return load_file(str(saved)), float(
            json.loads(saved.with_suffix(".json").read_text())["f1"]
        )
    model, src_f1 = pretrain()
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.startswith(("head.", "head_dist."))}  # fmt: skip
    save_file(state, str(saved))
    saved.with_suffix(".json").write_text(json.dumps({"f1": src_f1}))
    return state, src_f1


def _pretrained_cnn(a, src, image_config, name: str):
    """The small CNN pre-trained 3-class on the source (kept beside ``a.out``), with a
    fresh binary head, and its best source-validation macro-F1."""
    gn = "_gn" if name.endswith("_gn") else ""
    saved = a.out.parent / f"pre_cnn{gn}_e{a.pretrain_epochs}{_source_tag(a, src)}.safetensors"

    def pretrain():
        model = _cnn(3, image_config, name, seed=0)  # kept: one for every seed
        po = OptimConfig(lr=2e-3, epochs=a.pretrain_epochs, warmup_epochs=1, batch_size=64,
                         patience=0)  # fmt: skip
        r = fit(model, src[0], src[1], TrainConfig(optim=po, data=DataConfig(augment=a.augment),
                seed=0), task="multiclass", out_dir=None)  # fmt: skip
        return model, r.best_metric

    state, src_f1 = _pretrained_state(saved, pretrain)
    model = _cnn(2, image_config, name, seed=a.seed)  # the fresh head's draw
    model.load_state_dict(state, strict=False)
    return model, src_f1


def _simulated_unlabelled(cache: Path, events: int, seed: int = 4):
    """``events`` new target events, labels set to -1: the CPU config's target preset
    and images, simulation seed ``seed`` (the pool has 2, the test set 3)."""
    images = read_images(_stage_images(cache, "target_unlabelled", "e15503b_shifted",
                                       events, seed))  # fmt: skip
    images.label = np.full(len(images), -1, dtype=images.label.dtype)  # never read
    return images


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--variants", default="p8,p4,stem8,stem4,cnn")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pretrain-epochs", type=int, default=0)
    ap.add_argument("--augment", default="rotate")
    ap.add_argument("--detector-augment", action="store_true", help="on the target fine-tuning")
    ap.add_argument("--teacher", action="store_true", help="CNN soft targets (alpha .5, tau 2)")
    ap.add_argument("--teacher-epochs", type=int, default=0, help="0: --epochs")
    ap.add_argument(
        "--token",
        action="store_true",
        help="DeiT distillation token; with --teacher it learns the CNN (--kind)",
    )
    ap.add_argument(
        "--kind",
        choices=("hard", "soft"),
        default="hard",
        help="what the token learns from the teacher (DeiT: hard labels best)",
    )
    ap.add_argument("--pretrain-token", action="store_true",
                    help="the token in source pre-training too, learning a source CNN")  # fmt: skip
    ap.add_argument("--unlabelled-fraction", type=float, default=0.0,
                    help="share of the pool events outside the draw held as unlabelled "
                    "(never validated on); the rest is validation")  # fmt: skip
    ap.add_argument(
        "--self-train",
        action="store_true",
        help="train on the draw + the unlabelled events with the CNN teacher's hard labels "
        "(semi-supervised distillation; the cnn variant self-trains)",
    )
    ap.add_argument(
        "--unlabelled-sim",
        type=int,
        default=0,
        help="simulate this many unlabelled target events (seed 4) as the unlabelled set; "
        "validation is then every pool event outside the draw",
    )
    ap.add_argument("--mixup", type=float, default=0.0, help="fine-tuning Mixup α (DeiT 0.8)")
    ap.add_argument("--cutmix", type=float, default=0.0, help="fine-tuning CutMix α (DeiT 1)")
    ap.add_argument("--source", default="",
                    help="PRESET:EVENTS:SEED pre-trains on this simulation instead of the "
                         "cache's source images (built into the cache first)")  # fmt: skip
    ap.add_argument(
        "--source-events",
        type=int,
        default=0,
        help="pre-train on a seeded draw of N source training events (0: all)",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/vitp/pilot.jsonl"))
    a = ap.parse_args()
    torch.set_num_threads(1)

    pool_path = _one(a.cache, "images_target_train")
    pool = labelled(read_images(str(pool_path)))
    train = train_subset(pool, a.n, a.seed, data_seed=0)
    # the pool events outside the draw: unlabelled (their labels never read) + validation
    unlab, val = split_left_out(pool, train, a.unlabelled_fraction, a.seed)
    if a.unlabelled_sim:  # a simulated unlabelled target set instead (labels dropped)
        unlab = _simulated_unlabelled(a.cache, a.unlabelled_sim)
    y_val = task_labels(val.label, "binary")
    t_epochs = a.teacher_epochs or a.epochs
    t_path = a.out.parent / f"teacher_cnn_n{a.n}_s{a.seed}_e{t_epochs}.safetensors"
    labelled_train = train
    if a.self_train:  # the CNN teacher labels the unlabelled events; everyone trains on them
        cnn = _cnn_teacher(train, "binary", 2, t_epochs, t_path, a.augment, a.seed)
        train = with_pseudo_labels(train, unlab, teacher_labels(cnn, unlab), "binary")

    src = None
    if a.pretrain_epochs:
        from attpc_classify.data import load_datasets

        if a.source:
            preset, events, seed = a.source.split(":")
            src_path = _stage_images(a.cache, f"pilot_src_{preset}", preset, int(events),
                                     int(seed), workers=2)  # fmt: skip
        else:
            src_path = str(_one(a.cache, "images_source"))
        tc = TrainConfig(data=DataConfig(path=src_path, val_fraction=0.15), seed=0)
        src = load_datasets(tc, "images")
        if a.source_events:  # a seeded random draw of N source training events
            keep = np.random.default_rng(0).permutation(len(src[0]))[: a.source_events]
            src = (src[0].subset(np.sort(keep)), src[1])

    for name in a.variants.split(","):
        t0 = time.perf_counter()
        if name in ("cnn", "cnn_pre", "cnn_gn", "cnn_pre_gn"):
            model = _cnn(2, train.config, name, seed=a.seed)
            optim = OptimConfig(
                lr=2e-3, epochs=a.epochs, warmup_epochs=1, batch_size=32, patience=0
            )
            src_f1 = None
            if name.startswith("cnn_pre"):  # the same CNN pre-trained 3-class on the source
                model, src_f1 = _pretrained_cnn(a, src, train.config, name)
        else:
            patch, stem = VARIANTS[name]
            arch = dict(img_size=32, patch_size=patch, in_chans=2, embed_dim=96, depth=a.depth,
                        num_heads=3, stem_width=stem, seed=a.seed)  # fmt: skip
            tok = {"distill_token": a.token}
            src_f1 = None
            if src is not None:
                # the pre-trained model is kept, so fine-tuning variants reuse it
                tag = ("_tok" if a.pretrain_token else "") + _source_tag(a, src)
                saved = (
                    a.out.parent / f"pre_{name}_d{a.depth}_e{a.pretrain_epochs}{tag}.safetensors"
                )

                def pretrain(name=name, arch=arch):  # called at once; bound for clarity
                    model = _vit(name, num_classes=3, **arch, distill_token=a.pretrain_token)
                    po = OptimConfig(lr=1e-3, epochs=a.pretrain_epochs, warmup_epochs=1,
                                     batch_size=64, patience=0)  # fmt: skip
                    dc = DistillConfig(alpha=0.5, tau=2.0, kind=a.kind)
                    tc = TrainConfig(optim=po, data=DataConfig(augment=a.augment), seed=0,
                                     distill=dc)  # fmt: skip
                    src_teacher = None
                    if a.pretrain_token:  # DeiT's setting: the token learns a CNN throughout
                        t_path = a.out.parent / f"teacher_src_cnn_e{a.pretrain_epochs}.safetensors"
                        src_teacher = _cnn_teacher(src[0], "multiclass", 3, a.pretrain_epochs,
                                                   t_path, a.augment, 0)  # fmt: skip
                    r = fit(model, src[0], src[1], tc, task="multiclass", out_dir=None,
                            teacher=src_teacher)  # fmt: skip
                    return model, r.best_metric

                state, src_f1 = _pretrained_state(saved, pretrain)
                model = _vit(name, num_classes=2, **arch, **tok)
                model.load_state_dict(state, strict=False)  # heads fresh, token only if pre-trained
            else:
                model = _vit(name, num_classes=2, **arch, **tok)
            optim = OptimConfig(
                lr=5e-4, epochs=a.epochs, warmup_epochs=1, batch_size=32, patience=0
            )
        teacher = None
        if a.teacher and name != "cnn":  # trained on the labelled events only
            teacher = _cnn_teacher(labelled_train, "binary", 2, t_epochs, t_path, a.augment,
                                   a.seed)  # fmt: skip
        data = DataConfig(augment=a.augment, detector_augment=a.detector_augment,
                          mixup=a.mixup, cutmix=a.cutmix)  # fmt: skip
        tc = TrainConfig(optim=optim, data=data, seed=a.seed,
                         distill=DistillConfig(alpha=0.5, tau=2.0, kind=a.kind))  # fmt: skip
        fit(model, train, None, tc, task="binary", out_dir=None, teacher=teacher)
        s = _score(model.eval(), val, y_val, 2)
        # on its own labelled events: does the model fit them (under- vs over-fitting)?
        s_tr = _score(model, labelled_train, task_labels(labelled_train.label, "binary"), 2)
        row = {"variant": name, "depth": a.depth, "n": a.n, "seed": a.seed, "epochs": a.epochs,
               "pretrain_epochs": a.pretrain_epochs, "augment": a.augment,
               "detector_augment": a.detector_augment, "teacher": a.teacher,
               "token": a.token and name != "cnn", "pretrain_token": a.pretrain_token,
               "kind": a.kind if a.token and a.teacher else None,
               "unlabelled_fraction": a.unlabelled_fraction,
               "unlabelled_sim": a.unlabelled_sim,
               "self_train": a.self_train, "mixup": a.mixup, "cutmix": a.cutmix,
               "source": a.source, "n_source": len(src[0]) if src else 0,
               "n_train": len(train), "n_val": len(val),
               "src_val_macro_f1": src_f1, "val_proton_f1": s["proton_f1"],
               "val_macro_f1": s["macro_f1"], "train_proton_f1": s_tr["proton_f1"],
               "params": sum(p.numel() for p in model.parameters()),
               "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
        print(json.dumps(row), flush=True)
        with a.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
