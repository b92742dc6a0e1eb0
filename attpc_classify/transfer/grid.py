"""The grid of fine-tuning runs on the target: which cells, and how one cell runs.

A *cell* is one strategy x size (depth, width) x task x labelled-set size x seed. It
builds the initial model, evaluates it on the target test set (budget 0), fine-tunes it
with `attpc_classify.engine.fit` for ``max(budgets)`` epochs (``scratch_full``:
``full_epochs``) on one schedule (linear warm-up, cosine over the whole run) and
evaluates it at every budget epoch along the way. The intermediate budgets are therefore
points along one run, not separately scheduled runs: a run planned for 1 epoch would
decay its learning rate sooner. ``logreg`` is fitted to convergence by L-BFGS and
reported at the last budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from attpc_classify.data import output_names, task_labels
from attpc_classify.metrics import f1_scores
from attpc_classify.train_config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from attpc_classify.transfer.config import LEARNGENE_OF, MULTIVIEW, VIT_STRATEGIES, BenchConfig
from attpc_classify.transfer.stages import vit_model_config
from data_prep.imagefile import ImageSet

#: results.csv columns, in order (see docs/benchmark.md for their meaning)
COLUMNS: tuple[str, ...] = (
    "strategy",
    "depth",
    "width",
    "task",
    "n_train",
    "budget_epochs",
    "seed",
    "proton_f1",
    "macro_f1",
    "accuracy",
    "train_images",
    "wall_s",
    "shared_images",
    "shared_wall_s",
    "params_stored",
    "model_params",
    "headline",
)
#: columns that identify a row (no two rows share them)
KEY_COLUMNS = ("strategy", "depth", "width", "task", "n_train", "budget_epochs", "seed")


@dataclass(frozen=True)
class Cell:
    """One fine-tuning run of the grid; ``depth``/``width`` are 0 for non-ViT models."""

    strategy: str
    depth: int
    width: int
    task: str
    n_train: int
    seed: int
    headline: bool

    @property
    def key(self) -> tuple:
        return (self.strategy, self.depth, self.width, self.task, self.n_train, self.seed)

    @property
    def name(self) -> str:
        size = f" d{self.depth} w{self.width}" if self.depth else ""
        return f"{self.strategy}{size} {self.task} n={self.n_train} seed {self.seed}"


def cell_key(row: dict[str, Any]) -> tuple:
    """The `Cell.key` a results row belongs to."""
    return (
        row["strategy"],
        int(row["depth"]),
        int(row["width"]),
        row["task"],
        int(row["n_train"]),
        int(row["seed"]),
    )


def plan_cells(cfg: BenchConfig) -> list[Cell]:
    """Every cell of the grid, headline cells first (so a cut-short run has them)."""
    g, v = cfg.grid, cfg.vit
    cells: list[Cell] = []
    for n in (g.headline_size, *[s for s in cfg.data.train_sizes if s != g.headline_size]):
        depths = v.depths if n == g.headline_size else g.other_size_depths
        for seed in range(g.seeds):
            for task in g.tasks:
                for strategy in g.strategies:
                    for depth, width in cfg.strategy_sizes(strategy, depths):
                        headline = n == g.headline_size and depth in (0, g.headline_depth)
                        if seed >= (g.seeds if headline else g.other_seeds):
                            continue
                        cells.append(Cell(strategy, depth, width, task, n, seed, headline))
    # the headline table first: its cells of the first task (every seed), then of the
    # others; then seed 0 of every size, then the rest in plan order
    order = {c: i for i, c in enumerate(cells)}
    return sorted(
        cells,
        key=lambda c: (
            not c.headline, c.task != g.tasks[0], c.n_train != g.headline_size, c.seed > 0,
            order[c],
        ),
    )  # fmt: skip


# --------------------------------------------------------------------------- data


def train_subset(pool: ImageSet, n: int, seed: int, data_seed: int) -> ImageSet:
    """``n`` labelled events of the target pool, stratified by class, drawn by ``seed``.

    The seed changes which events are labelled as well as the training randomness; the
    whole pool (n = its size) is the same for every seed.
    """
    from attpc_classify.data import labelled, stratified_split

    pool = labelled(pool)
    if n >= len(pool):
        return pool
    rng = np.random.default_rng([data_seed, n, seed])
    _, keep = stratified_split(pool.label, n / len(pool), rng)
    return pool.subset(keep)


class Evaluator:
    """The target test set of one task, held as tensors, scored for any model."""

    def __init__(self, test: ImageSet, task: str, cfg: BenchConfig):
        from attpc_classify.engine import autocast_dtype, resolve_device

        self.task = task
        self.k = len(output_names(task, test.class_names))
        self.y = task_labels(test.label, task)
        self.images = torch.from_numpy(np.ascontiguousarray(test.images))
        self.voxels = None if test.voxels is None else torch.from_numpy(test.voxels)
        self.device = resolve_device(cfg.device)
        self.dtype = autocast_dtype(cfg.precision, self.device)
        self.batch_size = cfg.finetune.eval_batch_size

    def __call__(self, model: nn.Module) -> dict[str, float]:
        from attpc_classify.engine import predict_logits

        voxels = getattr(model, "input_kind", "images") == "voxels"
        x = self.voxels if voxels else self.images
        device = torch.device("cpu") if voxels else self.device
        model.to(device)
        logits = predict_logits(
            model,
            x,
            device=device,
            dtype=None if voxels else self.dtype,
            batch_size=self.batch_size,
        )
        return f1_scores(self.y, logits.argmax(1).numpy(), self.k)


# --------------------------------------------------------------------------- models


@dataclass
class Artifacts:
    """What the cells start from: pre-trained run directories and learngene files."""

    pretrained: dict[int, str]  # depth -> run directory (source, 3-class)
    learngenes: dict[str, str]  # method -> learngene file
    class_names: tuple[str, ...]


def build_initial(cell: Cell, cfg: BenchConfig, art: Artifacts, image_config) -> nn.Module:
    """The model a cell starts from, with fresh parameters seeded by the cell's seed."""
    import learngene
    from attpc_classify.models.build import build_model

    names = output_names(cell.task, art.class_names)
    k = len(names)
    s = cell.strategy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cell.seed)
        if s in ("scratch", "scratch_full"):
            return build_model(
                vit_model_config(cfg, cell.depth, cell.width),
                image_config=image_config,
                num_classes=k,
            )
        if s == "prefin":
            mc = vit_model_config(cfg, cell.depth, init=f"run:{art.pretrained[cell.depth]}")
            return build_model(mc, image_config=image_config, num_classes=k, output_names=names)
        if s in MULTIVIEW:
            from attpc_classify.transfer.multiview import build_multiview

            return build_multiview(cell, cfg, art.learngenes.get("mmlg"), image_config, names)
        if s in LEARNGENE_OF:
            selection = "magnitude" if s == "lets_magnitude" else "continuous"
            model = learngene.build_descendant(
                art.learngenes[LEARNGENE_OF[s]],
                depth=cell.depth,
                num_classes=k,
                width=cell.width,
                selection=selection,
                class_names=names,
                seed=cell.seed,
                drop_path_rate=cfg.vit.drop_path,
            )
            model.input_kind = "images"
            return model
        f = cfg.finetune
        if s == "cnn_scratch":
            mc = ModelConfig(name="cnn", width=f.cnn_width, depth=f.cnn_depth)
        elif s == "cnn_imagenet":
            mc = ModelConfig(
                name="timm_cnn", timm_name=f.imagenet_model, pretrained_file=f.imagenet_weights
            )
        else:
            mc = ModelConfig(name="logreg", C=f.logreg_C, max_iter=f.logreg_max_iter)
        return build_model(mc, image_config=image_config, num_classes=k)


def cell_optim(cell: Cell, cfg: BenchConfig) -> OptimConfig:
    """The optimiser of a cell: its family's recipe, run for the cell's whole budget."""
    f = cfg.finetune
    base = {"cnn_scratch": f.cnn_optim, "cnn_imagenet": f.imagenet_optim}.get(
        cell.strategy, f.optim
    )
    kw = dict(vars(base))
    kw["epochs"] = f.full_epochs if cell.strategy == "scratch_full" else max(f.budgets)
    if cell.strategy == "scratch_full":
        kw["warmup_epochs"] = f.full_warmup_epochs
    kw["patience"] = 0  # fixed budgets: no early stopping, no validation set
    return OptimConfig(**kw)


# --------------------------------------------------------------------------- one cell


def run_cell(
    cell: Cell,
    cfg: BenchConfig,
    art: Artifacts,
    train: ImageSet,
    evaluate: Evaluator,
) -> list[dict[str, Any]]:
    """Fine-tune one cell; one row per budget epoch, cost columns of this cell only.

    ``train_images`` / ``wall_s`` of a row count the fine-tuning up to that budget
    (model building included in the wall time); the shared costs are added by the caller.
    """
    from attpc_classify.engine import fit

    t0 = time.perf_counter()
    model = build_initial(cell, cfg, art, train.config)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    base = {
        "strategy": cell.strategy,
        "depth": cell.depth,
        "width": cell.width,
        "task": cell.task,
        "n_train": cell.n_train,
        "seed": cell.seed,
        "model_params": n_params,
        "headline": int(cell.headline),
    }

    if cell.strategy == "logreg":
        fitted = _fit_logreg(model, train, cell, cfg)
        return [base | fitted | {"wall_s": time.perf_counter() - t0} | evaluate(model)]

    teacher, teacher_cost = None, {"train_images": 0, "wall_s": 0.0}
    if cfg.finetune.teacher == "cnn" and cell.strategy in VIT_STRATEGIES:
        teacher, teacher_cost = _train_cnn_teacher(cell, cfg, art, train)
    optim = cell_optim(cell, cfg)
    budgets = sorted({*cfg.finetune.budgets, optim.epochs})
    if cell.strategy != "scratch_full":
        budgets = [b for b in budgets if b <= optim.epochs]
    rows = [base | {"budget_epochs": 0, "train_images": 0, "wall_s": build_s} | evaluate(model)]

    def on_epoch(epoch: int, model: nn.Module, record: dict[str, Any]) -> None:
        if epoch in budgets:
            rows.append(
                base
                | {
                    "budget_epochs": epoch,
                    "train_images": teacher_cost["train_images"] + record["train_images"],
                    "wall_s": teacher_cost["wall_s"] + build_s + record["wall_s"],
                }
                | evaluate(model)
            )

    tc = _train_config(cell, cfg, optim)
    fit(model, train, None, tc, task=cell.task, out_dir=None, on_epoch=on_epoch, teacher=teacher)
    return rows


def _train_config(cell: Cell, cfg: BenchConfig, optim: OptimConfig) -> TrainConfig:
    return TrainConfig(
        optim=optim,
        distill=cfg.finetune.distill,
        data=DataConfig(task=cell.task, augment=cfg.finetune.augment),
        seed=cell.seed,
        device=cfg.device,
        precision=cfg.precision,
        eval_batch_size=cfg.finetune.eval_batch_size,
    )


def _train_cnn_teacher(
    cell: Cell, cfg: BenchConfig, art: Artifacts, train: ImageSet
) -> tuple[nn.Module, dict[str, Any]]:
    """The cell's soft-target teacher: the ``cnn_scratch`` recipe on the cell's events."""
    from dataclasses import replace

    from attpc_classify.engine import fit

    t0 = time.perf_counter()
    twin = replace(cell, strategy="cnn_scratch", depth=0, width=0)
    cnn = build_initial(twin, cfg, art, train.config)
    result = fit(
        cnn,
        train,
        None,
        _train_config(twin, cfg, cell_optim(twin, cfg)),
        task=cell.task,
        out_dir=None,
    )
    return cnn.eval(), {"train_images": result.train_images, "wall_s": time.perf_counter() - t0}


def _fit_logreg(model: nn.Module, train: ImageSet, cell: Cell, cfg: BenchConfig) -> dict:
    """L-BFGS on the voxels of the training set, as ``train`` does for ``logreg``."""
    from attpc_classify.models.voxel import fit_logreg

    if train.voxels is None:
        raise ValueError("logreg needs voxels: the benchmark images have voxel_grid 0")
    x = train.voxels.astype(np.float32) / (255.0 if train.voxels.dtype == np.uint8 else 1.0)
    y = task_labels(train.label, cell.task)
    iters = fit_logreg(
        model,
        x,
        y,
        C=cfg.finetune.logreg_C,
        max_iter=cfg.finetune.logreg_max_iter,
        balanced=cfg.finetune.optim.balance != "none",
        seed=cell.seed,
    )
    return {"budget_epochs": max(cfg.finetune.budgets), "train_images": len(y) * iters}
