"""Gradient-boosted trees on an event's physics features (`data_prep.features`).

scikit-learn's `HistGradientBoostingClassifier` fits the trees (`fit_gbt`); their node
arrays then live as tensors in a `GBTClassifier` module, which walks every tree of a
batch at once. So a fitted model is saved like any other (safetensors + JSON, no
pickle), and evaluate, classify and compare use it unchanged.

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
from torch import nn

#: node arrays of every tree, padded to the largest tree: (n_trees, max_nodes)
_NODE_BUFFERS = ("feature", "threshold", "left", "right", "missing_left", "is_leaf", "value")


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
        """``(B, K)`` float64: baseline + the summed leaf values of each class's trees."""
        x = x.to(torch.float64)
        b = x.shape[0]
        n_trees, max_nodes = self.feature.shape
        out = self.baseline.expand(b, -1).clone()
        if n_trees == 0:
            return out
        offset = torch.arange(n_trees, device=x.device) * max_nodes  # row of each tree
        flat = {name: getattr(self, name).reshape(-1) for name in _NODE_BUFFERS}
        node = offset.expand(b, -1).clone()  # (B, T) flat index of the current node
        for _ in range(self.max_depth):
            xv = x.gather(1, flat["feature"][node])
            go_left = torch.where(
                torch.isnan(xv), flat["missing_left"][node], xv <= flat["threshold"][node]
            )
            child = torch.where(go_left, flat["left"][node], flat["right"][node]) + offset
            node = torch.where(flat["is_leaf"][node], node, child)
        out.index_add_(1, self.tree_class, flat["value"][node])
        return out

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
) -> Any:
    """Fit scikit-learn's `HistGradientBoostingClassifier` and copy its trees into
    ``model``; return the fitted estimator (for tests and reports).

    Parameters
    ----------
    x, y
        ``(N, F)`` features (NaN allowed) and class ids in ``range(num_classes)``.
    x_val, y_val
        Early stopping watches the loss on these (else no early stopping).
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

    present = np.unique(y)
    if len(present) < 2:
        raise ValueError("gradient boosting needs at least two classes in the training set")
    x = np.array(x, dtype=np.float64)
    # scikit-learn cannot bin a column that is NaN throughout (no third track in any
    # training event, say): a constant stands in, on which no tree splits
    x[:, np.isnan(x).all(axis=0)] = 0.0
    early = x_val is not None and len(np.unique(y_val)) == len(present)
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
