"""Semi-supervised distillation: a teacher labels target events nobody labelled.

The target pool of the benchmark holds more events than a cell's labelled budget ``n``;
the events left out of the cell's draw are *unlabelled* for that cell (their true labels
are never read here). A teacher (the small CNN trained on the cell's ``n`` events) gives
each of them its hard label — the argmax of its outputs, DeiT's hard distillation — and
the student trains on the labelled events plus these pseudo-labelled ones. The same
events serve the CNN itself (self-training on its own pseudo-labels), so a student and
the CNN it is compared with see the same data. The test set is never part of the pool.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from data_prep.imagefile import ImageSet


def pseudo_labels(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """The teacher's hard labels: the argmax of its outputs per event (int64)."""
    return np.asarray(torch.as_tensor(logits).argmax(-1).cpu().numpy(), dtype=np.int64)


def left_out(pool: ImageSet, train: ImageSet) -> np.ndarray:
    """Sorted indices of the ``pool`` events that are not in ``train`` (by run, event)."""
    picked = set(zip(train.run.tolist(), train.event_id.tolist(), strict=True))
    pairs = zip(pool.run.tolist(), pool.event_id.tolist(), strict=True)
    return np.asarray([i for i, p in enumerate(pairs) if p not in picked], dtype=np.int64)


def split_left_out(
    pool: ImageSet, train: ImageSet, unlabelled_fraction: float, seed: int
) -> tuple[ImageSet, ImageSet]:
    """(unlabelled, validation): the pool events outside ``train``, split at random.

    ``unlabelled_fraction`` of them (rounded) become the unlabelled set, the rest a
    validation set that the unlabelled set never overlaps (pilots choose on it).
    """
    if not 0.0 <= unlabelled_fraction <= 1.0:
        raise ValueError(f"unlabelled_fraction {unlabelled_fraction} is not in [0, 1]")
    rest = left_out(pool, train)
    order = np.random.default_rng([seed, 7]).permutation(rest)
    k = round(len(rest) * unlabelled_fraction)
    return pool.subset(np.sort(order[:k])), pool.subset(np.sort(order[k:]))


def teacher_labels(teacher: nn.Module, images: ImageSet, batch_size: int = 500) -> np.ndarray:
    """The teacher's hard labels of ``images`` (unaugmented, eval mode, on the CPU)."""
    from attpc_classify.engine import predict_logits

    x = torch.from_numpy(np.ascontiguousarray(images.images))
    logits = predict_logits(
        teacher.eval(), x, device=torch.device("cpu"), dtype=None, batch_size=batch_size
    )
    return pseudo_labels(logits)


def with_pseudo_labels(
    train: ImageSet, unlabelled: ImageSet, labels: np.ndarray, task: str
) -> ImageSet:
    """``train`` followed by ``unlabelled`` carrying ``labels`` (in ``task``'s classes).

    Labels are stored in the file's 3-class code such that ``task_labels`` gives
    ``labels`` back: binary 0 (proton) -> class 0, 1 (rest) -> class 1 (a non-proton
    class; only the binary task reads a binary set's labels).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(unlabelled):
        raise ValueError(f"{len(labels)} labels for {len(unlabelled)} unlabelled events")
    k = 2 if task == "binary" else len(unlabelled.class_names)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"pseudo-labels outside the {k} classes of task {task!r}")

    def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    return ImageSet(
        images=np.concatenate([train.images, unlabelled.images]),
        event_id=np.concatenate([train.event_id, unlabelled.event_id]),
        run=np.concatenate([train.run, unlabelled.run]),
        label=np.concatenate([train.label, labels.astype(train.label.dtype)]),
        config=train.config,
        class_names=train.class_names,
        voxels=cat(train.voxels, unlabelled.voxels),
        features=cat(train.features, unlabelled.features),
        attrs=train.attrs,
        path=train.path,
    )
