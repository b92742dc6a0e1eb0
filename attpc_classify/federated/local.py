"""What one lab does on its own data: load and split it, train a few local epochs (with
GENE-FL's constraint when given), score a model. Runs inside the Flower clients and for
the new-client comparison; no Flower here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attpc_classify.adapt import adabn
from attpc_classify.data import (
    allowed_transforms,
    as_float,
    augment_batch,
    class_weights,
    output_names,
    stratified_split,
    task_arrays,
)
from attpc_classify.engine import param_groups, predict_logits
from attpc_classify.federated.config import FedConfig, LocalSpec
from attpc_classify.metrics import f1_scores
from data_prep.imagefile import read_images
from data_prep.images import ImageConfig


@dataclass
class ClientData:
    """A lab's events: raw (uint8) training and test images and task labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    image_config: ImageConfig
    outputs: tuple[str, ...]  # output names of the task

    @property
    def k(self) -> int:
        return len(self.outputs)


@lru_cache(maxsize=8)
def load_client(name: str, path: str, task: str, test_fraction: float, seed: int) -> ClientData:
    """The labelled events of ``path`` split (stratified, seeded) into train and test.

    Cached per process: a simulated client reads its file once, not every round.
    """
    images = read_images(path)
    x, y = task_arrays(images, task, "images")
    if len(y) < 4:
        from data_prep.errors import InputError

        raise InputError(f"client {name}: fewer than 4 labelled events", path=path)
    train, test = stratified_split(y.numpy(), test_fraction, np.random.default_rng(seed))
    return ClientData(
        name=name,
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        image_config=images.config,
        outputs=output_names(task, images.class_names),
    )


def new_model(cfg: FedConfig, data: ClientData, seed: int) -> nn.Module:
    """The federation's architecture, freshly initialised from ``seed``."""
    from attpc_classify.models.build import build_model

    torch.manual_seed(seed)
    return build_model(cfg.model, image_config=data.image_config, num_classes=data.k)


def train_local(
    model: nn.Module,
    data: ClientData,
    spec: LocalSpec,
    *,
    epochs: int,
    seed: int,
    penalty: Callable[[], torch.Tensor] | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> dict[str, float]:
    """``epochs`` passes of AdamW over the training events; loss = class-weighted
    cross-entropy (+ ``penalty()``); BatchNorm statistics re-estimated after every epoch
    (`adapt.adabn`). Returns the last epoch's mean loss and penalty."""
    model.train()
    opt = torch.optim.AdamW(
        param_groups(model, spec.weight_decay), lr=spec.lr, weight_decay=spec.weight_decay
    )
    weight = class_weights(data.y_train.numpy(), data.k)
    transforms = allowed_transforms(data.image_config, spec.augment)
    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    batch = min(spec.batch_size, n)
    losses: list[float] = []
    penalties: list[float] = []
    for epoch in range(epochs):
        losses, penalties = [], []
        order = torch.randperm(n, generator=gen)
        # drop_last (a batch of one breaks BatchNorm); every event comes up across epochs
        for start in range(0, n - batch + 1, batch):
            idx = order[start : start + batch]
            xb = as_float(augment_batch(data.x_train[idx], transforms, gen,
                                        views=data.image_config.views))  # fmt: skip
            loss = F.cross_entropy(model(xb), data.y_train[idx], weight=weight)
            losses.append(loss.item())
            if penalty is not None:
                extra = penalty()
                penalties.append(extra.item())
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        # BatchNorm's running statistics lag behind weights that move fast in a few local
        # epochs (measured: eval-mode accuracy 0.25 vs 0.77 with batch statistics after 3
        # epochs from scratch); re-estimate them on the lab's training events
        adabn(model, data.x_train, batch)
        model.train()
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
            model.train()
    return {
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "penalty": float(np.mean(penalties)) if penalties else 0.0,
    }


def score(model: nn.Module, data: ClientData) -> dict[str, float]:
    """Proton F1, macro-F1 and accuracy of ``model`` on the lab's test events (argmax)."""
    logits = predict_logits(model, data.x_test, device=torch.device("cpu"), dtype=None)
    s = f1_scores(data.y_test.numpy(), logits.argmax(1).numpy(), data.k)
    return {"proton_f1": s["proton_f1"], "macro_f1": s["macro_f1"], "accuracy": s["accuracy"]}
