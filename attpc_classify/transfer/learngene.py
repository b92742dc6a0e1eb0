"""Learngene training: condense a trained teacher run into a learngene file.

`train_learngene` is what ``attpc-classify learngene train`` and the transfer benchmark's
learngene stages (`attpc_classify.transfer.stages`) call. ``tleg`` and ``lets`` train an
Aux-Net by soft distillation from the teacher (the training engine's ``teacher`` hook:
``(1-α) CE + α τ² KL``, ``distill.alpha`` / ``distill.tau``) and save its learngene;
``inherit`` takes blocks of a ViT teacher (``learngene.position``: last, first, auto = CKA
against a briefly trained pseudo descendant, or explicit indices); ``weight_select``
packages the whole ViT teacher for the weight-selection baseline. Output:
``OUT.safetensors`` + ``OUT.json``; the Aux-Net's training record (metrics.jsonl, plots,
resume state) goes to ``OUT.aux/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from attpc_classify.train_config import DataConfig, DistillConfig, OptimConfig, TrainConfig
from data_prep.errors import InputError

logger = logging.getLogger(__name__)

METHODS = ("tleg", "lets", "ldr", "pool", "inherit", "weight_select", "mmlg")
#: methods that train by distillation from the teacher
TRAINED = ("tleg", "lets", "ldr", "pool", "mmlg")
#: depths the ``info`` storage line compares against (the transfer benchmark's sizes)
STORAGE_DEPTHS = (2, 4, 6, 8, 12)


@dataclass
class LearngeneSpec:
    """Which learngene to make and the size of its Aux-Net.

    Sizes left at 0 come from the teacher when it is a ViT, else from the ViT defaults
    (`attpc_classify.models.vit.VIT_DEFAULTS`).
    """

    method: str = "tleg"  # tleg | lets | ldr | pool | inherit | weight_select | mmlg
    depth: int = 0  # Aux-Net blocks (tleg, lets, ldr); pool: blocks of every instance
    width: int = 0  # Aux-Net embedding width [channels] (tleg, lets, ldr); pool: the widest
    heads: int = 0  # attention heads at `width` (head_dim = width / heads at every width)
    patch: int = 0  # patch side [pixels]
    mlp_ratio: float = 4.0  # MLP hidden units per channel
    learngene_width: int = 0  # lets: learngene width w [channels]; 0 = width / 2
    learngene_depth: int = 0  # lets: learngene layers k (1 or even); inherit: blocks kept;
    # 0 = depth // 3 (lets: rounded down to even)
    coeff_share: int = 2  # lets: Aux-Net layers per depth-coefficient set (official 2)
    width_init: str = "uniform"  # lets: uniform rows summing to 1 (official) | gaussian
    components: int = 3  # ldr: K components, trained one stage each (optim.epochs / K)
    basis: str = "chebyshev"  # ldr: chebyshev | taylor
    pool_widths: tuple[int, ...] = ()  # pool: instance widths; () = width/3, 2width/3, width
    stitch_epochs: int = 0  # pool: epochs of stitch training; 0 = optim.epochs
    view_dropout: float = 0.0  # mmlg: chance that a training batch sees one random view only
    position: str = "last"  # inherit: last | first | auto | block indices "0,3,5"
    pseudo_depth: int = 2  # inherit auto: blocks of the pseudo descendant
    pseudo_epochs: int = 2  # inherit auto: its training epochs
    cka_images: int = 256  # inherit auto: training images compared by CKA

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"learngene.method must be one of {', '.join(METHODS)}")
        for key in ("depth", "width", "heads", "patch", "learngene_width", "learngene_depth"):
            if getattr(self, key) < 0:
                raise InputError(f"learngene.{key} must be >= 0")
        if self.components < 1 or self.basis not in ("chebyshev", "taylor"):
            raise InputError("learngene.components >= 1, learngene.basis chebyshev | taylor")
        if self.pseudo_depth < 1 or self.pseudo_epochs < 1 or self.cka_images < 2:
            raise InputError("learngene.pseudo_depth/pseudo_epochs >= 1, cka_images >= 2")
        _positions(self.position)  # fail on a typo before any work


@dataclass
class LearngeneConfig:
    """Everything one ``learngene train`` needs; optimiser and data as for ``train``."""

    learngene: LearngeneSpec = field(default_factory=LearngeneSpec)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    max_train_images: int = 0  # stop after this many training images; 0 = no budget
    eval_batch_size: int = 256

    def train_config(self, out_dir: Path) -> TrainConfig:
        """The `TrainConfig` the engine runs the Aux-Net with."""
        return TrainConfig(
            optim=self.optim,
            distill=self.distill,
            data=self.data,
            seed=self.seed,
            device=self.device,
            precision=self.precision,
            out=str(out_dir),
            max_train_images=self.max_train_images,
            eval_batch_size=self.eval_batch_size,
        )


def _positions(position: str) -> str | list[int]:
    if position in ("last", "first", "auto"):
        return position
    try:
        return [int(p) for p in position.split(",") if p.strip()]
    except ValueError:
        raise InputError(
            f"learngene.position must be last, first, auto or block indices; got {position!r}"
        ) from None


def train_learngene(
    cfg: LearngeneConfig,
    *,
    teacher_dir: Path,
    out: Path,
    aux_dir: Path,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Make the learngene ``cfg`` describes from the teacher run; return its file."""
    import learngene
    from attpc_classify.checkpoint import load_run
    from attpc_classify.config import git_sha, save_config, to_dict
    from attpc_classify.data import load_datasets, output_names
    from attpc_classify.engine import fit

    spec = cfg.learngene
    teacher = load_run(teacher_dir, device=cfg.device)
    info = teacher.info
    if info.input != "images":
        raise InputError(
            "the teacher reads voxels; a learngene ViT needs an image teacher", path=teacher_dir
        )
    # the teacher's outputs fix the label space, so its task is the task
    cfg.data.task = info.task
    train_cfg = cfg.train_config(aux_dir)
    train, val = load_datasets(train_cfg, "images")
    if train.config != info.image_config:
        raise InputError(
            "the data was preprocessed differently from the teacher's training data",
            path=cfg.data.path,
        )
    names = list(output_names(info.task, train.class_names))
    if tuple(names) != tuple(info.output_names):
        raise InputError(
            f"data classes {names} differ from the teacher's {list(info.output_names)}",
            path=cfg.data.path,
        )
    meta: dict[str, Any] = {
        "class_names": names,
        "task": info.task,
        "image_config": train.config.to_dict(),
        "teacher_run": str(teacher_dir),
        "teacher_model": info.model.get("name"),
        "config": to_dict(cfg),
        "git_sha": git_sha(),
    }
    n_teacher = sum(p.numel() for p in teacher.model.parameters())
    logger.info(
        f"teacher {teacher_dir}: {info.model.get('name')}, {n_teacher:,} parameters, "
        f"task {info.task} {names}"
    )

    if spec.method in ("inherit", "weight_select"):
        gene = _from_ancestry(cfg, teacher, train, val)
        return learngene.save_learngene(out, gene.tensors, {**gene.meta, **meta})
    if not resume and any(aux_dir.rglob("last.json")):
        raise InputError(
            "holds an Aux-Net training: pass --resume or choose another --out", path=aux_dir
        )
    aux_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, aux_dir / "learngene.yaml")
    results = []

    def stage(model, sub: str, epochs: int | None = None):
        """One distillation run of ``model`` (its record in ``aux_dir/sub``)."""
        run_dir = aux_dir / sub
        run_cfg = cfg.train_config(run_dir)
        if epochs is not None:
            run_cfg.optim = replace(cfg.optim, epochs=epochs)
        result = fit(
            model,
            train,
            val,
            run_cfg,
            task=info.task,
            out_dir=run_dir,
            teacher=teacher.model,
            progress=progress,
            resume=(run_dir / "last.json").exists(),
        )
        results.append(result)
        return result

    if spec.method == "pool":
        gene = _train_pool(cfg, info, teacher, train, len(names), stage)
    else:
        aux = build_aux(spec, info, num_classes=len(names), seed=cfg.seed)
        n_aux = sum(p.numel() for p in aux.parameters())
        logger.info(f"{spec.method} Aux-Net {aux.arch}: {n_aux:,} trainable parameters")
        if spec.method == "ldr":  # incremental: stage k adds G_k, freezes the earlier ones
            per_stage = max(1, cfg.optim.epochs // aux.k)
            for k in range(1, aux.k + 1):
                aux.set_stage(k)
                logger.info(f"ldr stage {k}/{aux.k}: component {k - 1}, {per_stage} epochs")
                stage(aux, f"stage{k}", per_stage)
        else:
            stage(aux, ".")
        gene = aux.learngene()
    last = results[-1]
    best = last.best_metric
    meta["aux"] = {
        "best_val_macro_f1": None if best != best else best,  # NaN -> null (valid JSON)
        "best_epoch": last.best_epoch,
        "epochs_run": sum(r.epochs_run for r in results),
        "train_images": sum(r.train_images for r in results),
        "wall_s": sum(r.wall_s for r in results),
        "run_dir": str(aux_dir),
    }
    return learngene.save_learngene(out, gene.tensors, {**gene.meta, **meta})


def _train_pool(cfg: LearngeneConfig, info, teacher, train, num_classes: int, stage):
    """Learngene Pool: distil one ViT per pool width, stitch them by least squares on
    training images (SN-Net), then train the stitches on sampled paths by distillation."""
    import torch

    import learngene
    from attpc_classify.data import as_float, labelled

    spec = cfg.learngene
    arch = _aux_arch(spec, info, num_classes)
    head_dim = arch["embed_dim"] // arch["num_heads"]
    widths = list(spec.pool_widths) or pool_widths(arch["embed_dim"], head_dim)
    try:
        meta = learngene.pool.pool_meta({**arch, "embed_dim": max(widths)}, widths, arch["depth"])
    except ValueError as err:
        raise InputError(f"learngene pool: {err}") from None
    instances = []
    for n, w in enumerate(widths):
        vit = learngene.create_vit(**learngene.pool.instance_arch(meta, n), seed=cfg.seed + n)
        vit.input_kind = "images"
        logger.info(f"pool instance {n}: width {w}, depth {arch['depth']}")
        stage(vit, f"instance{n}")
        instances.append(vit.cpu())
    images = labelled(train).images[: spec.cka_images]
    x = as_float(torch.from_numpy(images))
    stitches = learngene.pool.init_stitches(instances, x, meta)
    aux = learngene.PoolAuxNet(
        learngene.pool.pool_learngene(instances, stitches, meta), seed=cfg.seed
    )
    logger.info(f"pool stitches: {sum(p.numel() for p in aux.stitches.parameters()):,} parameters")
    stage(aux, "stitches", spec.stitch_epochs or None)
    return aux.learngene()


def pool_widths(width: int, head_dim: int) -> list[int]:
    """Default pool widths: about width/3, 2·width/3 and width, in multiples of head_dim."""
    return sorted({max(head_dim, round(width * i / 3 / head_dim) * head_dim) for i in (1, 2, 3)})


def _teacher_vit_args(info) -> dict[str, Any]:
    return dict(info.model.get("args") or {}) if info.model.get("name") == "vit" else {}


def _aux_arch(spec: LearngeneSpec, info, num_classes: int) -> dict[str, Any]:
    """`create_vit` sizes of the Aux-Net: the spec's, else the teacher ViT's, else defaults."""
    from attpc_classify.models.vit import VIT_DEFAULTS

    t = _teacher_vit_args(info)
    width = spec.width or t.get("embed_dim") or VIT_DEFAULTS["width"]
    if spec.heads:
        heads = spec.heads
    elif t.get("embed_dim") == width:
        heads = t["num_heads"]
    else:  # keep the default head_dim
        heads = max(1, width * VIT_DEFAULTS["heads"] // VIT_DEFAULTS["width"])
    depth = spec.depth or t.get("depth") or VIT_DEFAULTS["depth"]
    patch = spec.patch or t.get("patch_size") or VIT_DEFAULTS["patch"]
    size = info.image_config.size
    if size % patch or width % heads:
        raise InputError(
            f"need image size {size} % patch {patch} == 0 and width {width} % heads {heads} == 0"
        )
    return dict(
        img_size=size,
        patch_size=patch,
        in_chans=len(info.image_config.views),
        num_classes=num_classes,
        embed_dim=width,
        depth=depth,
        num_heads=heads,
        mlp_ratio=spec.mlp_ratio,
        stem_width=t.get("stem_width", 0),  # the Aux-Net keeps the teacher's front end
        stem_norm=t.get("stem_norm", "group"),
        distill_token=bool(t.get("distill_token", False)),  # ... and its DeiT token
    )


def build_aux(spec: LearngeneSpec, info, *, num_classes: int, seed: int):
    """The Aux-Net for ``spec`` (tleg, lets, ldr) with the sizes of `_aux_arch`."""
    import learngene

    arch = _aux_arch(spec, info, num_classes)
    width, depth, heads = arch["embed_dim"], arch["depth"], arch["num_heads"]
    try:
        if spec.method == "tleg":
            return learngene.TLEGAuxNet(**arch, seed=seed)
        if spec.method == "mmlg":  # one encoder per view of the teacher's images
            views = info.image_config.views
            c = len(info.image_config.pixel_values)
            return learngene.MMLGAuxNet(
                **arch, views=views, view_channels=c, view_dropout=spec.view_dropout, seed=seed
            )
        if spec.method == "ldr":
            return learngene.LDRAuxNet(
                **arch, components=spec.components, basis=spec.basis, seed=seed
            )
        head_dim = width // heads
        w = spec.learngene_width or max(head_dim, width // 2 // head_dim * head_dim)
        k = spec.learngene_depth or max(1, depth // 3)
        if not spec.learngene_depth and k > 1:
            k -= k % 2  # LeTs mixes windows of two learngene layers
        return learngene.LeTsAuxNet(
            **arch,
            learngene_width=w,
            learngene_depth=k,
            coeff_share=spec.coeff_share,
            width_init=spec.width_init,
            seed=seed,
        )
    except ValueError as err:
        raise InputError(f"learngene Aux-Net: {err}") from None


def _from_ancestry(cfg: LearngeneConfig, teacher, train, val):
    """``inherit`` / ``weight_select``: blocks of a ViT teacher, no Aux-Net training."""
    import learngene

    spec = cfg.learngene
    try:
        arch = learngene.vit_arch(teacher.model)
    except (ValueError, AttributeError):
        raise InputError(f"{spec.method} needs a ViT teacher run (model.name=vit)") from None
    state = {k: v.detach().cpu() for k, v in teacher.model.state_dict().items()}
    if spec.method == "weight_select":
        return learngene.weight_select_learngene(state, arch)
    k = spec.learngene_depth or max(1, arch["depth"] // 3)
    position, cka = _positions(spec.position), None
    if position == "auto":
        position, cka = _auto_positions(cfg, teacher, train, val, arch, k)
    try:
        gene = learngene.inherit_layers(state, arch, k, position=position)
    except ValueError as err:
        raise InputError(f"inherit: {err}") from None
    logger.info(f"inherit: teacher blocks {gene.meta['source_blocks']} of {arch['depth']}")
    gene.meta["position"] = spec.position
    if cka is not None:
        gene.meta["cka_best_match"] = cka  # per teacher block, against the pseudo descendant
    return gene


def _auto_positions(cfg, teacher, train, val, arch, k) -> tuple[list[int], list[float]]:
    """Auto-Learngene: train a small pseudo descendant, compare blocks by linear CKA."""
    import torch

    import learngene
    from attpc_classify.data import as_float, labelled
    from attpc_classify.engine import fit
    from attpc_classify.models import create_model

    spec = cfg.learngene
    args = {**_teacher_vit_args(teacher.info), "depth": spec.pseudo_depth}
    pseudo = create_model("vit", args)
    pseudo_cfg = cfg.train_config(Path("."))
    pseudo_cfg.optim = replace(cfg.optim, epochs=spec.pseudo_epochs)
    fit(pseudo, train, val, pseudo_cfg, task=teacher.info.task, out_dir=None)
    images = labelled(train).images[: spec.cka_images]
    x = as_float(torch.from_numpy(images)).to(teacher.device)
    cka = learngene.cka_matrix(teacher.model, pseudo.to(teacher.device), x)
    best = [round(v, 4) for v in cka.max(dim=1).values.tolist()]
    logger.info(
        "CKA, best match per teacher block: "
        + ", ".join(f"{i}: {v:.3f}" for i, v in enumerate(best))
    )
    return learngene.blocks_by_cka(cka, k), best


def info_lines(gene) -> list[str]:
    """What ``learngene info`` prints: metadata, parameter groups, storage comparison."""
    import learngene

    m = gene.meta
    groups: dict[str, int] = {}
    for name, tensor in gene.tensors.items():
        group = name.split(".")[0]
        groups[group] = groups.get(group, 0) + tensor.numel()
    lines = [
        f"method       {m['method']}",
        f"image        {m['img_size']} px, patch {m['patch_size']}, {m['in_chans']} channels",
        f"network      depth {m['depth']}, width {m['embed_dim']}, heads {m['num_heads']}, "
        f"mlp_ratio {m['mlp_ratio']}",
    ]
    if m["method"] == "lets":
        lines.append(f"learngene    width {m['learngene_width']}, layers {m['learngene_depth']}")
    if m["method"] == "inherit":
        lines.append(f"learngene    blocks {m['source_blocks']} of the teacher")
    if m["method"] == "mmlg":
        lines.append(f"learngene    views {m['views']}, {m['view_channels']} channel(s) each")
    if m["method"] == "ldr":
        lines.append(f"learngene    {m['components']} {m['basis']} components")
    if m["method"] == "pool":
        lines.append(
            f"learngene    instances of widths {m['pool_widths']}, {m['pool_depth']} blocks"
        )
    names = m.get("class_names")
    lines.append(f"classes      {', '.join(names) if names else '?'} (task {m.get('task', '?')})")
    if "teacher_run" in m:
        lines.append(f"teacher      {m['teacher_run']} ({m.get('teacher_model')})")
    if m.get("aux"):
        a = m["aux"]
        f1 = a["best_val_macro_f1"]
        lines.append(
            f"Aux-Net      best val macro-F1 {'n/a' if f1 is None else f'{f1:.4f}'} at epoch "
            f"{a['best_epoch']}, {a['train_images']:,} training images"
        )
    lines.append(
        f"parameters   {gene.num_parameters:,}: "
        + ", ".join(f"{g} {n:,}" for g, n in groups.items())
    )
    depths = [
        d
        for d in STORAGE_DEPTHS
        if m["method"] in ("tleg", "ldr", "inherit", "mmlg") or d <= m["depth"]
    ]
    if depths:
        arch = {
            k: m[k]
            for k in (
                "img_size",
                "patch_size",
                "in_chans",
                "num_classes",
                "embed_dim",
                "num_heads",
                "mlp_ratio",
                "qkv_bias",
            )
        }
        scratch = learngene.parameters_stored("scratch", depths, **arch)
        lines.append(
            f"storage      depths {','.join(map(str, depths))} at width {m['embed_dim']}: "
            f"{scratch:,} parameters as trained models, {scratch / gene.num_parameters:.1f}x "
            "this learngene"
        )
    return lines
