"""The benchmark's cached stages: simulation, images, pre-trained ViTs, learngenes.

Every stage is a keyed directory of `attpc_classify.stagecache.StageCache`: built in
``CACHE/.<stage>-<hash>.partial/`` and, when complete, renamed to ``CACHE/<stage>-<hash>/``;
``stage.json`` inside says what it holds and what it cost. The hash
(`attpc_classify.config.config_hash`) covers the stage's own settings and the names of the
stages it reads, so changing anything upstream gives new directories and an unchanged
stage is reused by any config that shares it. A killed
stage resumes from its partial directory: the simulator keeps finished run files, the
image builder finished parts, the trainers their ``last.*`` state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attpc_classify.checkpoint import read_json
from attpc_classify.config import to_dict
from attpc_classify.stagecache import Stage, StageCache
from attpc_classify.train_config import DataConfig, OptimConfig, TrainConfig
from attpc_classify.transfer.config import BenchConfig, SimSpec

# --------------------------------------------------------------------------- data


def sim_config(spec: SimSpec):
    """The resolved `data_prep.simulate.SimConfig` of a preset name or YAML path."""
    from attpc_classify.config import load_config
    from data_prep.simulate import SimConfig

    return load_config(SimConfig, spec.preset, list(spec.overrides))


def simulate_stage(
    cache: StageCache, cfg: BenchConfig, role: str, spec: SimSpec, progress=None
) -> Stage:
    """Labelled run files of one event set (``role``: source, target_train, target_test)."""
    from data_prep.simulate import simulate

    config = sim_config(spec)
    key = {
        "sim": to_dict(config),
        "events": spec.events,
        "seed": spec.seed,
        "events_per_file": cfg.data.events_per_file,
    }

    def make(tmp: Path) -> dict[str, Any]:
        summary = simulate(
            config,
            spec.events,
            tmp,
            seed=spec.seed,
            workers=cfg.data.sim_workers,
            events_per_file=cfg.data.events_per_file,
            resume=True,
            progress=progress,
        )
        return {
            "role": role,
            "preset": spec.preset,
            "n_events": summary.n_events,
            "classes": summary.classes,
            "channels": summary.channels,
            "sim_seconds": summary.seconds,
        }

    return cache.get(f"sim_{role}", key, make)


def images_stage(cache: StageCache, cfg: BenchConfig, sim: Stage) -> Stage:
    """The image file of a simulated event set (``images.h5``, voxels included)."""
    from data_prep.build import build_images

    key = {"sim": sim.path.name, "image": cfg.data.image.to_dict()}

    def make(tmp: Path) -> dict[str, Any]:
        inputs = sorted(sim.path.glob("run_*.h5"))
        summary = build_images(inputs, tmp / "images.h5", cfg.data.image, resume=True)
        return {"written": summary.written, "skipped": summary.skipped, "empty": summary.empty}

    stage = cache.get(f"images_{sim.name.removeprefix('sim_')}", key, make)
    stage.info["file"] = str(stage.path / "images.h5")
    return stage


# --------------------------------------------------------------------------- pre-training


def vit_model_config(cfg: BenchConfig, depth: int, width: int | None = None, init="scratch"):
    """`ModelConfig` of a grid ViT (heads follow the fixed head_dim)."""
    from attpc_classify.train_config import ModelConfig

    width = width or cfg.vit.width
    return ModelConfig(
        name="vit",
        depth=depth,
        width=width,
        heads=width // cfg.vit.head_dim,
        patch=cfg.vit.patch,
        stem_width=cfg.vit.stem_width,
        stem_norm=cfg.vit.stem_norm,
        mlp_ratio=cfg.vit.mlp_ratio,
        drop_path=cfg.vit.drop_path,
        init=init,
    )


def _source_split(cfg: BenchConfig, path: str, seed: int):
    """Source training / validation sets: the engine's stratified, seeded split."""
    from attpc_classify.data import load_datasets

    tc = TrainConfig(
        data=DataConfig(path=path, val_fraction=cfg.data.source_val_fraction), seed=seed
    )
    return load_datasets(tc, "images")


def distill_key(distill) -> dict[str, Any]:
    """A `DistillConfig` for a key, without ``kind``: it acts on ViTs with a distillation
    token only, which the benchmark does not build, so keys (and caches, resumable output
    folders) stay those from before the option existed."""
    key = to_dict(distill)
    key.pop("kind", None)
    return key


def _model_key(model_cfg) -> dict[str, Any]:
    """A model config for a stage key; ``stem_width``, ``stem_norm`` and ``distill_token``
    only when not their defaults, so the keys (and caches) of ViTs without them are those
    from before the options existed."""
    key = to_dict(model_cfg)
    for option in ("stem_width", "distill_token"):
        if not key.get(option):
            key.pop(option, None)
    if key.get("stem_norm") == "group":
        key.pop("stem_norm")
    return key


def pretrain_stage(
    cache: StageCache, cfg: BenchConfig, source: Stage, depth: int, progress=None
) -> Stage:
    """A ViT of ``depth`` trained on the source, 3-class (a run directory).

    The ancestry is the one of ``pretrain.ancestry_depth``; Pre-Fin's model of the same
    depth is the same stage (same key), so it is trained once.
    """
    import torch

    from attpc_classify.engine import fit
    from attpc_classify.models.build import build_model

    p = cfg.pretrain
    model_cfg = vit_model_config(cfg, depth)
    key = {
        "images": source.path.name,
        "model": _model_key(model_cfg),
        "optim": to_dict(p.optim),
        "augment": cfg.finetune.augment,
        "seed": p.seed,
        "val_fraction": cfg.data.source_val_fraction,
    }

    def make(tmp: Path) -> dict[str, Any]:
        train, val = _source_split(cfg, source.info["file"], p.seed)
        tc = TrainConfig(
            model=model_cfg,
            optim=p.optim,
            data=DataConfig(path=source.info["file"], augment=cfg.finetune.augment),
            seed=p.seed,
            device=cfg.device,
            precision=cfg.precision,
            out=str(tmp),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            model = build_model(
                model_cfg,
                image_config=train.config,
                num_classes=len(train.class_names),
                output_names=tuple(train.class_names),
            )
        result = fit(
            model,
            train,
            val,
            tc,
            task="multiclass",
            out_dir=tmp,
            progress=progress,
            resume=(tmp / "last.json").exists(),
        )
        (tmp / "last.safetensors").unlink(missing_ok=True)  # resume state: not needed after
        (tmp / "last.json").unlink(missing_ok=True)
        return {
            "depth": depth,
            "train_images": result.train_images,
            "wall_s": result.wall_s,
            "best_val_macro_f1": result.best_metric,
            "best_epoch": result.best_epoch,
            "parameters": sum(q.numel() for q in model.parameters()),
        }

    return cache.get(f"vit_d{depth}", key, make)


def learngene_stage(
    cache: StageCache,
    cfg: BenchConfig,
    source: Stage,
    ancestry: Stage,
    method: str,
    progress=None,
) -> Stage:
    """A learngene of ``method`` (tleg, lets, ldr, pool, inherit, weight_select, mmlg).

    tleg, lets and ldr distil an Aux-Net from the ancestry on the source images (pool:
    its instances, then its stitches; `attpc_classify.transfer.learngene.train_learngene`);
    inherit and weight_select copy
    blocks of the ancestry. The file is ``DIR/learngene.safetensors`` + ``.json``.
    """
    from attpc_classify.transfer.learngene import TRAINED, LearngeneConfig, train_learngene
    from attpc_classify.transfer.learngene import LearngeneSpec as GeneSpec

    g = cfg.learngene
    spec = GeneSpec(method=method, patch=cfg.vit.patch, mlp_ratio=cfg.vit.mlp_ratio)
    if method in ("tleg", "lets", "ldr", "pool", "mmlg"):
        spec.depth = cfg.pool_depth if method == "pool" else cfg.aux_depth
        spec.width = cfg.vit.width
        spec.heads = cfg.vit.heads
    if method == "mmlg":
        spec.view_dropout = g.mmlg_view_dropout
    if method == "ldr":
        spec.components = g.ldr_components
        spec.basis = g.ldr_basis
    if method == "pool":
        spec.pool_widths = tuple(g.pool_widths)
    if method == "lets":
        spec.learngene_width = cfg.lets_learngene_width
        spec.learngene_depth = g.lets_learngene_depth
    if method == "inherit":
        spec.learngene_depth = g.inherit_depth
        spec.position = "last"
    trains = method in TRAINED
    lg_cfg = LearngeneConfig(
        learngene=spec,
        optim=g.optim if trains else OptimConfig(epochs=1),
        distill=g.distill,
        data=DataConfig(
            path=source.info["file"],
            val_fraction=cfg.data.source_val_fraction,
            augment=cfg.finetune.augment,
        ),
        seed=g.seed,
        device=cfg.device,
        precision=cfg.precision,
    )
    key = {"ancestry": ancestry.path.name, "images": source.path.name, "spec": to_dict(spec)}
    if trains:
        key |= {
            "optim": to_dict(lg_cfg.optim),
            "distill": distill_key(lg_cfg.distill),
            "seed": g.seed,
            "augment": cfg.finetune.augment,
        }

    def make(tmp: Path) -> dict[str, Any]:
        out = tmp / "learngene"
        aux_dir = tmp / "learngene.aux"
        for stale in (out.with_suffix(".json"), out.with_suffix(".safetensors")):
            stale.unlink(missing_ok=True)  # a learngene saved just before a kill: remake
        # staged methods (ldr's components, the pool's instances and stitches) keep their
        # state in sub-directories: any of it means an interrupted attempt to continue
        path = train_learngene(
            lg_cfg,
            teacher_dir=ancestry.path,
            out=out,
            aux_dir=aux_dir,
            resume=any(aux_dir.rglob("last.json")),
            progress=progress,
        )
        for name in ("last.safetensors", "last.json"):
            for state in aux_dir.rglob(name):
                state.unlink()
        meta = read_json(path.with_suffix(".json"))
        aux = meta.get("aux") or {}
        return {
            "method": method,
            "num_parameters": meta["num_parameters"],
            "train_images": int(aux.get("train_images", 0)),
            "wall_s": float(aux.get("wall_s", 0.0)),
            "best_val_macro_f1": aux.get("best_val_macro_f1"),
        }

    stage = cache.get(f"learngene_{method}", key, make)
    stage.info["file"] = str(stage.path / "learngene.json")
    return stage
