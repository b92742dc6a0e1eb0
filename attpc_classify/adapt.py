"""Unsupervised domain adaptation of a trained run to an unlabelled target run.

Two steps, each without a single target label:

1. **AdaBN** (Li et al. 2016): every BatchNorm layer forgets the simulation's running
   mean and variance and re-estimates them on the target events (cumulative average over
   the whole target sample, weights untouched). A charge scale or noise level the model
   never saw shifts the activations; this shifts them back.
2. **Self-training** on confident pseudo-labels: per round, the model labels the target,
   keeps for each predicted class its most confident events above ``confidence`` (class by
   class, so a dominant class cannot crowd the others out) and fine-tunes on them with a
   small learning rate, plus a term that keeps the mean prediction of each batch near
   the class mix estimated after AdaBN (a KL divergence; SHOT's diversity term, Liang et
   al. 2020, would pull towards equal classes, which the AT-TPC mix is not).
   **Guard against collapse:** a round whose predicted class fractions leave any class
   below ``min_fraction`` times its share after AdaBN is undone and self-training stops.

The predicted class fractions are reported after each step, which is itself the
estimate of the target's class mix (docs/sim-to-real.md: choosing the proton cut).

Tree runs (gbt) have neither BatchNorm nor gradients: `attpc_classify.trees_adapt` refits
them with the same pseudo-label selection and guard.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attpc_classify import checkpoint
from attpc_classify.data import allowed_transforms, as_float, augment_batch
from data_prep.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class AdaptConfig:
    """Settings of `adapt` (recorded in the adapted run's ``model.json``)."""

    adabn: bool = True
    rounds: int = 0  # self-training rounds after AdaBN (measured: docs/sim-to-real.md)
    epochs_per_round: int = 1
    confidence: float = 0.7  # minimum p(class) of a pseudo-label (label smoothing caps p)
    max_per_class: float = 0.5  # at most this fraction of a predicted class is kept
    lr: float = 1e-4
    diversity: float = 1.0  # weight of the KL(mix after AdaBN || mean prediction) term
    min_fraction: float = 0.5  # guard: a class may not fall below this x its AdaBN share
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.epochs_per_round < 1 or self.batch_size < 2:
            raise InputError("adapt: rounds >= 0, epochs_per_round >= 1, batch_size >= 2")
        if not 0 < self.confidence < 1 or not 0 < self.max_per_class <= 1:
            raise InputError("adapt: confidence in (0, 1), max_per_class in (0, 1]")
        if self.lr <= 0 or self.diversity < 0 or not 0 <= self.min_fraction <= 1:
            raise InputError("adapt: lr > 0, diversity >= 0, min_fraction in [0, 1]")


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 256):
            out.append(model(as_float(x[start : start + 256])).float().softmax(-1))
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def fractions(proba: np.ndarray) -> np.ndarray:
    """Predicted class fractions (argmax) of probabilities ``(N, K)``."""
    k = proba.shape[1]
    return np.bincount(proba.argmax(1), minlength=k) / max(len(proba), 1)


def adabn(model: nn.Module, x: torch.Tensor, batch_size: int) -> int:
    """Re-estimate every BatchNorm layer's running statistics on ``x``; return how many
    layers were reset. Weights and biases are untouched; dropout stays off."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every target batch counts equally
        m.train()
    with torch.no_grad():
        for start in range(0, len(x) - 1, batch_size):  # a batch of one has no variance
            xb = x[start : start + batch_size]
            if len(xb) > 1:
                model(as_float(xb))
    for m in norms:
        m.momentum = 0.1
    model.eval()
    return len(norms)


def pseudo_labels(proba: np.ndarray, cfg: AdaptConfig) -> tuple[np.ndarray, np.ndarray]:
    """Indices and labels of the confident events, class by class (see module doc)."""
    pred, conf = proba.argmax(1), proba.max(1)
    keep = []
    for c in range(proba.shape[1]):
        idx = np.flatnonzero((pred == c) & (conf >= cfg.confidence))
        n_class = int((pred == c).sum())
        cap = max(1, math.floor(cfg.max_per_class * n_class))
        keep.append(idx[np.argsort(-conf[idx], kind="stable")[:cap]])
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return idx, pred[idx]


def self_train_round(
    model: nn.Module,
    x: torch.Tensor,
    idx: np.ndarray,
    labels: np.ndarray,
    cfg: AdaptConfig,
    views: tuple[str, ...],
    transforms: list,
    gen: torch.Generator,
    prior: np.ndarray,
) -> float:
    """Fine-tune on pseudo-labelled events, with a term that keeps each batch's mean
    prediction near ``prior`` (the class mix estimated after AdaBN); returns the mean loss."""
    prior = torch.from_numpy(np.clip(prior, 1e-3, None) / np.clip(prior, 1e-3, None).sum())
    prior = prior.float()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    y = torch.from_numpy(labels.astype(np.int64))
    losses = []
    for _ in range(cfg.epochs_per_round):
        order = torch.randperm(len(idx), generator=gen)
        model.train()
        for start in range(0, len(order) - 1, cfg.batch_size):
            sel = order[start : start + cfg.batch_size]
            if len(sel) < 2:
                continue
            xb = augment_batch(as_float(x[idx[sel.numpy()]]), transforms, gen, views=views)
            logits = model(xb)
            p_mean = logits.softmax(-1).mean(0)
            # KL(prior || mean prediction): the batch's predicted mix stays near the mix
            # estimated after AdaBN, so no class can absorb the others
            diversity = (prior * (torch.log(prior) - torch.log(p_mean + 1e-8))).sum()
            loss = nn.functional.cross_entropy(logits, y[sel]) + cfg.diversity * diversity
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.eval()
    return float(np.mean(losses)) if losses else float("nan")


def format_fractions(names: tuple[str, ...], frac: np.ndarray) -> str:
    return "  ".join(f"{n} {f:.3f}" for n, f in zip(names, frac, strict=True))


def target_inputs(
    trained: checkpoint.Trained,
    paths: list[str],
    max_events: int,
    seed: int,
    *,
    format: str = "auto",
    reader_options: dict | None = None,
) -> np.ndarray:
    """The target events as the run reads them (images, or features for a tree run),
    made with the run's preprocessing: image files are checked against it
    (`predict.check_image_file`), point-cloud files (any supported format, read with
    ``format`` and ``reader_options`` as `classify` reads them) are projected with it
    (with ``beam_axis=run`` each centred on its own beam line; with
    ``charge_norm=quantile``, all of them together are one run, normalised by their
    quantiles). At most ``max_events``, drawn at random (seeded)."""
    from attpc_classify.predict import check_image_file
    from data_prep.build import reader_options_for
    from data_prep.imagefile import is_image_file, read_images
    from data_prep.images import project
    from data_prep.quantiles import beam_axes, charge_units, for_run
    from data_prep.readers import open_events
    from data_prep.structured import find_hot_pads

    config = trained.info.image_config
    features = trained.info.input == "features"
    options = reader_options_for(config, reader_options)
    read = dict(format=format, reader_options=options)
    events = [str(p) for p in paths if Path(p).exists() and not is_image_file(p)]
    # beam_axis=run: each point-cloud file is a run with its own beam line
    axes = {p: fit.axis for p, fit in beam_axes(config, events, **read).items()}
    # charge_norm=quantile: the point-cloud files together are the target run
    config = for_run(config, events, axes=axes, **read)
    # charge_calibration=proton_band: each point-cloud file has its own charge unit
    units = {p: u.unit for p, u in charge_units(config, events, axes=axes, **read).items()}
    parts = []
    for path in paths:
        if not Path(path).exists():
            raise InputError("no such file", path=path)
        if is_image_file(path):
            check_image_file(path, trained)
            stored = read_images(path, features=features)
            parts.append(stored.features if features else stored.images)
            continue
        file_config = replace(config, run_beam_axis=axes.get(str(path), ()),
                              run_charge_unit=units.get(str(path), 0.0))  # fmt: skip
        with open_events(path, format=format, **options) as reader:
            hot = None
            if config.structured_noise != "none":  # the run's own hot pads, as classify
                hot = find_hot_pads(
                    reader, config.hot_pad_fraction, config.hot_pad_sample, axes.get(str(path))
                )
            events = list(reader.iter_events(skip_bad=True))
        if events:
            proj = project(events, file_config, hot)
            parts.append(proj.features if features else proj.images)
    if parts:
        inputs = np.concatenate(parts)
    elif features:
        inputs = np.zeros((0, trained.model.n_features))
    else:
        inputs = np.zeros((0, config.n_channels, 1, 1))
    if len(inputs) > max_events:
        pick = np.random.default_rng(seed).choice(len(inputs), max_events, replace=False)
        inputs = inputs[np.sort(pick)]
    return inputs


def adapt(
    run_dir: str | Path,
    images: np.ndarray,
    out_dir: str | Path,
    cfg: AdaptConfig,
    *,
    source: str = "",
) -> dict[str, Any]:
    """Adapt the run at ``run_dir`` to target ``images`` (as stored: uint8 or float16, made
    with the run's preprocessing) and write the adapted run to ``out_dir``.

    Returns the report: class fractions before, after AdaBN and after each round, the
    pseudo-label counts, and whether the guard stopped self-training.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    trained = checkpoint.load_run(run_dir, device="cpu")
    info, model = trained.info, trained.model
    if info.input != "images":
        raise InputError(f"adapt is for image models (this run reads {info.input}; trees: "
                         "trees_adapt.self_train)", path=run_dir)  # fmt: skip
    if len(images) < 2 * cfg.batch_size:
        raise InputError(f"adapt needs at least {2 * cfg.batch_size} target events, "
                         f"got {len(images)}")  # fmt: skip
    names = info.output_names
    x = torch.from_numpy(np.ascontiguousarray(images))
    perm = torch.randperm(len(x), generator=gen)
    x = x[perm]  # BN statistics from batches that mix the whole run
    report: dict[str, Any] = {"n_target": len(x), "source": source, "config": asdict(cfg)}
    frac = fractions(_predict(model, x, cfg.batch_size))
    report["fractions"] = {"before": frac.tolist()}
    logger.info(f"predicted fractions before:      {format_fractions(names, frac)}")
    if cfg.adabn:
        n_bn = adabn(model, x, cfg.batch_size)
        frac = fractions(_predict(model, x, cfg.batch_size))
        report["fractions"]["adabn"] = frac.tolist()
        logger.info(f"after AdaBN ({n_bn} BatchNorm layers): {format_fractions(names, frac)}")
    reference = frac.copy()
    views = info.image_config.views
    transforms = allowed_transforms(info.image_config, "rotate")
    guard_note = (f"  [guard: a class fell below {cfg.min_fraction:g} x its AdaBN share; "
                  "round undone, stopping]")  # fmt: skip
    report["rounds"] = []
    report["stopped_by_guard"] = False
    for r in range(cfg.rounds):
        proba = _predict(model, x, cfg.batch_size)
        idx, labels = pseudo_labels(proba, cfg)
        counts = np.bincount(labels, minlength=len(names))
        if len(idx) < 2:
            logger.info(f"round {r + 1}: fewer than 2 confident events; self-training stops")
            break
        before = {key: v.detach().clone() for key, v in model.state_dict().items()}
        loss = self_train_round(model, x, idx, labels, cfg, views, transforms, gen, reference)
        new = fractions(_predict(model, x, cfg.batch_size))
        collapsed = bool(np.any(new < cfg.min_fraction * reference))
        report["rounds"].append({"pseudo_labels": counts.tolist(), "loss": loss,
                                 "fractions": new.tolist(), "undone": collapsed})  # fmt: skip
        logger.info(
            f"round {r + 1}: {len(idx)} pseudo-labels ("
            + "  ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
            + f"), "
            f"loss {loss:.3f} -> {format_fractions(names, new)}" + (guard_note if collapsed else "")
        )
        if collapsed:
            model.load_state_dict(before)
            report["stopped_by_guard"] = True
            break
        frac = new
    report["fractions"]["final"] = frac.tolist()
    save_adapted(run_dir, out_dir, model, report)
    return report


def save_adapted(
    run_dir: str | Path,
    out_dir: str | Path,
    model: nn.Module,
    report: dict[str, Any],
    model_args: dict[str, Any] | None = None,
) -> Path:
    """Write the adapted ``model`` as a run: ``run_dir``'s metadata (with ``model_args``
    where the constructor arguments changed, as refitted trees' shapes do) plus
    ``adapted``, and ``adapt.json``; return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, meta = checkpoint.read_info(run_dir)
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "weights",
                                                      "sha256")}  # fmt: skip
    if model_args is not None:
        meta["model"] = {**meta["model"], "args": dict(model_args)}
    meta["adapted"] = {"from": str(Path(run_dir)), **report}
    checkpoint.save_model(out, model, meta)
    checkpoint.write_json(out / "adapt.json", report)
    return out
