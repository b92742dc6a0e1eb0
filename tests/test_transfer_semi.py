"""Semi-supervised distillation (attpc_classify/transfer/semi.py): the teacher's hard
labels, the split of the left-out pool events and the pseudo-labelled training set, by
hand, on an image file written by the real writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _synthetic import make_image_file
from torch import nn

from attpc_classify.data import task_labels
from attpc_classify.transfer.semi import (
    left_out,
    pseudo_labels,
    split_left_out,
    teacher_labels,
    with_pseudo_labels,
)
from data_prep.imagefile import read_images


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = make_image_file(tmp_path_factory.mktemp("semi") / "pool.h5", n_per_class=10)
    return read_images(str(path))


def test_pseudo_labels_are_the_argmax_by_hand():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9], [-5.0, -4.0, -3.0]])
    assert pseudo_labels(logits).tolist() == [1, 0, 2]
    assert pseudo_labels(torch.tensor([[1.0, -1.0], [0.0, 0.5]])).tolist() == [0, 1]


def test_split_of_the_left_out_events(pool):
    train = pool.subset(np.array([0, 3, 4, 11, 29]))
    rest = left_out(pool, train)
    assert rest.tolist() == [i for i in range(30) if i not in (0, 3, 4, 11, 29)]
    unlab, val = split_left_out(pool, train, 0.5, seed=1)
    assert (len(unlab), len(val)) == (12, 13)  # round(25 * 0.5) = 12
    ids = lambda s: set(s.event_id.tolist())  # noqa: E731
    assert not ids(unlab) & ids(val) and not (ids(unlab) | ids(val)) & ids(train)
    assert ids(unlab) | ids(val) == set(pool.event_id[rest].tolist())
    same, _ = split_left_out(pool, train, 0.5, seed=1)
    assert ids(same) == ids(unlab)
    assert len(split_left_out(pool, train, 0.0, seed=1)[1]) == 25
    with pytest.raises(ValueError, match="not in"):
        split_left_out(pool, train, 1.5, seed=0)


def test_pseudo_labelled_set_gives_the_teacher_labels_back(pool):
    train, unlab = pool.subset(np.arange(5)), pool.subset(np.arange(5, 12))
    hard = np.array([1, 0, 0, 1, 1, 0, 1])
    both = with_pseudo_labels(train, unlab, hard, "binary")
    assert len(both) == 12
    np.testing.assert_array_equal(both.images[5:], unlab.images)
    np.testing.assert_array_equal(both.event_id, pool.event_id[:12])
    binary = task_labels(both.label, "binary")
    np.testing.assert_array_equal(binary[:5], task_labels(train.label, "binary"))
    np.testing.assert_array_equal(binary[5:], hard)  # the teacher's, not the true labels
    three = with_pseudo_labels(train, unlab, np.array([2, 1, 0, 2, 2, 1, 0]), "multiclass")
    assert task_labels(three.label, "multiclass")[5:].tolist() == [2, 1, 0, 2, 2, 1, 0]
    with pytest.raises(ValueError, match="outside"):
        with_pseudo_labels(train, unlab, np.array([0, 1, 2, 0, 1, 0, 1]), "binary")
    with pytest.raises(ValueError, match="7 unlabelled"):
        with_pseudo_labels(train, unlab, np.array([0, 1]), "binary")


class _Sum(nn.Module):
    """Class 1 when the first channel's total exceeds ``cut``, by construction."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0].flatten(1).sum(1)
        return torch.stack([torch.full_like(s, self.cut), s], dim=1)


def test_teacher_labels_of_the_images(pool):
    x = pool.images[:, 0].astype(np.float64) / 255.0  # uint8 files: as_float's scaling
    totals = x.reshape(len(pool), -1).sum(1)
    cut = float(np.median(totals))
    expected = (totals > cut).astype(int)
    assert 0 < expected.sum() < len(pool)
    np.testing.assert_array_equal(teacher_labels(_Sum(cut), pool, batch_size=7), expected)
