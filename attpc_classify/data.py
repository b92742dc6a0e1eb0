"""From an `ImageSet` to training batches: labels per task, split, balance, augmentation.

Everything stays in memory (an image file of 10k events x 2 views x 64^2 is 80 MB of
uint8) and batches are drawn by indexing tensors, with an explicit `torch.Generator`.

Augmentation (`augment_batch`) uses only transforms that map the images of an event onto
the images of a physically transformed event *exactly*, pixel for pixel. The beam, the
magnetic and the electric field all point along z, and the pad plane is the xy plane, so a
rotation about the beam axis is a symmetry of the detector. With images we can do it
exactly only for multiples of 90 degrees (other angles would resample charge sums):

* xy view: rotated with the event (x, y) -> (x', y');
* side views: a 180-degree turn (x, y) -> (-x, -y) flips the zy and zx views vertically;
  a 90-degree turn (x, y) -> (-y, x) turns the zx view into the new zy view and the zy
  view, flipped, into the new zx view -- so it needs both side views (or none);
* all of it needs x and y ranges symmetric about the beam axis (and equal for 90 degrees),
  so that pixel i maps onto pixel S-1-i.

Reflections (x -> -x, y -> -y, x <-> y) map the views just as exactly, but a mirror image
reverses the sense in which a charged track curls in the field along z (the mirror image
of a positive particle's helix is a negative particle's). They keep the class, yet they
are not a symmetry of the detector, so they are opt-in (``augment=rotate_reflect``). The
real detector's small tilt and the beam spot break the rotation symmetry slightly for real
data; simulated events have neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from data_prep.errors import InputError
from data_prep.events import binary_labels
from data_prep.imagefile import ImageSet, read_images
from data_prep.images import ImageConfig

if TYPE_CHECKING:
    from attpc_classify.train_config import TrainConfig

BINARY_NAMES: tuple[str, str] = ("proton", "rest")


# --------------------------------------------------------------------------- labels


def output_names(task: str, class_names: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the model outputs: ``("proton", "rest")`` or the file's class names."""
    return BINARY_NAMES if task == "binary" else tuple(class_names)


def task_labels(labels: np.ndarray, task: str) -> np.ndarray:
    """3-class labels -> labels of ``task`` (binary: proton 0 vs rest 1; -1 stays -1)."""
    labels = np.asarray(labels).astype(np.int64)
    return binary_labels(labels) if task == "binary" else labels


def labelled(images: ImageSet) -> ImageSet:
    """The events with a known label (label >= 0)."""
    return images.subset(np.flatnonzero(images.label >= 0))


def stratified_split(
    labels: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices holding ``val_fraction`` of every class in val.

    A class with at least two events gets at least one in each part.
    """
    labels = np.asarray(labels)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(len(idx) * val_fraction)
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_datasets(cfg: TrainConfig, kind: str) -> tuple[ImageSet, ImageSet | None]:
    """Training and validation sets: ``data.val_path``, else a stratified seeded split."""
    if not cfg.data.path:
        raise InputError("no training data: give --data FILE (or data.path in the config)")
    extra = {"voxels": kind == "voxels", "features": kind == "features"}
    full = labelled(read_images(cfg.data.path, **extra))
    if len(full) == 0:
        raise InputError("the image file holds no labelled event", path=cfg.data.path)
    if cfg.data.val_path:
        val = labelled(read_images(cfg.data.val_path, **extra))
        if val.config != full.config or val.class_names != full.class_names:
            raise InputError(
                "validation file was preprocessed differently from the training file",
                path=cfg.data.val_path,
            )
        return full, val
    # split on the 3-class label: binary and multiclass runs of one seed share the split
    rng = np.random.default_rng(cfg.seed)
    tr, va = stratified_split(full.label, cfg.data.val_fraction, rng)
    return full.subset(tr), full.subset(va)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (K * count_k)`` per class (1 for a mean class; absent classes get 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def sample_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Per-event weights giving every class the same total (balanced sampling)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(1.0 / counts[labels], dtype=torch.float64)


# --------------------------------------------------------------------------- inputs


def model_inputs(images: ImageSet, kind: str) -> np.ndarray:
    """The on-disk array a model of input ``kind`` ("images" | "voxels" | "features")
    reads."""
    if kind == "features":
        if images.features is None:
            raise ValueError("this ImageSet was read without features (features=True)")
        return images.features
    if kind == "voxels":
        if images.voxels is None:
            raise ValueError("this ImageSet was read without voxels (read_images(voxels=True))")
        return images.voxels
    return images.images


def task_arrays(images: ImageSet, task: str, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw inputs and task labels of the labelled events, as tensors."""
    known = labelled(images)
    x = torch.from_numpy(np.ascontiguousarray(model_inputs(known, kind)))
    y = torch.from_numpy(task_labels(known.label, task))
    return x, y


def hide_run_units(
    x: np.ndarray, runs: np.ndarray, names: Sequence[str], fraction: float, seed: int
) -> np.ndarray:
    """``x`` (features named ``names``) with the charges in the run's unit (the columns
    ending in ``_run``, `data_prep.features.run_columns`) set to NaN for a seeded
    ``fraction`` of the runs (at least one when ``fraction`` > 0): what a run without a
    unit looks like."""
    cols = [i for i, n in enumerate(names) if n.endswith("_run")]
    ids = np.unique(runs)
    if fraction <= 0 or not cols or not len(ids):
        return x
    n = max(1, round(fraction * len(ids)))
    hidden = np.random.default_rng(seed).choice(ids, n, replace=False)
    x = x.copy()
    x[np.ix_(np.isin(runs, hidden), cols)] = np.nan
    return x


def training_features(
    images: ImageSet, task: str, unit_dropout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The trees' training inputs and task labels (`task_arrays` of the features), the
    run's charge unit hidden for a seeded ``unit_dropout`` share of the run files
    (`hide_run_units`): the same at `train` and in every refit of its trees
    (`attpc_classify.trees_adapt.source_inputs`)."""
    x, y = (t.numpy() for t in task_arrays(images, task, "features"))
    if unit_dropout > 0:
        names = images.config.feature_names
        x = hide_run_units(x, labelled(images).run, names, unit_dropout, seed)
    return x, y


def as_float(x: torch.Tensor) -> torch.Tensor:
    """On-disk values -> float32 in [0, 1]: uint8 / 255, float16 and float32 as they are."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


# --------------------------------------------------------------------------- augmentation


class Transform(NamedTuple):
    """A signed permutation of the pad-plane axes: ``x' = sx * (y if swap else x)``,
    ``y' = sy * (x if swap else y)``; z is unchanged."""

    name: str
    swap: bool
    sx: int
    sy: int

    @property
    def is_rotation(self) -> bool:
        det = -self.sx * self.sy if self.swap else self.sx * self.sy
        return det == 1


TRANSFORMS: tuple[Transform, ...] = (
    Transform("identity", False, 1, 1),
    Transform("rot90", True, -1, 1),  # (x, y) -> (-y, x), counter-clockwise seen from +z
    Transform("rot180", False, -1, -1),
    Transform("rot270", True, 1, -1),  # (x, y) -> (y, -x)
    Transform("mirror_x", False, -1, 1),  # x -> -x
    Transform("mirror_y", False, 1, -1),  # y -> -y
    Transform("swap_xy", True, 1, 1),  # x <-> y
    Transform("swap_neg", True, -1, -1),  # (x, y) -> (-y, -x)
)


def allowed_transforms(config: ImageConfig, mode: str, *, voxels: bool = False) -> list[Transform]:
    """The transforms of ``mode`` that are exact for images (or voxels) of ``config``.

    Parameters
    ----------
    config
        Views and ranges of the images.
    mode
        ``none`` | ``rotate`` (90-degree turns about the beam axis) | ``rotate_reflect``.
    voxels
        For ``(B, X, Y, Z)`` voxel grids, which hold every axis (no view constraint).
    """
    if mode == "none":
        return [TRANSFORMS[0]]
    (x0, x1), (y0, y1) = config.x_range, config.y_range
    if x0 != -x1 or y0 != -y1:  # pixel i <-> S-1-i is x <-> -x only for centred ranges
        return [TRANSFORMS[0]]
    sides = {"zy", "zx"} & set(config.views)
    can_swap = (x0, x1) == (y0, y1) and (voxels or len(sides) in (0, 2))
    return [
        t
        for t in TRANSFORMS
        if (mode == "rotate_reflect" or t.is_rotation) and (can_swap or not t.swap)
    ]


def apply_transform(x: torch.Tensor, t: Transform, views: tuple[str, ...]) -> torch.Tensor:
    """Apply ``t`` to images ``(B, C, S, S)`` whose channels are ``views`` (row = vertical
    axis, column = horizontal axis, as `data_prep.images.project_arrays` writes them), or
    ``C = len(views) * k`` channels, ``k`` consecutive ones per view."""
    if t.name == "identity":
        return x
    shape = x.shape
    # several pixel values per view (ImageConfig.pixel_values): channels grouped by view
    x = x.reshape(shape[0], len(views), shape[1] // len(views), *shape[2:])
    channel = {v: i for i, v in enumerate(views)}
    out = []
    for view in views:
        if view == "xy":
            img = x[:, channel["xy"]]
            if t.swap:
                img = img.transpose(-1, -2)  # (row y, col x) -> (row x, col y)
            dims = [d for d, s in ((-2, t.sy), (-1, t.sx)) if s < 0]
        elif view == "zy":  # new y comes from x when swapping, i.e. from the zx view
            img = x[:, channel["zx" if t.swap else "zy"]]
            dims = [-2] if t.sy < 0 else []
        else:  # zx: new x comes from y when swapping, i.e. from the zy view
            img = x[:, channel["zy" if t.swap else "zx"]]
            dims = [-2] if t.sx < 0 else []
        out.append(img.flip(dims) if dims else img)
    return torch.stack(out, dim=1).reshape(shape)


def apply_transform_voxels(v: torch.Tensor, t: Transform) -> torch.Tensor:
    """Apply ``t`` to voxel grids ``(B, X, Y, Z)``."""
    if t.swap:
        v = v.transpose(1, 2)
    dims = [d for d, s in ((1, t.sx), (2, t.sy)) if s < 0]
    return v.flip(dims) if dims else v


def augment_batch(
    x: torch.Tensor,
    transforms: list[Transform],
    generator: torch.Generator,
    *,
    views: tuple[str, ...] | None = None,
) -> torch.Tensor:
    """A uniformly drawn transform of ``transforms`` per event of the batch.

    ``views`` given: ``x`` is images ``(B, C, S, S)``; ``views=None``: voxels ``(B, X, Y, Z)``.
    The draw uses ``generator`` (a CPU generator), so a seed fixes the augmentation.
    """
    if len(transforms) == 1 and transforms[0].name == "identity":
        return x
    pick = torch.randint(len(transforms), (x.shape[0],), generator=generator).to(x.device)
    out = x.clone()
    for i, t in enumerate(transforms):
        sel = pick == i
        if t.name == "identity" or not bool(sel.any()):
            continue
        part = x[sel]
        out[sel] = (
            apply_transform(part, t, views)
            if views is not None
            else apply_transform_voxels(part, t)
        )
    return out


# --------------------------------------------------------------------------- Mixup / CutMix


def mixup(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """Mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x[perm]``."""
    return lam * x + (1.0 - lam) * x[perm]


def cutmix_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, ...]:
    """CutMix's box ``(y0, y1, x0, x1)`` centred on pixel ``(cy, cx)``, clipped to the image.

    As timm's ``rand_bbox``: sides ``int(side * sqrt(1 - lam))``, half of each on either
    side of the centre (integer halves).
    """
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(height * cut), int(width * cut)
    y0, y1 = min(max(cy - ch // 2, 0), height), min(max(cy + ch // 2, 0), height)
    x0, x1 = min(max(cx - cw // 2, 0), width), min(max(cx + cw // 2, 0), width)
    return y0, y1, x0, x1


def cutmix(x: torch.Tensor, box: tuple[int, ...], perm: torch.Tensor) -> tuple[torch.Tensor, float]:
    """CutMix (Yun et al., 2019): the ``box`` of every image (all channels) taken from
    ``x[perm]``; returns the images and the share of each image that is its own (the
    label weight, 1 - box area / image area)."""
    y0, y1, x0, x1 = box
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[-2] * x.shape[-1])


def mix_batch(
    x: torch.Tensor, generator: torch.Generator, *, mixup_alpha: float, cutmix_alpha: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One Mixup or CutMix draw for the whole batch, as DeiT's recipe: mixing weight
    ~ Beta(α, α), CutMix or Mixup with probability 1/2 when both α > 0 (timm's ``Mixup``,
    which pairs each image with the batch reversed; here a random permutation).

    Returns ``(mixed images, perm, lam)``: the mixed image ``i`` is ``lam`` of event ``i``
    and ``1 - lam`` of event ``perm[i]``; its label target is the same mix of the two
    labels, and a teacher labels the mixed image itself. The draws come from
    ``generator``, so a seed fixes them.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError("mix_batch needs mixup_alpha > 0 or cutmix_alpha > 0")
    seed = int(torch.randint(2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
    use_cut = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    if not use_cut:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        return mixup(x, lam, perm), perm, lam
    h, w = x.shape[-2:]
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
    box = cutmix_box(h, w, lam, int(rng.integers(h)), int(rng.integers(w)))
    out, lam = cutmix(x, box, perm)
    return out, perm, lam
