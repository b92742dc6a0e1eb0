"""Classifiers on the voxelised charge: the paper's logistic-regression baseline and an MLP.

Both take ``(B, G, G, G)`` voxel grids (x, y, z axes; values in [0, 1]), flatten them and
L2-normalise every event, so the total charge of an event does not decide its class on
its own. The logistic regression is fitted by scikit-learn (`fit_logreg`) and then lives
in a `VoxelLogReg` module, so checkpoints and prediction are the same for every model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def flatten_normalise(voxels: torch.Tensor) -> torch.Tensor:
    """``(B, G, G, G)`` -> ``(B, G**3)`` with unit L2 norm per event (zeros stay zero)."""
    return F.normalize(voxels.flatten(1).float(), dim=1)


class VoxelLogReg(nn.Module):
    """Multinomial logistic regression on L2-normalised voxels: ``softmax(W x + b)``."""

    input_kind = "voxels"

    def __init__(self, grid: int = 20, num_classes: int = 3):
        super().__init__()
        self.grid = grid
        self.head = nn.Linear(grid**3, num_classes)

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        return self.head(flatten_normalise(voxels))


class VoxelMLP(nn.Module):
    """A small fully connected net: ``depth`` x (Linear, GELU, Dropout), then the head."""

    input_kind = "voxels"

    def __init__(
        self,
        grid: int = 20,
        num_classes: int = 3,
        width: int = 256,
        depth: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.grid = grid
        layers: list[nn.Module] = []
        n_in = grid**3
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.GELU(), nn.Dropout(dropout)]
            n_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, num_classes)

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(flatten_normalise(voxels)))


def fit_logreg(
    model: VoxelLogReg,
    voxels: np.ndarray,
    labels: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 500,
    balanced: bool = True,
    seed: int = 0,
) -> int:
    """Fit ``model`` with scikit-learn's L-BFGS logistic regression; return its iterations.

    Parameters
    ----------
    model
        Its head receives the fitted coefficients.
    voxels
        ``(N, G, G, G)`` float voxels in [0, 1] (already converted from the file's dtype).
    labels
        ``(N,)`` class ids in ``range(num_classes)``.
    C
        Inverse L2 regularisation strength.
    balanced
        Weight classes inversely to their frequency (``class_weight="balanced"``).
    """
    from sklearn.linear_model import LogisticRegression

    x = flatten_normalise(torch.from_numpy(np.asarray(voxels, dtype=np.float32))).numpy()
    num_classes = model.head.out_features
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError("logistic regression needs at least two classes in the training set")
    clf = LogisticRegression(
        C=C,
        max_iter=max_iter,
        class_weight="balanced" if balanced else None,
        random_state=seed,
    )
    clf.fit(x, labels)
    weight = np.zeros((num_classes, x.shape[1]), dtype=np.float32)
    bias = np.zeros(num_classes, dtype=np.float32)
    if len(clf.classes_) == 2:
        # scikit-learn keeps one row for two classes: p(second) = sigmoid(w x + b), which is
        # softmax over the logits (0, w x + b) -- exactly what the module computes.
        weight[clf.classes_[1]] = clf.coef_[0]
        bias[clf.classes_[1]] = clf.intercept_[0]
    else:
        weight[clf.classes_] = clf.coef_
        bias[clf.classes_] = clf.intercept_
    # a class absent from the training set never wins
    bias[np.setdiff1d(np.arange(num_classes), clf.classes_)] = -1e4
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))
    return int(np.max(clf.n_iter_))
