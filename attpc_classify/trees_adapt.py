"""Gradient-boosted trees on a target run: refits with the target's events.

Trees have no BatchNorm to re-estimate (AdaBN) and no gradient to fine-tune, so both
adaptation routes of docs/sim-to-real.md refit the trees with the run's own settings
(`configs/train/gbt.yaml` and its overrides, read from ``RUN/config.yaml``) on the run's
own simulated training events, read as at training (the run's charge unit hidden for the
same run files, ``data.unit_dropout``), plus events of the target run:

* **No labels** (``adapt RUN --data TARGET --rounds K``, `self_train`): per round, the
  current trees label the target and its confident events, class by class
  (`attpc_classify.adapt.pseudo_labels`), join the simulated ones with weight 1 each; the
  trees are refitted from scratch on both (so a wrong pseudo-label of round 1 is not
  carried into round 2 unless the refitted trees repeat it). **Guard against collapse**,
  as `adapt` for image models: a round after which a class falls below ``min_fraction``
  times its predicted share before adaptation is undone and self-training stops.
* **A few labels** (``train --config gbt.yaml --data LABELLED model.init=run:RUN``,
  `labelled_refit_inputs`): the labelled target events join the run's simulated training
  events with a weight that gives them ``model.target_share`` of the total (0.25: each
  weighs ``n_sim / (3 n_target)``; an equal share overfits 800 labels beside 144,000
  simulated events, docs/recommended-model.md),
  and early stopping watches the labelled target's validation split (the domain the
  model is for), not the simulation's.

Both need the run's training file where its ``config.yaml`` says it is: the trees are
refitted on it. Trees that name tracks (`models.gbt.NamedTracksGBT`, tracks_v3, v6-v8)
keep their track trees, since a target run has no truth to name its tracks by, and get new
event trees; the simulated events are named out of fold as at training
(`source_inputs`), so the run files must be where the training file says as well.

The method is ours: self-training by refitting on source plus confident target
pseudo-labels is the classic scheme (Yarowsky 1995; Lee 2013 for networks) applied
to boosting; the class-wise selection and the guard are those of `attpc_classify.adapt`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attpc_classify import checkpoint
from attpc_classify.adapt import (
    AdaptConfig,
    format_fractions,
    fractions,
    pseudo_labels,
    save_adapted,
)
from attpc_classify.config import from_dict, merge, read_yaml, to_dict
from attpc_classify.data import labelled, load_datasets, task_arrays, training_features
from attpc_classify.models import create_model
from attpc_classify.models.gbt import (
    NamedTracksGBT,
    count_trees,
    event_inputs,
    fit_gbt,
    fit_named_events,
    named_training_inputs,
)
from attpc_classify.predict import check_image_file
from attpc_classify.train_config import TARGET_SHARE, TrainConfig
from data_prep.atomic import atomic_path
from data_prep.errors import InputError
from data_prep.imagefile import ImageSet

logger = logging.getLogger(__name__)


def gbt_params(model_cfg: Any) -> dict[str, Any]:
    """`HistGradientBoostingClassifier` keyword arguments of a gbt `ModelConfig`."""
    return {
        "learning_rate": model_cfg.learning_rate,
        "max_iter": model_cfg.max_iter,
        "max_leaf_nodes": model_cfg.max_leaf_nodes,
        "l2_regularization": model_cfg.l2_regularization,
    }


def source_config(run_dir: str | Path) -> TrainConfig:
    """The resolved `TrainConfig` the run was trained with (``RUN/config.yaml``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise InputError("no config.yaml: the trees cannot be refitted", path=run_dir)
    saved = read_yaml(path)
    saved.pop("git_sha", None)
    return from_dict(TrainConfig, merge(to_dict(TrainConfig()), saved))


def source_sets(run_dir: str | Path) -> tuple[TrainConfig, ImageSet, ImageSet | None]:
    """The run's config and its training and validation events (features), split as
    `train` split them."""
    cfg = source_config(run_dir)
    if cfg.model.name != "gbt":
        raise InputError(f"refitting is for gbt runs (this one is {cfg.model.name})", path=run_dir)
    for path in (cfg.data.path, cfg.data.val_path):
        if path and not Path(path).is_file():
            raise InputError(
                f"the run's training file {path} is gone: the trees are refitted on it",
                path=run_dir,
            )
    train, val = load_datasets(cfg, "features")
    return cfg, train, val


def source_inputs(
    model: nn.Module, cfg: TrainConfig, train: ImageSet, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """The run's simulated training events as its event trees read them, and their task
    labels, as at training: the run's charge unit hidden for the same runs
    (``data.unit_dropout``, `training_features`). Trees that name tracks (tracks_v3, v6-v8) get
    the names as at training: out of fold, from the simulation's per-point truth
    (`data_prep.tracktruth`; the run files must be where the training file says)."""
    x, y = training_features(train, task, cfg.data.unit_dropout, cfg.seed)
    if not isinstance(model, NamedTracksGBT):
        return x, y
    from data_prep.tracktruth import image_file_track_kinds

    kinds = image_file_track_kinds(labelled(train))
    # out of fold as at training, the fold trees fitted the same way
    early = cfg.model.track_early_stopping
    return named_training_inputs(model, x, kinds, seed=cfg.seed, fit=False,
                                 early_tracks=early), y  # fmt: skip


def refit(
    template: nn.Module,
    cfg: TrainConfig,
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None,
) -> nn.Module:
    """New trees of ``template``'s shape of input and output, fitted with ``cfg``'s
    settings on weighted events (early stopping on ``val``); ``x`` and ``val`` as the
    event trees read them (`source_inputs`, `event_inputs`). A `NamedTracksGBT` keeps its
    track trees (named by the simulation's truth, which a target run has not) and gets
    new event trees."""
    x_val, y_val = (None, None) if val is None else val
    fit_args = {"x_val": x_val, "y_val": y_val, "params": gbt_params(cfg.model),
                "balanced": cfg.optim.balance != "none", "seed": cfg.seed,
                "sample_weight": weight}  # fmt: skip
    if isinstance(template, NamedTracksGBT):
        model = copy.deepcopy(template)
        fit_named_events(model, x, y, **fit_args)
        return model
    args = template.model_spec["args"] if hasattr(template, "model_spec") else {}
    model = create_model("gbt", {
        "n_features": template.n_features, "num_classes": template.num_classes,
        "feature_names": list(args.get("feature_names", template.feature_names)),
    })  # fmt: skip
    fit_gbt(model, x, y, **fit_args)
    return model


def _proba(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, np.float64))).softmax(-1).numpy()


def self_train(
    run_dir: str | Path,
    features: np.ndarray,
    out_dir: str | Path,
    cfg: AdaptConfig,
    *,
    source: str = "",
) -> dict[str, Any]:
    """Adapt the trees of ``run_dir`` to the target ``features`` without labels (module
    doc) and write the adapted run to ``out_dir``; return the report (as `adapt`'s)."""
    trained = checkpoint.load_run(run_dir, device="cpu")
    info, model = trained.info, trained.model
    if info.input != "features":
        raise InputError(f"self_train is for tree runs (this run reads {info.input})",
                         path=run_dir)  # fmt: skip
    if cfg.rounds < 1:
        raise InputError("trees have no BatchNorm (no AdaBN): adapt a tree run with "
                         "--rounds >= 1", path=run_dir)  # fmt: skip
    if len(features) < 2 * cfg.batch_size:
        raise InputError(f"adapt needs at least {2 * cfg.batch_size} target events, "
                         f"got {len(features)}")  # fmt: skip
    train_cfg, train, val = source_sets(run_dir)
    x_s, y_s = source_inputs(model, train_cfg, train, info.task)
    val_xy = None
    if val is not None and len(val):
        x_v, y_v = (t.numpy() for t in task_arrays(val, info.task, "features"))
        val_xy = (event_inputs(model, x_v), y_v)
    names = info.output_names
    x_t = np.asarray(features, dtype=np.float64)
    x_t_in = event_inputs(model, x_t)  # the track trees stay: the same names every round
    proba = _proba(model, x_t)
    frac = fractions(proba)
    report: dict[str, Any] = {"n_target": len(x_t), "source": source, "method": "refit",
                              "config": asdict(cfg)}  # fmt: skip
    report["fractions"] = {"before": frac.tolist()}
    logger.info(f"predicted fractions before:      {format_fractions(names, frac)}")
    logger.info("trees: no BatchNorm, so no AdaBN; self-training refits them on the "
                f"{len(y_s)} simulated training events plus confident target events")  # fmt: skip
    reference = frac.copy()
    report["rounds"], report["stopped_by_guard"] = [], False
    for r in range(cfg.rounds):
        idx, labels = pseudo_labels(proba, cfg)
        if len(idx) < 2 or len(np.unique(labels)) < 2:
            logger.info(f"round {r + 1}: too few confident events; self-training stops")
            break
        x = np.concatenate([x_s, x_t_in[idx]])
        y = np.concatenate([y_s, labels])
        candidate = refit(model, train_cfg, x, y, np.ones(len(y)), val_xy)
        new_proba = _proba(candidate, x_t)
        new = fractions(new_proba)
        collapsed = bool(np.any(new < cfg.min_fraction * reference))
        counts = np.bincount(labels, minlength=len(names))
        report["rounds"].append({"pseudo_labels": counts.tolist(), "fractions": new.tolist(),
                                 "undone": collapsed})  # fmt: skip
        logger.info(
            f"round {r + 1}: {len(idx)} pseudo-labels ("
            + "  ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
            + f"), {count_trees(candidate)} trees -> {format_fractions(names, new)}"
            + (f"  [guard: a class fell below {cfg.min_fraction:g} x its share before; "
               "round undone, stopping]" if collapsed else "")
        )  # fmt: skip
        if collapsed:
            report["stopped_by_guard"] = True
            break
        model, proba, frac = candidate, new_proba, new
    report["fractions"]["final"] = frac.tolist()
    out = save_adapted(run_dir, out_dir, model, report, model.model_spec["args"])
    # the settings and training file travel with the trees, so the adapted run can be
    # refitted again (labels: model.init=run:OUT refits on the simulation plus the labels)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_bytes((Path(run_dir) / "config.yaml").read_bytes())
    return report


def labelled_refit_inputs(
    run_dir: str | Path,
    train: ImageSet,
    task: str,
    model: nn.Module | None = None,
    target_share: float = TARGET_SHARE,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The simulated training events of the gbt run ``run_dir`` as its event trees read
    them (`source_inputs`), their task labels, and the weight of each of the ``train``
    events (labelled target events) that gives them ``target_share`` of the total weight
    (0.5: both sides the same); ``train`` must be preprocessed as the run's data. Trees
    that name tracks: ``model`` (the new run's, of the same shape) takes the run's track
    trees, as `refit` keeps them."""
    trained = checkpoint.load_run(run_dir, device="cpu")
    if trained.info.input != "features":
        raise InputError("model.init=run: for gbt needs a gbt run", path=run_dir)
    if train.path:
        check_image_file(train.path, trained)
    if isinstance(trained.model, NamedTracksGBT):
        if not isinstance(model, NamedTracksGBT):
            raise InputError("the run's trees name tracks (tracks_v3, v6-v8): preprocess the "
                             "labelled events as its data", path=run_dir)  # fmt: skip
        model.track = copy.deepcopy(trained.model.track)
        # the event trees read the run's columns (a run from before `light_columns` has none)
        model.light_counts = trained.model.light_counts
        model.light_pair = trained.model.light_pair  # and its light pair
        model.event.n_features = trained.model.event.n_features
        if hasattr(model, "model_spec"):
            model.model_spec["args"]["light_counts"] = model.light_counts
            if model.pairs:
                model.model_spec["args"]["light_pair"] = model.light_pair
    cfg, source, _ = source_sets(run_dir)
    x_s, y_s = source_inputs(trained.model, cfg, source, task)
    n_target = int((train.label >= 0).sum())
    if n_target == 0:
        raise InputError("no labelled target events", path=train.path)
    # each simulated event weighs 1: n_target * w / (n_sim + n_target * w) = target_share
    return x_s, y_s, target_share / (1 - target_share) * len(y_s) / n_target


__all__ = ["gbt_params", "labelled_refit_inputs", "refit", "self_train",
           "source_inputs", "source_sets"]  # fmt: skip
