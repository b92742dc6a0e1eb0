"""Training: `fit` (one model, one loop) and `train_run` (the whole ``train`` command).

The loop, in the order it runs::

    for epoch:                       # reseeded from (seed, epoch): resume == uninterrupted
        order = shuffle or balanced sample of the training events
        for batch:
            lr = warm-up then cosine(step)
            x = augment(batch)       # exact detector symmetries only (data.augment_batch)
            loss = (1-a) CE(label smoothing, class weights) + a tau^2 KL(teacher || student)
                   (a ViT with a distillation token: learngene.distill.deit_loss, DeiT's)
            AdamW step (grad clip, AMP)
        validate -> macro-F1; keep the best weights; stop after `patience` flat epochs
        write metrics.jsonl, model.* (if best), last.* (for --resume)

Device ``auto``: CUDA with autocast (bf16, or fp16 with a GradScaler) when present, else
CPU with bf16 autocast when the processor has bf16 instructions. Seeded: the same config
gives the same weights on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attpc_classify import checkpoint, distributed
from attpc_classify.config import git_sha, read_yaml, save_config, to_dict
from attpc_classify.data import (
    allowed_transforms,
    as_float,
    augment_batch,
    class_weights,
    load_datasets,
    mix_batch,
    output_names,
    sample_weights,
    task_arrays,
)
from attpc_classify.device import autocast, autocast_dtype, resolve_device
from attpc_classify.metrics import f1_scores
from attpc_classify.models import SKLEARN_MODELS
from attpc_classify.plots import plot_learning_curves
from attpc_classify.train_config import OptimConfig, TrainConfig
from data_prep.atomic import atomic_path, check_writable
from data_prep.errors import InputError
from data_prep.imagefile import ImageSet
from data_prep.interrupt import check_interrupt
from learngene.distill import deit_loss

logger = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass
class FitResult:
    """What `fit` did. On return the model holds the weights of ``best_epoch``."""

    best_metric: float  # validation macro-F1 of the best epoch (nan without validation)
    best_epoch: int  # 1-based
    epochs_run: int  # epochs completed, resumed ones included
    train_images: int  # training images processed (the cost measure of the benchmark)
    wall_s: float  # seconds spent training and validating
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows


# --------------------------------------------------------------------------- pieces


def lr_at(step: int, *, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` down to ``min_lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    *,
    alpha: float,
    tau: float,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ce_scale: float = 1.0,
    kl_scale: float = 1.0,
) -> torch.Tensor:
    """``(1-alpha) CE + alpha tau^2 KL(softmax(t/tau) || softmax(s/tau))``; CE alone
    without a teacher.

    ``ce_scale`` and ``kl_scale`` multiply the two means; data-parallel training passes
    this rank's share of the batch (`distributed.loss_shares`) so that the averaged
    gradient is the whole batch's."""
    ce = F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=label_smoothing)
    ce = ce * ce_scale if ce_scale != 1.0 else ce
    if teacher_logits is None:
        return ce
    kl = F.kl_div(
        F.log_softmax(logits.float() / tau, dim=-1),
        F.log_softmax(teacher_logits.float() / tau, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return (1.0 - alpha) * ce + alpha * tau**2 * kl * kl_scale


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Logits ``(N, K)`` float32 on the CPU for raw on-disk inputs ``x`` (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        check_interrupt()
        xb = as_float(x[start : start + batch_size].to(device))
        with autocast(device, dtype):
            out.append(model(xb).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def validate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int,
    env: distributed.DistEnv | None = None,
) -> dict[str, float]:
    """Validation loss (plain CE), macro-F1 and accuracy.

    In a process group (``env``) every rank predicts its share of the events and the
    logits are gathered back in order: every rank returns the same metrics.
    """
    env = env or distributed.DistEnv()
    if env.world_size > 1:
        distributed.sync_buffers(model, env)  # rank 0's BatchNorm statistics everywhere
        mine = distributed.shard(x, env)
        local = predict_logits(model, mine, device=device, dtype=dtype, batch_size=batch_size)
        logits = distributed.gather_rows(local, len(x), env)
    else:
        logits = predict_logits(model, x, device=device, dtype=dtype, batch_size=batch_size)
    s = f1_scores(y.numpy(), logits.argmax(1).numpy(), k)
    return {
        "val_loss": float(F.cross_entropy(logits, y)),
        "val_macro_f1": s["macro_f1"],
        "val_accuracy": s["accuracy"],
    }


def record_threshold(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    class_names: tuple[str, ...],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int,
    out_dir: Path | None,
) -> dict[str, Any]:
    """Choose the proton threshold with the best validation proton F1 (`decision`
    module), log it, and record it in ``out_dir/model.json`` (when given)."""
    from attpc_classify.decision import choose_proton_threshold

    names = output_names(task, class_names)
    logits = predict_logits(model, x, device=device, dtype=dtype, batch_size=batch_size)
    p_proton = logits.softmax(dim=-1)[:, names.index("proton")].numpy()
    chosen = choose_proton_threshold(p_proton, y.numpy() == names.index("proton"))
    decision = {"rule": "proton_threshold", "chosen_on": "validation", **chosen}
    logger.info(
        f"proton threshold {decision['proton_threshold']:g} (validation proton F1 "
        f"{decision['proton_f1']:.4f}, at 0.5: {decision['proton_f1_at_0.5']:.4f})"
    )
    if out_dir is not None:
        checkpoint.set_decision(out_dir, decision)
    return decision


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's split: decay matrices and convolutions, not biases, norms, embeddings."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name in skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _detector_images(
    bank: Any, idx: torch.Tensor, cfg: TrainConfig, config: Any, epoch: int, step: int
) -> torch.Tensor:
    """The batch re-projected through random detectors, seeded by (seed, epoch, step)."""
    from attpc_classify.augment import augmented_images

    rng = np.random.default_rng([cfg.seed, epoch, step])
    images = augmented_images(bank, idx.cpu().numpy(), cfg.data.detector, config, rng)
    return torch.from_numpy(images)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def run_metadata(model: nn.Module, train: ImageSet, task: str, cfg: TrainConfig) -> dict[str, Any]:
    """The ``model.json`` fields that do not change from epoch to epoch."""
    spec = getattr(model, "model_spec", None) or {"name": type(model).__name__, "args": None}
    return {
        "model": {**spec, "config": to_dict(cfg.model)},
        "image_config": train.config.to_dict(),
        "class_names": list(train.class_names),
        "output_names": list(output_names(task, train.class_names)),
        "task": task,
        "input": getattr(model, "input_kind", "images"),
        "git_sha": git_sha(),
        "seed": cfg.seed,
    }


def write_config(cfg: TrainConfig, path: Path) -> None:
    """The resolved config + git SHA as YAML, written atomically."""
    save_config(cfg, path)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` from the history (atomic: no line lost or doubled)."""
    import json

    with atomic_path(run_dir / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))


# --------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet | None,
    cfg: TrainConfig,
    *,
    task: str,
    out_dir: Path | None,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    on_epoch: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on the labelled events of ``train``; keep the best on ``val``.

    Parameters
    ----------
    model
        Any module mapping float inputs in [0, 1] to logits ``(B, K)``; it reads images
        ``(B, C, S, S)`` unless it has ``input_kind = "voxels"``.
    train, val
        Image sets (label -1 events are skipped). Without ``val`` the last epoch is kept.
    cfg
        Optimiser, distillation, augmentation, seed, device and precision settings.
    task
        ``binary`` (proton vs rest) | ``multiclass``.
    out_dir
        Run directory for model.*, last.*, metrics.jsonl, config.yaml and plots; None
        writes nothing.
    teacher
        Soft targets for distillation (``cfg.distill``); same input and classes as
        ``model``; moved to the device and put in eval mode.
    progress
        Called with the number of images of every step.
    resume
        Continue from ``out_dir/last.*``.
    on_epoch
        Called after every epoch with (epoch, 1-based; the model with that epoch's
        weights; its metrics.jsonl row), outside the timed part, e.g. to evaluate
        intermediate budgets.
    """
    run = _setup(model, train, val, cfg, task=task, teacher=teacher)
    state, best_weights = _FitState(), None
    if resume:
        state, best_weights = _resume(run, out_dir)
    writes = out_dir is not None and run.env.is_main  # only rank 0 writes
    if writes:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_config(cfg, Path(out_dir) / "config.yaml")
    meta = run_metadata(model, train, task, cfg)
    meta["metrics"] = {"n_train": run.n, "n_val": 0 if run.y_va is None else len(run.y_va)}

    while not state.stopped(cfg.optim, run.total_steps):
        epoch, t0 = state.epoch, time.perf_counter()
        losses, lr = _train_epoch(run, state, progress)
        row = _epoch_row(run, epoch, losses)
        state.epoch += 1
        state.wall_s += time.perf_counter() - t0
        row |= {"lr": lr, "train_images": state.train_images, "wall_s": state.wall_s}
        state.history.append(row)
        improved = state.record(row["val_macro_f1"])
        if improved:
            best_weights = {key: v.detach().cpu().clone() for key, v in model.state_dict().items()}
        if writes:
            _save_epoch(run, Path(out_dir), state, meta, row, improved)
        logger.info(_epoch_line(row, cfg.optim.epochs, lr, time.perf_counter() - t0, improved))
        if on_epoch is not None:
            on_epoch(epoch + 1, model, row)

    if best_weights is not None:
        model.load_state_dict(best_weights)
    if cfg.proton_threshold == "val_f1" and run.x_va is not None and run.env.is_main:
        record_threshold(
            model, run.x_va, run.y_va, task, train.class_names, device=run.device,
            dtype=run.dtype, batch_size=cfg.eval_batch_size,
            out_dir=out_dir if state.best_epoch else None,
        )  # fmt: skip
    if writes and state.history:
        plot_learning_curves(state.history, Path(out_dir) / "plots" / "learning_curves.png")
    return FitResult(
        best_metric=float("nan") if state.best_metric is None else float(state.best_metric),
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        train_images=state.train_images,
        wall_s=state.wall_s,
        history=state.history,
    )


@dataclass
class _FitState:
    """The counters of a fit: what ``last.json`` saves and ``--resume`` restores."""

    epoch: int = 0
    step: int = 0
    train_images: int = 0
    wall_s: float = 0.0
    best_metric: float | None = None  # validation macro-F1 of the best epoch
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best, for early stopping
    history: list[dict[str, Any]] = field(default_factory=list)

    def stopped(self, o: OptimConfig, total_steps: int) -> bool:
        return (
            self.step >= total_steps
            or self.epoch >= o.epochs
            or (o.patience > 0 and self.bad_epochs >= o.patience)
        )

    def record(self, score: float | None) -> bool:
        """Note the score of the epoch just finished; True when it is the best so far
        (always, without validation: the last epoch is kept)."""
        improved = score is None or self.best_metric is None or score > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = score, self.epoch, 0
        else:
            self.bad_epochs += 1
        return improved


@dataclass
class _Run:
    """Everything a fit's steps read and do not change: data on the device, model and its
    (DDP-wrapped) training view, optimiser, schedule, augmentation."""

    cfg: TrainConfig
    env: distributed.DistEnv
    device: torch.device
    dtype: torch.dtype | None
    model: nn.Module
    train_model: nn.Module  # DDP in a process group; ``model`` keeps the bare weights
    teacher: nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    k: int  # classes of the task
    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_va: torch.Tensor | None
    y_va: torch.Tensor | None
    image_config: Any  # the training set's ImageConfig (detector augmentation)
    views: tuple[str, ...] | None
    transforms: Any
    bank: Any  # point clouds for detector augmentation, or None
    weight: torch.Tensor | None  # class weights of the loss (balance=weights)
    draw_w: torch.Tensor | None  # sampling weights (balance=sampler)
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    min_lr: float

    @property
    def n(self) -> int:
        return len(self.y_tr)


def _setup(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet | None,
    cfg: TrainConfig,
    *,
    task: str,
    teacher: nn.Module | None,
) -> _Run:
    """Move data and model to the device; build the optimiser and the schedule."""
    o = cfg.optim
    env = distributed.current()  # one process unless torchrun started us (train_run)
    distributed.check_batch_size(o.batch_size, env)
    device = distributed.local_device(resolve_device(cfg.device), env)
    dtype = autocast_dtype(cfg.precision, device)
    kind = getattr(model, "input_kind", "images")
    k = len(output_names(task, train.class_names))
    x_tr, y_tr = task_arrays(train, task, kind)
    n = len(y_tr)
    if n == 0:
        raise InputError("no labelled training events", path=train.path)
    x_va, y_va = task_arrays(val, task, kind) if val is not None else (None, None)
    if x_va is not None and len(y_va) == 0:
        x_va = y_va = None

    bank = None
    if cfg.data.detector_augment:
        if kind != "images":
            raise InputError("data.detector_augment is for image models")
        from attpc_classify.augment import load_points

        # the labelled training events, in the order of x_tr (see _arrays)
        bank = load_points(train.subset(np.flatnonzero(train.label >= 0)))
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    # drop_last: a batch of one breaks BatchNorm; every event still comes up across epochs
    steps_per_epoch = max(1, n // o.batch_size)
    total_steps = o.epochs * steps_per_epoch
    if cfg.max_train_images:
        total_steps = min(total_steps, math.ceil(cfg.max_train_images / o.batch_size))
    labels = y_tr.numpy()
    return _Run(
        cfg=cfg,
        env=env,
        device=device,
        dtype=dtype,
        model=model,
        train_model=distributed.wrap_model(model, env, device),
        teacher=teacher,
        optimizer=torch.optim.AdamW(
            param_groups(model, o.weight_decay),
            lr=o.lr,
            betas=o.betas,
            weight_decay=o.weight_decay,
        ),
        scaler=torch.amp.GradScaler("cuda", enabled=dtype == torch.float16),
        k=k,
        x_tr=x_tr.to(device),  # whole set on the device: uint8 images are small
        y_tr=y_tr.to(device),
        x_va=x_va,
        y_va=y_va,
        image_config=train.config,
        views=train.config.views if kind == "images" else None,
        transforms=allowed_transforms(train.config, cfg.data.augment, voxels=kind == "voxels"),
        bank=bank,
        weight=class_weights(labels, k).to(device) if o.balance == "weights" else None,
        draw_w=sample_weights(labels, k) if o.balance == "sampler" else None,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=round(o.warmup_epochs * steps_per_epoch),
        min_lr=o.lr * o.min_lr_ratio,
    )


def _resume(run: _Run, out_dir: Path | None) -> tuple[_FitState, dict | None]:
    """Model, optimiser and counters from ``out_dir/last.*``; the best epoch's weights."""
    if out_dir is None or not (Path(out_dir) / "last.json").exists():
        raise InputError("nothing to resume: no last.json", path=out_dir)
    saved = checkpoint.load_last(out_dir, run.model, run.optimizer)
    state = _FitState(**{f.name: saved[f.name] for f in fields(_FitState)})
    if saved.get("scaler"):
        run.scaler.load_state_dict(saved["scaler"])
    best_weights = checkpoint.read_run(out_dir)[1] if state.best_epoch else None
    logger.info(f"resumed {out_dir} after epoch {state.epoch} (step {state.step})")
    return state, best_weights


def _train_epoch(
    run: _Run, state: _FitState, progress: Progress | None
) -> tuple[list[float], float]:
    """One pass over the training events (or what is left of the step budget); returns
    the step losses and the last learning rate."""
    cfg, o, epoch = run.cfg, run.cfg.optim, state.epoch
    lr = o.lr
    # Everything random in an epoch follows from (seed, epoch), in a forked global RNG
    # (dropout, drop-path): a resumed run draws exactly what an uninterrupted one does.
    devices = [run.device.index or 0] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(distributed.rank_seed(_epoch_seed(cfg.seed, epoch), run.env))
        gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch) + 1)
        if run.draw_w is not None:
            order = torch.multinomial(run.draw_w, run.n, replacement=True, generator=gen)
        else:
            order = torch.randperm(run.n, generator=gen)
        run.model.train()
        losses = []
        for i in range(run.steps_per_epoch):
            if state.step >= run.total_steps:
                break
            check_interrupt()
            lr = lr_at(state.step, total=run.total_steps, warmup=run.warmup_steps, lr=o.lr,
                       min_lr=run.min_lr)  # fmt: skip
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            idx = order[i * o.batch_size : (i + 1) * o.batch_size].to(run.device)
            losses.append(_train_step(run, idx, gen, epoch, i))
            if not math.isfinite(losses[-1]):
                raise InputError(
                    f"training diverged: loss {losses[-1]} at epoch {epoch + 1}, step "
                    f"{state.step + 1} (optim.lr={o.lr}); lower optim.lr or set "
                    "optim.grad_clip"
                )
            state.step += 1
            state.train_images += len(idx)
            if progress is not None:
                progress(len(idx))
    return losses, lr


def _train_step(run: _Run, idx: torch.Tensor, gen: torch.Generator, epoch: int, i: int) -> float:
    """One optimiser step on the training events ``idx``; returns the loss."""
    cfg, o = run.cfg, run.cfg.optim
    xb = as_float(run.x_tr[idx])
    if run.bank is not None:
        xb = as_float(_detector_images(run.bank, idx, cfg, run.image_config, epoch, i))
        xb = xb.to(run.device)
    xb = augment_batch(xb, run.transforms, gen, views=run.views)
    yb = run.y_tr[idx]
    yb_mix, lam = yb, 1.0
    if cfg.data.mixup > 0 or cfg.data.cutmix > 0:  # DeiT: the teacher sees the mixed images
        xb, perm, lam = mix_batch(xb, gen, mixup_alpha=cfg.data.mixup,
                                  cutmix_alpha=cfg.data.cutmix)  # fmt: skip
        yb_mix = yb[perm]
    # DDP: every rank drew the same order and augmentation; keep this rank's rows of the
    # global batch, its loss weighted by its share
    ce_scale, kl_scale = distributed.loss_shares(yb, run.env, run.weight)
    xb, yb = distributed.shard(xb, run.env), distributed.shard(yb, run.env)
    yb_mix = distributed.shard(yb_mix, run.env)
    with autocast(run.device, run.dtype):
        logits = run.train_model(xb)
        t_logits = None
        if run.teacher is not None:
            with torch.no_grad():
                t_logits = run.teacher(xb)

        def loss_for(labels: torch.Tensor) -> torch.Tensor:
            if isinstance(logits, tuple):  # a ViT with a distillation token: (class, dist)
                return deit_loss(
                    *logits, labels, t_logits, kind=cfg.distill.kind, alpha=cfg.distill.alpha,
                    tau=cfg.distill.tau, weight=run.weight, label_smoothing=o.label_smoothing,
                    ce_scale=ce_scale, kl_scale=kl_scale,
                )  # fmt: skip
            return distillation_loss(
                logits, labels, t_logits, alpha=cfg.distill.alpha, tau=cfg.distill.tau,
                weight=run.weight, label_smoothing=o.label_smoothing,
                ce_scale=ce_scale, kl_scale=kl_scale,
            )  # fmt: skip

        # the losses are linear in the label term, so the mixed label target is the mix of
        # the two losses (the teacher's term, on the mixed image, is the same in both)
        loss = loss_for(yb) if lam == 1.0 else lam * loss_for(yb) + (1 - lam) * loss_for(yb_mix)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if o.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), o.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return loss.item()


def _epoch_row(run: _Run, epoch: int, losses: list[float]) -> dict[str, Any]:
    """The epoch's metrics.jsonl row so far: training loss (averaged over the ranks) and
    the validation scores; a non-finite loss stops the fit."""
    # the ranks' scaled losses average to the whole batches' losses
    train_loss = distributed.all_reduce_mean({"loss": float(np.mean(losses))}, run.env)["loss"]
    row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
    if run.x_va is not None:
        row |= validate(run.model, run.x_va, run.y_va, run.k, device=run.device,
                        dtype=run.dtype, batch_size=run.cfg.eval_batch_size,
                        env=run.env)  # fmt: skip
    else:
        row |= {"val_loss": None, "val_macro_f1": None, "val_accuracy": None}
    if not all(math.isfinite(row[k]) for k in ("train_loss", "val_loss") if row[k] is not None):
        raise InputError(
            f"training diverged: non-finite loss in epoch {epoch + 1} (train "
            f"{row['train_loss']}, validation {row['val_loss']}, optim.lr={run.cfg.optim.lr}); "
            "lower optim.lr or set optim.grad_clip"
        )
    return row


def _save_epoch(
    run: _Run, out: Path, state: _FitState, meta: dict, row: dict, improved: bool
) -> None:
    """The best model (when this epoch is), the history and the resume state."""
    if improved:
        metrics = {key: row[key] for key in ("val_loss", "val_macro_f1", "val_accuracy")}
        meta["metrics"] |= metrics | {"train_images": state.train_images}
        checkpoint.save_model(out, run.model, meta | {"epoch": state.epoch})
    write_history(out, state.history)
    scaler = run.scaler.state_dict() if run.scaler.is_enabled() else None
    checkpoint.save_last(out, run.model, run.optimizer, asdict(state) | {"scaler": scaler})


def _epoch_line(row: dict, epochs: int, lr: float, seconds: float, improved: bool) -> str:
    """``epoch 3/20  train_loss ...  val_f1 ...  lr ...  1.2s  *`` (``*``: best so far)."""
    val = (
        f"val_loss {row['val_loss']:.4f}  val_f1 {row['val_macro_f1']:.4f}  "
        f"val_acc {row['val_accuracy']:.4f}  "
        if row["val_loss"] is not None
        else ""
    )
    return (
        f"epoch {row['epoch']}/{epochs}  train_loss {row['train_loss']:.4f}  {val}"
        f"lr {lr:.2e}  {seconds:.1f}s" + ("  *" if improved else "")
    )


# --------------------------------------------------------------------------- train_run


def default_out(cfg: TrainConfig) -> Path:
    return Path(cfg.out or f"runs/{cfg.model.name}_{cfg.data.task}")


def _fit_sklearn(
    model: nn.Module,
    x_tr: torch.Tensor,
    y_tr: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    cfg: TrainConfig,
    source: tuple[np.ndarray, np.ndarray, float] | None = None,
    kinds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit ``model`` (logreg or gbt) with scikit-learn; the history row's extra fields.

    ``source`` (gbt with ``model.init=run:``): that run's simulated training events and
    the weight of each of ours (`trees_adapt.labelled_refit_inputs`), fitted together.
    ``kinds`` (gbt on named tracks, `data_prep.features.NAMED_SETS`): what each training
    event's tracks are (`data_prep.tracktruth`), for the track trees."""
    balanced = cfg.optim.balance != "none"
    if cfg.model.name == "gbt":
        from attpc_classify.models.gbt import (
            NamedTracksGBT,
            count_trees,
            event_inputs,
            fit_gbt,
            fit_named_events,
        )
        from attpc_classify.trees_adapt import gbt_params

        x, y, weight = x_tr.numpy(), y_tr.numpy(), None
        x_va, y_va = (None, None) if val is None else (val[0].numpy(), val[1].numpy())
        params = gbt_params(cfg.model)
        if kinds is not None:  # named tracks: the track trees first, then the event trees
            from attpc_classify.models.gbt import fit_named_tracks

            clf = fit_named_tracks(model, x, y, kinds, x_val=x_va, y_val=y_va, params=params,
                                   balanced=balanced, seed=cfg.seed,
                                   early_tracks=cfg.model.track_early_stopping)  # fmt: skip
            return {"boosting_iter": int(clf.n_iter_), "n_trees": count_trees(model)}
        if source is not None:  # the run's events, as its event trees read them, and ours
            x_s, y_s, w = source
            x, y = np.concatenate([x_s, event_inputs(model, x)]), np.concatenate([y_s, y])
            weight = np.concatenate([np.ones(len(y_s)), np.full(len(y_tr), w)])
            x_va = None if x_va is None else event_inputs(model, x_va)
        # early stopping on the validation split: the trees stop where its loss does
        fit = fit_named_events if isinstance(model, NamedTracksGBT) else fit_gbt
        clf = fit(model, x, y, x_val=x_va, y_val=y_va, params=params, balanced=balanced,
                  seed=cfg.seed, sample_weight=weight)  # fmt: skip
        return {"boosting_iter": int(clf.n_iter_), "n_trees": count_trees(model)}
    from attpc_classify.models.voxel import fit_logreg

    iters = fit_logreg(
        model, as_float(x_tr).numpy(), y_tr.numpy(), C=cfg.model.C, max_iter=cfg.model.max_iter,
        balanced=balanced, seed=cfg.seed,
    )  # fmt: skip
    return {"lbfgs_iter": iters, "train_images": len(y_tr) * iters}


def _train_sklearn(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet | None,
    cfg: TrainConfig,
    out_dir: Path,
) -> None:
    """The scikit-learn branch (logreg: L-BFGS, gbt: boosting), then the same files as
    `fit` writes."""
    t0 = time.perf_counter()
    task = cfg.data.task
    k = len(output_names(task, train.class_names))
    kind = getattr(model, "input_kind", "voxels")
    if kind == "features":  # trees: the unit hidden for data.unit_dropout of the runs
        from attpc_classify.data import training_features

        x_np, y_np = training_features(train, task, cfg.data.unit_dropout, cfg.seed)
        x_tr, y_tr = torch.from_numpy(x_np), torch.from_numpy(y_np)
        if cfg.data.unit_dropout > 0:
            logger.info(f"gbt: the run's charge unit hidden for {cfg.data.unit_dropout:.0%} of "
                        "the training run files (data.unit_dropout)")  # fmt: skip
    else:
        x_tr, y_tr = task_arrays(train, task, kind)
    has_val = val is not None and len(val) > 0
    x_va, y_va = task_arrays(val, task, kind) if has_val else (None, None)
    source, kinds = None, None
    named = getattr(model, "track_cols", None) is not None  # gbt on named tracks (NAMED_SETS)
    if named and not cfg.model.init.startswith("run:"):  # name the tracks by the truth
        from attpc_classify.data import labelled
        from data_prep.tracktruth import image_file_track_kinds

        kinds = image_file_track_kinds(labelled(train))
        logger.info(f"gbt: {int((kinds >= 0).sum()):,} tracks named by the simulation's "
                    "truth for the track trees")  # fmt: skip
    if cfg.model.init.startswith("run:"):  # gbt (ModelConfig refuses it for logreg)
        from attpc_classify.trees_adapt import labelled_refit_inputs

        run_dir = cfg.model.init.partition(":")[2]
        # trees that name tracks take the run's track trees: the target has no truth
        share = cfg.model.target_share
        source = labelled_refit_inputs(run_dir, train, task, model, share)
        logger.info(f"gbt: refitted on the {len(source[1])} simulated training events of "
                    f"{run_dir} plus these {len(y_tr)} labelled events, weight "
                    f"{source[2]:.3g} each ({share:.0%} of the total)")  # fmt: skip
    fitted = _fit_sklearn(model, x_tr, y_tr, (x_va, y_va) if has_val else None, cfg, source,
                          kinds)  # fmt: skip
    device = torch.device("cpu")
    train_logits = predict_logits(model, x_tr, device=device, dtype=None)
    row: dict[str, Any] = {"epoch": 1, "train_loss": float(F.cross_entropy(train_logits, y_tr))}
    if has_val:
        row |= validate(model, x_va, y_va, k, device=device, dtype=None, batch_size=1024)
    else:
        row |= {"val_loss": None, "val_macro_f1": None, "val_accuracy": None}
    wall = time.perf_counter() - t0
    row |= {"lr": None, "train_images": len(y_tr), "wall_s": wall, **fitted}
    meta = run_metadata(model, train, task, cfg)
    meta["metrics"] = {"n_train": len(y_tr), "n_val": 0 if val is None else len(val)}
    meta["metrics"] |= {key: row[key] for key in ("val_loss", "val_macro_f1", "val_accuracy")}
    meta["metrics"]["train_images"] = row["train_images"]
    checkpoint.save_model(out_dir, model, meta | {"epoch": 1})
    if cfg.proton_threshold == "val_f1" and has_val:
        record_threshold(model, x_va, y_va, task, train.class_names, device=device,
                         dtype=None, batch_size=1024, out_dir=out_dir)  # fmt: skip
    write_history(out_dir, [row])
    plot_learning_curves([row], out_dir / "plots" / "learning_curves.png")
    f1 = row["val_macro_f1"]
    logger.info(f"{cfg.model.name}: {fitted}, val_f1 {f1 if f1 is None else round(f1, 4)}, "
        f"{wall:.1f}s")  # fmt: skip


def _fitted_as_configured(cfg: TrainConfig, out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a finished scikit-learn fit made with ``cfg`` in all but
    the decision rule: refitting it would give the same model at the same cost."""
    if not (out_dir / "model.json").exists() or not (out_dir / "config.yaml").exists():
        return False
    # what does not change the fit: the rule, where the run lives, the code's commit
    free = ("proton_threshold", "out", "git_sha", "device", "precision", "eval_batch_size")
    saved = read_yaml(out_dir / "config.yaml")
    now = to_dict(cfg)
    return {k: v for k, v in saved.items() if k not in free} == {
        k: v for k, v in now.items() if k not in free
    }


def _decide_sklearn(model: nn.Module, val: ImageSet | None, cfg: TrainConfig,
                    out_dir: Path) -> None:  # fmt: skip
    """A finished tree or logistic-regression run resumed: its fitted model is loaded as
    it is and only the decision rule the config asks for is recorded (`record_threshold`)."""
    model.load_state_dict(checkpoint.read_run(out_dir)[1])
    if cfg.proton_threshold != "val_f1":  # argmax: a threshold recorded before goes
        checkpoint.set_decision(out_dir, None)
        logger.info(f"{out_dir}: already fitted; decision rule argmax")
        return
    if val is None or not len(val):
        raise InputError("proton_threshold=val_f1 needs validation events", path=out_dir)
    kind = getattr(model, "input_kind", "voxels")
    x_va, y_va = task_arrays(val, cfg.data.task, kind)
    record_threshold(model, x_va, y_va, cfg.data.task, val.class_names,
                     device=torch.device("cpu"), dtype=None, batch_size=1024,
                     out_dir=out_dir)  # fmt: skip


def train_run(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Read the data, build the model, train it and write the run directory; return it.

    Under ``torchrun --nproc_per_node N`` every process calls this: they join one process
    group (`distributed.session`), train one DistributedDataParallel model on shares of
    the same global batches, and only rank 0 logs, reports progress and writes files.
    """
    with distributed.session(cfg.device) as env:
        if env.world_size > 1 and cfg.model.name in SKLEARN_MODELS:
            raise InputError(
                f"model {cfg.model.name} is fitted by scikit-learn in one process: run it "
                "without torchrun"
            )
        if env.is_main:
            return _train_run(cfg, resume=resume, progress=progress)
        with _quiet_logs():  # rank 0 alone reports
            return _train_run(cfg, resume=resume, progress=None)


@contextlib.contextmanager
def _quiet_logs(names: tuple[str, ...] = ("attpc_classify", "learngene", "data_prep")):
    """Drop the INFO lines of these packages' loggers (warnings still show)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _train_run(
    cfg: TrainConfig,
    *,
    resume: bool,
    progress: Progress | None,
) -> Path:
    from attpc_classify.models import create_model, input_kind, model_args
    from attpc_classify.models.build import build_model

    out_dir = default_out(cfg)
    if resume and not (out_dir / "last.json").exists() and cfg.model.name not in SKLEARN_MODELS:
        raise InputError("nothing to resume here (no last.json)", path=out_dir)
    if not resume and ((out_dir / "last.json").exists() or (out_dir / "model.json").exists()):
        raise InputError("already holds a run: pass --resume or choose another --out", path=out_dir)
    check_writable(out_dir, directory=True)
    kind = input_kind(cfg.model.name)
    train, val = load_datasets(cfg, kind)
    names = output_names(cfg.data.task, train.class_names)
    # the initial weights follow from the seed; the caller's global RNG is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if resume and (out_dir / "model.json").exists():
            # weights come from last.*; the recorded spec also covers learngene-made ViTs
            spec = checkpoint.read_info(out_dir)[0].model
            model = create_model(spec["name"], spec["args"])
        elif resume:
            model = create_model(cfg.model.name, model_args(cfg.model, train.config, len(names)))
        else:
            model = build_model(
                cfg.model, image_config=train.config, num_classes=len(names),
                output_names=names,
            )  # fmt: skip
    logger.info(
        f"{cfg.model.name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(train)} training / {0 if val is None else len(val)} validation events; "
        f"task {cfg.data.task} {names}"
    )
    fresh = not out_dir.exists() or not any(out_dir.iterdir())
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if cfg.model.name in SKLEARN_MODELS:
            fitted = resume and _fitted_as_configured(cfg, out_dir)  # before it is rewritten
            write_config(cfg, out_dir / "config.yaml")
            if fitted:
                _decide_sklearn(model, val, cfg, out_dir)
            else:
                _train_sklearn(model, train, val, cfg, out_dir)
            return out_dir
        result = fit(
            model, train, val, cfg, task=cfg.data.task, out_dir=out_dir, progress=progress,
            resume=resume,
        )  # fmt: skip
    except Exception:
        # A failed new run (diverged, bad data, full disk) would leave a directory that
        # can be neither evaluated nor resumed, and that blocks the next try: remove it.
        # Interrupts keep last.* for --resume; a resumed run keeps what it had.
        if fresh and not resume:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    logger.info(
        f"best val macro-F1 {result.best_metric:.4f} at epoch {result.best_epoch} "
        f"({result.epochs_run} epochs, {result.train_images:,} images, {result.wall_s:.1f}s)"
    )
    return out_dir
