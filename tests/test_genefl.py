"""GENE-FL formulas (learngene/genefl.py) against hand computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from learngene import genefl


def _linear(w: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
    return layer


def _ce_grad(w: list[list[float]], x: list[float], y: int) -> list[list[float]]:
    """d/dW of -log softmax(W x)[y] = (p - onehot(y)) x^T, written out."""
    z = [sum(w[r][c] * x[c] for c in range(2)) for r in range(2)]
    e = [math.exp(v) for v in z]
    p = [v / sum(e) for v in e]
    return [[(p[r] - (r == y)) * x[c] for c in range(2)] for r in range(2)]


W = [[0.5, -1.0], [2.0, 0.25]]
X = [[1.0, 2.0], [-1.0, 0.5]]
Y = [0, 1]


def test_fisher_is_mean_of_squared_per_event_gradients():
    model = _linear(W)
    got = genefl.fisher_diagonal(model, torch.tensor(X), torch.tensor(Y), batch_size=1)
    g = [_ce_grad(W, x, y) for x, y in zip(X, Y, strict=True)]
    want = [[(g[0][r][c] ** 2 + g[1][r][c] ** 2) / 2 for c in range(2)] for r in range(2)]
    torch.testing.assert_close(got["weight"], torch.tensor(want), rtol=1e-5, atol=1e-7)


def test_fisher_with_batches_squares_the_batch_mean_gradient():
    model = _linear(W)
    got = genefl.fisher_diagonal(model, torch.tensor(X), torch.tensor(Y), batch_size=2)
    g = [_ce_grad(W, x, y) for x, y in zip(X, Y, strict=True)]
    want = [[((g[0][r][c] + g[1][r][c]) / 2) ** 2 for c in range(2)] for r in range(2)]
    torch.testing.assert_close(got["weight"], torch.tensor(want), rtol=1e-5, atol=1e-7)


def test_fisher_penalty_value_and_gradient():
    theta = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    anchor = {"a": torch.tensor([0.0, 0.0, 1.0])}
    fisher = {"a": torch.tensor([1.0, 2.0, 3.0])}
    mask = {"a": torch.tensor([True, False, True])}
    value = genefl.fisher_penalty({"a": theta}, anchor, fisher, mask, lam=2.0)
    # 2/2 * (1*(1-0)^2 + 3*(3-1)^2) = 13; the masked middle entry is free
    assert value.item() == pytest.approx(13.0)
    value.backward()
    # d/dθ = lam * m F (θ - θ*) = 2 * [1*1, 0, 3*2]
    torch.testing.assert_close(theta.grad, torch.tensor([2.0, 0.0, 12.0]))
    # tensors the anchor does not hold are unconstrained; no mask = every entry
    free = genefl.fisher_penalty({"a": theta, "b": torch.ones(2)}, anchor, fisher, None, 1.0)
    assert free.item() == pytest.approx(0.5 * (1 * 1 + 2 * 4 + 3 * 4))


def test_top_mask_picks_the_largest_entries_over_all_tensors():
    scores = {"a": torch.tensor([0.1, 0.5]), "b": torch.tensor([[0.3], [0.9]])}
    mask = genefl.top_mask(scores, 0.5)
    assert mask["a"].tolist() == [False, True]
    assert mask["b"].tolist() == [[False], [True]]
    assert sum(int(m.sum()) for m in genefl.top_mask(scores, 0.75).values()) == 3
    assert not any(m.any() for m in genefl.top_mask(scores, 0.0).values())


def test_sensitivity_is_abs_theta_times_gradient():
    got = genefl.sensitivity({"a": torch.tensor([-2.0, 3.0])}, {"a": torch.tensor([0.5, -1.0])})
    assert got["a"].tolist() == [1.0, 3.0]


def test_loss_gradients_match_the_hand_gradient():
    model = _linear(W)
    got = genefl.loss_gradients(model, torch.tensor(X), torch.tensor(Y), batch_size=1)
    g = [_ce_grad(W, x, y) for x, y in zip(X, Y, strict=True)]
    want = [[(g[0][r][c] + g[1][r][c]) / 2 for c in range(2)] for r in range(2)]
    torch.testing.assert_close(got["weight"], torch.tensor(want), rtol=1e-5, atol=1e-7)


def test_condense_fills_the_budget_greedily_by_mean_score():
    scores = {
        "c": torch.full((2,), 1.0),
        "a": torch.full((2,), 5.0),
        "b": torch.full((4,), 3.0),
    }
    # 8 parameters, budget 4: a (2) enters, b (4 more) does not fit, c (2) does
    assert genefl.condense(scores, 0.5) == ["c", "a"]
    assert genefl.condense(scores, 1.0) == ["c", "a", "b"]
    assert genefl.condense(scores, 0.5, exclude=["a"]) == ["b"]


def test_aggregate_is_the_weighted_mean_over_senders():
    one = ({"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([2.0])}, 1.0)
    two = ({"a": torch.tensor([4.0, 7.0])}, 3.0)
    got = genefl.aggregate([one, two])
    # a: (1*1 + 3*4)/4, (1*1 + 3*7)/4; b only from the first client
    torch.testing.assert_close(got["a"], torch.tensor([3.25, 5.5]))
    torch.testing.assert_close(got["b"], torch.tensor([2.0]))
    assert set(got) == {"a", "b"}


def test_initialise_copies_the_gene_and_rejects_other_shapes():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    fresh = model[1].weight.detach().clone()
    copied = genefl.initialise(model, {"0.weight": torch.full((3, 2), 0.5)})
    assert copied == ["0.weight"]
    assert torch.all(model[0].weight == 0.5)
    torch.testing.assert_close(model[1].weight.detach(), fresh)
    with pytest.raises(ValueError, match="shape"):
        genefl.initialise(model, {"0.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="not in the model"):
        genefl.initialise(model, {"2.weight": torch.zeros(1)})


def test_batchnorm_stem_vit_statistics_stay_the_labs_own():
    import learngene as lg

    vit = lg.create_vit(img_size=16, patch_size=4, in_chans=2, num_classes=2, embed_dim=16,
                        depth=1, num_heads=2, stem_width=8, stem_norm="batch", seed=0)  # fmt: skip
    x = torch.randn(4, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1])
    grads = genefl.loss_gradients(vit, x, y)
    names = genefl.condense(genefl.sensitivity(genefl.trainable(vit), grads), 1.0)
    # gradient-scored: every parameter may enter, no running statistic can
    assert "patch_embed.stem.1.weight" in names
    assert not any("running" in n or "num_batches" in n for n in names)
    lab = lg.create_vit(**lg.vit_arch(vit), seed=1)
    own = lab.patch_embed.stem[1].running_var.clone().add_(1.0)
    lab.patch_embed.stem[1].running_var.copy_(own)
    genefl.initialise(lab, {n: vit.state_dict()[n] for n in names})
    assert torch.equal(lab.patch_embed.stem[1].running_var, own)  # the lab's, untouched
    assert torch.equal(lab.patch_embed.stem[1].weight, vit.patch_embed.stem[1].weight)
    # given statistics (state-dict names), initialise copies them like any tensor
    stats = {"patch_embed.stem.1.running_mean": torch.full((8,), 0.5)}
    assert genefl.initialise(lab, stats) == list(stats)
    assert torch.all(lab.patch_embed.stem[1].running_mean == 0.5)
