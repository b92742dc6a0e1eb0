"""Gradient-boosted trees on an event's physics features (`data_prep.features`).

scikit-learn's `HistGradientBoostingClassifier` fits the trees (`fit_gbt`); their node
arrays then live as tensors in a `GBTClassifier` module, which walks them compiled on the
CPU (`walk_trees`) and as tensors elsewhere. So a fitted model is saved like any other
(safetensors + JSON, no pickle), and evaluate, classify and compare use it unchanged.

Prediction follows scikit-learn's: at a split node, a value ``<= threshold`` goes left, a
NaN (a feature the event does not have) goes where ``missing_go_to_left`` says; the raw
score of class k is the baseline plus the leaf values of class k's trees; softmax over
the raw scores (for two classes scikit-learn keeps one score s, and ``p = sigmoid(s)`` is
softmax over ``(0, s)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit
from torch import nn

#: node arrays of every tree, padded to the largest tree: (n_trees, max_nodes)
_NODE_BUFFERS = ("feature", "threshold", "left", "right", "missing_left", "is_leaf", "value")
#: trees walked at once: the (events, trees) index arrays of a chunk stay in the CPU's
#: cache; walking all 1,500 track trees of a named-track model at once was 4x slower
TREE_CHUNK = 32
#: "numba": on the CPU, `walk_trees` (compiled, event by event as scikit-learn's own
#: predictor); "torch": the tensor walk everywhere (benchmarks/tree_walk.py compares them)
WALK = "numba"


@njit(cache=True)
def walk_trees(feature, threshold, left, right, missing_left, is_leaf, value, tree_class,
               x, out):  # fmt: skip
    """Add to ``out`` ``(B, K)`` the leaf value each row of ``x`` ``(B, F)`` reaches in
    every tree (node arrays ``(n_trees, max_nodes)``), tree by tree in order: the same
    additions in the same order as the tensor walk's ``index_add_`` per chunk."""
    for b in range(x.shape[0]):
        for t in range(feature.shape[0]):
            node = 0
            while not is_leaf[t, node]:
                v = x[b, feature[t, node]]
                go_left = missing_left[t, node] if np.isnan(v) else v <= threshold[t, node]
                node = left[t, node] if go_left else right[t, node]
            out[b, tree_class[t]] += value[t, node]


class GBTClassifier(nn.Module):
    """A fitted gradient-boosted tree ensemble as tensors; ``forward`` returns logits.

    Parameters
    ----------
    n_features
        Columns of the input ``(B, n_features)``.
    num_classes
        Outputs.
    n_trees, max_nodes, max_depth
        Shapes of the node arrays and the number of steps of the walk (from `fit_gbt`;
        zero trees predict the baseline).
    feature_names
        Recorded in the checkpoint with the constructor arguments.
    """

    input_kind = "features"

    def __init__(
        self,
        n_features: int,
        num_classes: int = 3,
        n_trees: int = 0,
        max_nodes: int = 1,
        max_depth: int = 0,
        feature_names: tuple[str, ...] | list[str] = (),
    ):
        super().__init__()
        self.n_features = n_features
        self.num_classes = num_classes
        self.max_depth = max_depth
        self.feature_names = tuple(feature_names)
        shape = (n_trees, max_nodes)
        self.register_buffer("feature", torch.zeros(shape, dtype=torch.int64))
        self.register_buffer("threshold", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(shape, dtype=torch.int64))
        self.register_buffer("right", torch.zeros(shape, dtype=torch.int64))
        self.register_buffer("missing_left", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("is_leaf", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("tree_class", torch.zeros(n_trees, dtype=torch.int64))
        self.register_buffer("baseline", torch.zeros(num_classes, dtype=torch.float64))

    def raw_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` float64: baseline + the summed leaf values of each class's trees.

        On the CPU the compiled walk (`walk_trees`); elsewhere, or with ``WALK="torch"``,
        the tensor walk, chunk by chunk. Both add each class's trees in tree order to the
        baseline, so they give the same numbers bit for bit (tests/test_features.py)."""
        x = x.to(torch.float64)
        if WALK == "numba" and x.device.type == "cpu" and self.feature.device.type == "cpu":
            out = self.baseline.expand(x.shape[0], -1).clone().contiguous()
            walk_trees(*(getattr(self, n).numpy() for n in _NODE_BUFFERS),
                       self.tree_class.numpy(), x.contiguous().numpy(), out.numpy())  # fmt: skip
            return out
        out = self.baseline.expand(x.shape[0], -1).clone()
        n_trees = self.feature.shape[0]
        for first in range(0, n_trees, TREE_CHUNK):
            trees = slice(first, min(first + TREE_CHUNK, n_trees))
            out.index_add_(1, self.tree_class[trees], self._leaf_values(x, trees))
        return out

    def _leaf_values(self, x: torch.Tensor, trees: slice) -> torch.Tensor:
        """``(B, T)`` the value of the leaf each event reaches in each tree of ``trees``."""
        max_nodes = self.feature.shape[1]
        flat = {name: getattr(self, name)[trees].reshape(-1) for name in _NODE_BUFFERS}
        offset = torch.arange(len(flat["feature"]) // max_nodes, device=x.device) * max_nodes
        node = offset.expand(x.shape[0], -1).clone()  # (B, T) flat index of the current node
        for _ in range(self.max_depth):
            leaf = flat["is_leaf"][node]
            if leaf.all():  # the deepest tree of the chunk is done: most are shallower
                break
            xv = x.gather(1, flat["feature"][node])
            go_left = torch.where(
                torch.isnan(xv), flat["missing_left"][node], xv <= flat["threshold"][node]
            )
            child = torch.where(go_left, flat["left"][node], flat["right"][node]) + offset
            node = torch.where(leaf, node, child)
        return flat["value"][node]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw_scores(x).float()


def fit_gbt(
    model: GBTClassifier,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
    balanced: bool = True,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    partial_val: bool = False,
) -> Any:
    """Fit scikit-learn's `HistGradientBoostingClassifier` and copy its trees into
    ``model``; return the fitted estimator (for tests and reports).

    Parameters
    ----------
    x, y
        ``(N, F)`` features (NaN allowed) and class ids in ``range(num_classes)``.
    x_val, y_val
        Early stopping watches the loss on these (else no early stopping) when they hold
        every class of ``y``, or, with ``partial_val``, any of them (the track trees: a
        rare kind may be missing from the held-out events).
    params
        Keyword arguments of the estimator (learning_rate, max_iter, max_leaf_nodes,
        l2_regularization, ...).
    balanced
        ``class_weight="balanced"``.
    sample_weight
        ``(N,)`` weight of each training event (scikit-learn multiplies it by the class
        weight); the adaptation routes weigh target events against simulated ones with it.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    from attpc_classify.models.binning import use_fast_weighted_binning

    use_fast_weighted_binning()  # the same bins, one sort per feature (models/binning.py)
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError("gradient boosting needs at least two classes in the training set")
    x = np.array(x, dtype=np.float64)
    # scikit-learn cannot bin a column that is NaN throughout (no third track in any
    # training event, say): a constant stands in, on which no tree splits
    x[:, np.isnan(x).all(axis=0)] = 0.0
    val_classes = set() if x_val is None else set(np.unique(y_val).tolist())
    early = bool(val_classes) and (
        val_classes <= set(present.tolist()) if partial_val else len(val_classes) == len(present)
    )
    clf = HistGradientBoostingClassifier(
        **(params or {}),
        class_weight="balanced" if balanced else None,
        early_stopping=early,
        random_state=seed,
    )
    if early:
        clf.fit(x, y, sample_weight=sample_weight, X_val=x_val, y_val=y_val)
    else:
        clf.fit(x, y, sample_weight=sample_weight)
    load_sklearn_trees(model, clf)
    return clf


def load_sklearn_trees(model: GBTClassifier, clf: Any) -> None:
    """Copy a fitted `HistGradientBoostingClassifier`'s trees into ``model`` (resizing its
    buffers) and record the new shapes in ``model.model_spec``."""
    trees, classes = [], []
    per_iter = clf.n_trees_per_iteration_
    # one tree per class per iteration; a binary model has one tree, for the second class
    columns = clf.classes_ if per_iter > 1 else clf.classes_[1:]
    for iteration in clf._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            trees.append(nodes)
            classes.append(int(columns[k]))
    max_nodes = max((len(t) for t in trees), default=1)
    arrays = {name: np.zeros((len(trees), max_nodes)) for name in _NODE_BUFFERS}
    arrays["is_leaf"][:] = 1  # padding nodes are leaves of value 0, never reached
    for i, nodes in enumerate(trees):
        n = len(nodes)
        arrays["feature"][i, :n] = nodes["feature_idx"]
        arrays["threshold"][i, :n] = nodes["num_threshold"]
        arrays["left"][i, :n] = nodes["left"]
        arrays["right"][i, :n] = nodes["right"]
        arrays["missing_left"][i, :n] = nodes["missing_go_to_left"]
        arrays["is_leaf"][i, :n] = nodes["is_leaf"]
        arrays["value"][i, :n] = nodes["value"]
    baseline = np.zeros(model.num_classes)
    base = np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(-1)
    baseline[columns] = base
    # a class absent from the training set never wins
    baseline[np.setdiff1d(np.arange(model.num_classes), clf.classes_)] = -1e4
    dtypes = {"feature": torch.int64, "left": torch.int64, "right": torch.int64,
              "missing_left": torch.bool, "is_leaf": torch.bool}  # fmt: skip
    for name in _NODE_BUFFERS:
        tensor = torch.from_numpy(arrays[name]).to(dtypes.get(name, torch.float64))
        setattr(model, name, tensor)  # replaces the registered buffer (new shape)
    model.tree_class = torch.tensor(classes, dtype=torch.int64)
    model.baseline = torch.from_numpy(baseline)
    depth = max((int(t["depth"].max()) for t in trees), default=0)
    model.max_depth = depth
    if hasattr(model, "model_spec"):
        model.model_spec["args"] |= {"n_trees": len(trees), "max_nodes": max_nodes,
                                     "max_depth": depth}  # fmt: skip


# --------------------------------------------------------------------------- named tracks

#: what a track model tells apart (`data_prep.tracktruth.KINDS`); column 0 = light product
N_KINDS = 5


def identity_columns(x: torch.Tensor, p_track: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``(B, N + 4 + C)`` event columns from the per-track kind probabilities.

    ``x``: ``(B, F)`` tracks_v3 features; ``p_track``: ``(B, N, N_KINDS)`` probabilities
    of each of the N described tracks (NaN rows where an event has no such track);
    ``cols``: ``(N, C)`` the feature columns of each track (`data_prep.features
    .track_columns`). Columns: each track's p(light product), the largest and its rank
    (0-based), t1's p(heavy product) and p(beam ions), then the columns of the track most
    likely to be the light product (scripts/track_identity.py measured these).
    """
    p_light = p_track[:, :, 0]
    have = ~torch.isnan(p_light).all(dim=1)
    best = torch.nan_to_num(p_light, nan=-1.0).argmax(dim=1)
    top = p_light.gather(1, best[:, None])[:, 0]
    rank = torch.where(have, best.to(x.dtype), torch.full_like(top, float("nan")))
    chosen = x.gather(1, cols[best])  # (B, C) the columns of each event's most light track
    chosen = torch.where(have[:, None], chosen, torch.full_like(chosen, float("nan")))
    first = p_track[:, 0, 1:3]  # t1: heavy product, beam ions
    return torch.cat([p_light, top[:, None], rank[:, None], first, chosen], dim=1)


#: a track counts as a light product in `light_columns` above this p(light product)
LIGHT_P = 0.5


def light_columns(p_track: torch.Tensor) -> torch.Tensor:
    """``(B, 2)``: how many of the described tracks the names call a light product
    (p(light product) > `LIGHT_P`) and the second-largest p(light product), 0 where there
    is no such track. One light product is the proton class; two are a pile-up or one
    track cut in pieces, which the event trees then tell apart by the tracks' geometry
    (docs/sim-to-real.md, "How many tracks are light products")."""
    p = torch.nan_to_num(p_track[:, :, 0], nan=0.0)
    n = (p > LIGHT_P).sum(dim=1).to(p.dtype)
    second = p.sort(dim=1, descending=True).values[:, 1]
    return torch.stack([n, second], dim=1)


def light_pair_columns(
    x: torch.Tensor, p_track: torch.Tensor, pair_cols: torch.Tensor, pair_index: torch.Tensor
) -> torch.Tensor:
    """``(B, C)``: the pair columns (tracks_v6, `data_prep.features.PAIR_FEATURES`: the
    angle between their circles' centres, their vertex gap) of the two tracks likeliest to
    be a light product, NaN where fewer than two tracks exist. Pieces of one helix cut by
    the beam core keep one circle; the protons of a pile-up have their own
    (docs/sim-to-real.md, "Two light tracks: one particle or two reactions").

    ``pair_cols``: ``(P, C)`` the columns of each pair; ``pair_index``: ``(N, N)`` the
    pair of tracks (i, j), i < j."""
    p_light = p_track[:, :, 0]
    top = torch.nan_to_num(p_light, nan=-1.0).topk(2, dim=1).indices
    pair = pair_index[top.min(dim=1).values, top.max(dim=1).values]
    values = x.gather(1, pair_cols[pair])
    two = (~torch.isnan(p_light)).sum(dim=1) >= 2
    return torch.where(two[:, None], values, torch.full_like(values, float("nan")))


#: which light tracks' pair columns the event trees read (`NamedTracksGBT`'s ``light_pair``)
LIGHT_PAIRS = ("likeliest", "widest", "both")


def widest_light_pair_columns(
    x: torch.Tensor,
    p_track: torch.Tensor,
    pair_cols: torch.Tensor,
    pair_index: torch.Tensor,
    likeliest: torch.Tensor | None = None,
    cut: float = 0.5,
) -> torch.Tensor:
    """``(B, C)``: the pair columns of the two tracks, among those likelier a light
    product than not (p > ``cut``), whose circles' centres lie furthest apart about the
    beam axis; ``likeliest`` (`light_pair_columns`, computed here unless given) where
    fewer than two are. A pile-up's proton cut in two by the beam core gives two likely
    pieces of one circle: the likeliest pair can be those, the widest is the other
    reaction's track against one of them. The first pair column is the centre angle
    (`data_prep.features.PAIR_FEATURES`)."""
    n = pair_index.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)  # pair_index's order
    values = x[:, pair_cols]  # (B, P, C)
    light = torch.nan_to_num(p_track[:, :, 0], nan=0.0) > cut
    both = light[:, i] & light[:, j]
    # a pair with no circle ranks below every pair with one, above pairs not both light
    angle = torch.where(both, torch.nan_to_num(values[:, :, 0], nan=-1.0), -2.0)
    wide = values[torch.arange(len(x), device=x.device), angle.argmax(dim=1)]
    if likeliest is None:
        likeliest = light_pair_columns(x, p_track, pair_cols, pair_index)
    return torch.where(both.any(dim=1)[:, None], wide, likeliest)


class NamedTracksGBT(nn.Module):
    """Two tree ensembles: ``track`` names each described track (its rank and columns in,
    `N_KINDS` logits out), ``event`` classifies the event from its features and the
    `identity_columns` the names give (with ``light_counts`` also the `light_columns`; a
    run trained before they existed has none; with ``pair_columns``, the tracks_v6 pair
    columns, also those of one light pair: ``light_pair`` likeliest, `light_pair_columns`;
    widest, `widest_light_pair_columns`; both, the two). ``forward`` returns the event
    logits."""

    input_kind = "features"

    def __init__(
        self,
        n_features: int,
        num_classes: int = 3,
        track_columns: list[list[int]] | tuple = (),
        track: dict[str, int] | None = None,
        event: dict[str, int] | None = None,
        feature_names: tuple[str, ...] | list[str] = (),
        light_counts: bool = False,
        pair_columns: list[list[int]] | tuple = (),
        light_pair: str = "likeliest",
    ):
        super().__init__()
        if light_pair not in LIGHT_PAIRS:
            raise ValueError(f"light_pair must be one of {LIGHT_PAIRS}, got {light_pair!r}")
        self.light_pair = light_pair
        self.n_features = n_features
        self.num_classes = num_classes
        self.feature_names = tuple(feature_names)
        self.light_counts = light_counts
        cols = torch.tensor(track_columns, dtype=torch.int64).reshape(len(track_columns), -1)
        self.register_buffer("track_cols", cols)
        n, c = cols.shape
        self.track = GBTClassifier(1 + c, N_KINDS, **(track or {}))
        self.pairs = len(pair_columns) > 0
        n_pair = 0
        if self.pairs:  # runs without pair columns keep the state dict they had
            pairs = torch.tensor(pair_columns, dtype=torch.int64)
            index = torch.full((n, n), -1, dtype=torch.int64)
            i, j = torch.triu_indices(n, n, offset=1)
            index[i, j] = torch.arange(len(i))  # (i, j), i < j, in `track_pairs` order
            self.register_buffer("pair_cols", pairs)
            self.register_buffer("pair_index", index)
            n_pair = pairs.shape[1] * (2 if light_pair == "both" else 1)
        n_event = n_features + n + 4 + c + (2 if light_counts else 0) + n_pair
        self.event = GBTClassifier(n_event, num_classes, **(event or {}))

    def track_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B * N, 1 + C)`` rows (rank, the track's columns) and ``(B, N)`` which exist
        (its first column, the track's points, is NaN where there is no such track)."""
        x = x.to(torch.float64)
        n = self.track_cols.shape[0]
        block = x[:, self.track_cols]  # (B, N, C)
        rank = torch.arange(n, dtype=x.dtype, device=x.device).expand(x.shape[0], n)
        rows = torch.cat([rank[..., None], block], dim=2).reshape(-1, 1 + block.shape[2])
        return rows, ~torch.isnan(block[:, :, 0])

    def named(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the `event_columns` appended: the event trees' input."""
        x = x.to(torch.float64)
        rows, have = self.track_inputs(x)
        # float64 throughout: the names feed the event trees' thresholds
        p = self.track.raw_scores(rows).softmax(-1).reshape(*have.shape, N_KINDS)
        p = torch.where(have[..., None], p, torch.full_like(p, float("nan")))
        return torch.cat([x, self.event_columns(x, p)], dim=1)

    def event_columns(self, x: torch.Tensor, p_track: torch.Tensor) -> torch.Tensor:
        """What the names add for the event trees, from the tracks' kind probabilities
        ``p_track`` (``(B, N, N_KINDS)``, NaN rows for missing tracks)."""
        cols = identity_columns(x, p_track, self.track_cols)
        if self.light_counts:
            cols = torch.cat([cols, light_columns(p_track)], dim=1)
        if self.pairs:
            args = (x, p_track, self.pair_cols, self.pair_index)
            likeliest = light_pair_columns(*args)  # also the widest pair's fallback
            if self.light_pair != "widest":
                cols = torch.cat([cols, likeliest], dim=1)
            if self.light_pair != "likeliest":
                cols = torch.cat([cols, widest_light_pair_columns(*args, likeliest)], dim=1)
        return cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.event(self.named(x))


def fit_named_tracks(
    model: NamedTracksGBT,
    x: np.ndarray,
    y: np.ndarray,
    kinds: np.ndarray,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
    track_params: dict[str, Any] | None = None,
    balanced: bool = True,
    seed: int = 0,
    folds: int = 3,
    sample_weight: np.ndarray | None = None,
    early_tracks: bool = False,
) -> Any:
    """Fit the track trees on every described track of the training events (``kinds``:
    ``(B, N)`` their `N_KINDS` index, -1 none), then the event trees on the features and
    the names (`named_training_inputs`, ``early_tracks`` as there); return the event
    trees' estimator."""
    x_named = named_training_inputs(model, x, kinds, track_params=track_params, seed=seed,
                                    folds=folds, early_tracks=early_tracks)  # fmt: skip
    x_val_named = None if x_val is None else event_inputs(model, x_val)
    return fit_named_events(model, x_named, y, x_val=x_val_named, y_val=y_val, params=params,
                            balanced=balanced, seed=seed, sample_weight=sample_weight)  # fmt: skip


def named_training_inputs(
    model: NamedTracksGBT,
    x: np.ndarray,
    kinds: np.ndarray,
    *,
    track_params: dict[str, Any] | None = None,
    seed: int = 0,
    folds: int = 3,
    fit: bool = True,
    early_tracks: bool = False,
) -> np.ndarray:
    """The event trees' inputs for training events whose tracks have names by truth:
    ``x`` with the `event_columns` of track trees fitted on the other folds of events
    (out-of-fold), so the event trees learn how far to trust names given to tracks never
    seen. ``fit``: also fit ``model.track`` on every track (a refit keeps its own).
    ``early_tracks``: every track fit stops early (`fit_track_trees`)."""
    from sklearn.model_selection import GroupKFold

    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    rows, have = model.track_inputs(xt)
    rows, have = rows.numpy(), have.numpy().reshape(-1)
    labels = np.asarray(kinds).reshape(-1)
    keep = have & (labels >= 0)
    event = np.repeat(np.arange(len(x)), model.track_cols.shape[0])
    tp = {"max_leaf_nodes": 31, "learning_rate": 0.1, "max_iter": 300} | (track_params or {})
    oof = np.full((len(labels), N_KINDS), np.nan)
    fold_model = GBTClassifier(rows.shape[1], N_KINDS)
    rows_k, labels_k, event_k = rows[keep], labels[keep], event[keep]
    for a, b in GroupKFold(folds).split(rows_k, labels_k, event_k):
        fit_track_trees(fold_model, rows_k[a], labels_k[a], event_k[a], tp, seed, early_tracks)
        with torch.no_grad():
            idx = np.flatnonzero(keep)[b]
            oof[idx] = fold_model.raw_scores(torch.from_numpy(rows[idx])).softmax(-1).numpy()
    if fit:
        fit_track_trees(model.track, rows_k, labels_k, event_k, tp, seed, early_tracks)
    p = torch.from_numpy(oof.reshape(len(x), -1, N_KINDS))
    return torch.cat([xt, model.event_columns(xt, p)], dim=1).numpy()


def fit_track_trees(
    trees: GBTClassifier,
    rows: np.ndarray,
    kinds: np.ndarray,
    events: np.ndarray,
    params: dict[str, Any],
    seed: int,
    early: bool,
) -> None:
    """Fit track trees on ``rows`` (their ``kinds``). ``early``: hold out the tracks of a
    seeded tenth of the ``events`` and stop where their loss stops falling (on 2,000 events
    after ~40 iterations instead of 300, scores level: docs/sim-to-real.md, "The trees'
    features at the demo's size"), else ``params["max_iter"]`` iterations."""
    if not early:
        fit_gbt(trees, rows, kinds, params=params, balanced=False, seed=seed)
        return
    from sklearn.model_selection import GroupShuffleSplit

    split = GroupShuffleSplit(1, test_size=0.1, random_state=seed)
    a, b = next(split.split(rows, kinds, events))
    fit_gbt(trees, rows[a], kinds[a], x_val=rows[b], y_val=kinds[b], params=params,
            balanced=False, seed=seed, partial_val=True)  # fmt: skip


def event_inputs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """What the event trees of ``model`` read for events ``x`` (features): the features,
    with the `event_columns` of its own track trees for a `NamedTracksGBT`."""
    x = np.asarray(x, dtype=np.float64)
    if not isinstance(model, NamedTracksGBT):
        return x
    with torch.no_grad():
        return model.named(torch.from_numpy(x)).numpy()


def fit_named_events(
    model: NamedTracksGBT, x_named: np.ndarray, y: np.ndarray, **fit_args: Any
) -> Any:
    """Fit the event trees of ``model`` on `event_inputs`-shaped rows (``fit_args``: as
    `fit_gbt`'s) and record both ensembles' shapes; return the estimator."""
    clf = fit_gbt(model.event, x_named, y, **fit_args)
    if hasattr(model, "model_spec"):
        model.model_spec["args"] |= {"track": _shape(model.track), "event": _shape(model.event)}
    return clf


def count_trees(model: nn.Module) -> int:
    """Trees in a gbt model (both ensembles of a `NamedTracksGBT`)."""
    if isinstance(model, NamedTracksGBT):
        return count_trees(model.track) + count_trees(model.event)
    return int(model.feature.shape[0])


def _shape(trees: GBTClassifier) -> dict[str, int]:
    n_trees, max_nodes = trees.feature.shape
    return {"n_trees": int(n_trees), "max_nodes": int(max_nodes), "max_depth": trees.max_depth}


def create_gbt(**args: Any) -> nn.Module:
    """The trees of a ``gbt`` run: `NamedTracksGBT` on tracks_v3 features (its arguments
    carry ``track_columns``), else one `GBTClassifier`."""
    if "track_columns" in args:
        return NamedTracksGBT(**args)
    return GBTClassifier(**args)
