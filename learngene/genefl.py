"""GENE-FL: the learngene of federated learning (Guo et al., arXiv 2504.14628).

Pure functions on named tensors (``{name: tensor}``, the keys of a model's
``named_parameters``); the federated loop that calls them lives in
`attpc_classify.federated`. No public code of the paper was found; everything here is
written from the paper's text, and the choices it leaves open are ours (marked below).

* **Fisher** (`fisher_diagonal`): the diagonal empirical Fisher information
  ``F_i = mean_b (d loss_b / d theta_i)^2`` of the cross-entropy (the negative
  log-likelihood) over mini-batches ``b``; with ``batch_size=1`` the textbook
  ``E[(d log p(y|x) / d theta_i)^2]`` over the events.
* **Constraint** (`fisher_penalty`): ``lambda/2 * sum_i m_i F_i (theta_i - theta*_i)^2``
  around the global learnGene ``theta*`` on its high-Fisher parameters ``m_i = 1``
  (`top_mask`: the largest ``fraction`` of Fisher values over all tensors; the
  fraction is ours, the paper keeps "high-Fisher" parameters).
* **Sensitivity and condensation** (`sensitivity`, `condense`): a parameter's
  sensitivity is ``|theta_i * dL/dtheta_i|`` (first-order estimate of the loss change
  when it is removed); a tensor scores the mean over its entries, and the learnGene is
  the highest-scoring whole tensors up to ``fraction`` of all parameters (tensor
  granularity, so that a learnGene is a set of layers and costs no index list: ours).
* **Aggregation** (`aggregate`): each tensor is the example-weighted mean over the
  clients that sent it, ``sum_k n_k theta_k / sum_k n_k``; the round's global learnGene
  is the union of what the clients sent.
* **Initialisation** (`initialise`): a new model takes the learnGene's tensors, its
  other parameters keep their fresh initialisation.

BatchNorm running statistics (the CNN's, a ViT's ``stem_norm="batch"`` stem) are buffers
with no gradient, hence no sensitivity: a learnGene never holds them (ours). Each lab
keeps its own and re-estimates them on its events (`attpc_classify.federated`), which is
what a BatchNorm stem is for; `initialise` still copies any it is given (state-dict names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Tensors = dict[str, torch.Tensor]


def trainable(model: nn.Module) -> Tensors:
    """The model's trainable parameters by name (views, not copies)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def fisher_diagonal(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 1,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = _nll,
) -> Tensors:
    """Diagonal empirical Fisher of ``loss_fn`` (default mean cross-entropy).

    ``F_i = (1/B) sum_b g_{b,i}^2`` with ``g_b`` the gradient of the loss of batch ``b``
    (``B`` batches of ``batch_size`` events; the last may be smaller). The model is put
    in eval mode (BatchNorm on its running statistics, no dropout) and restored.
    ``x`` must already be the model's float input.
    """
    params = trainable(model)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    batches = 0
    for start in range(0, len(x), batch_size):
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model, x[start : start + batch_size], y[start : start + batch_size])
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, g in zip(params, grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2
        batches += 1
    model.train(was_training)
    return {n: f / max(1, batches) for n, f in fisher.items()}


def top_mask(scores: Mapping[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Boolean masks of the ``round(fraction * N)`` largest entries over all tensors.

    Exactly that many entries are set (ties broken by position, as `torch.topk` does).
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    k = round(fraction * flat.numel())
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    if k:
        chosen[torch.topk(flat, k).indices] = True
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = chosen[start : start + size].reshape(scores[n].shape)
        start += size
    return out


def fisher_penalty(
    params: Mapping[str, torch.Tensor],
    anchor: Mapping[str, torch.Tensor],
    fisher: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor] | None,
    lam: float,
) -> torch.Tensor:
    """``lam/2 * sum_i m_i F_i (theta_i - theta*_i)^2`` over the tensors in ``anchor``.

    ``params`` the live parameters (gradients flow), ``anchor`` the global learnGene
    ``theta*``, ``fisher`` its Fisher values, ``mask`` the high-Fisher entries (None:
    every entry). Tensors absent from ``anchor`` are free.
    """
    total = torch.zeros(())
    for name, star in anchor.items():
        theta = params[name]
        term = fisher[name].to(theta) * (theta - star.to(theta)) ** 2
        if mask is not None:
            term = term * mask[name].to(theta)
        total = total + term.sum()
    return 0.5 * lam * total


def sensitivity(params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> Tensors:
    """``|theta_i * g_i|`` per entry: the first-order loss change when ``theta_i -> 0``."""
    return {n: (params[n].detach() * grads[n].detach()).abs() for n in grads}


def loss_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
) -> Tensors:
    """Gradient of the mean cross-entropy over all of ``(x, y)`` (eval mode), by name."""
    params = trainable(model)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, g in zip(params, grads, strict=True):
            if g is not None:
                total[name] += g.detach()
    model.train(was_training)
    return total


def condense(
    scores: Mapping[str, torch.Tensor],
    fraction: float,
    *,
    exclude: Iterable[str] = (),
) -> list[str]:
    """The learnGene's tensors: highest mean score first, while their parameters fit in
    ``fraction`` of all parameters (of ``scores``, excluded ones counted).

    A tensor that does not fit is skipped and smaller ones further down may still enter
    (a knapsack filled greedily by score). Returned in the order of ``scores``.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    skip = set(exclude)
    budget = fraction * sum(s.numel() for s in scores.values())
    ranked = sorted(
        (n for n in scores if n not in skip),
        key=lambda n: float(scores[n].float().mean()),
        reverse=True,
    )
    chosen, used = set(), 0
    for name in ranked:
        size = scores[name].numel()
        if used + size <= budget:
            chosen.add(name)
            used += size
    return [n for n in scores if n in chosen]


def aggregate(genes: Sequence[tuple[Mapping[str, torch.Tensor], float]]) -> Tensors:
    """Per tensor, ``sum_k n_k theta_k / sum_k n_k`` over the clients ``k`` that sent it.

    ``genes``: (learnGene tensors, weight n_k, e.g. training examples) per client.
    """
    sums: Tensors = {}
    weights: dict[str, float] = {}
    for tensors, weight in genes:
        if weight <= 0:
            raise ValueError(f"client weight must be > 0, got {weight}")
        for name, t in tensors.items():
            t = t.detach().double()
            sums[name] = sums[name] + weight * t if name in sums else weight * t
            weights[name] = weights.get(name, 0.0) + weight
    dtypes = {}
    for tensors, _ in genes:
        dtypes.update({n: t.dtype for n, t in tensors.items()})
    return {n: (s / weights[n]).to(dtypes[n]) for n, s in sums.items()}


def initialise(model: nn.Module, gene: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy the learnGene's tensors into ``model`` in place; returns the names copied.

    Shapes must match (`ValueError` otherwise); names the model lacks are an error, so
    a learnGene of another architecture is not half applied silently.
    """
    state = model.state_dict()
    missing = sorted(set(gene) - set(state))
    if missing:
        raise ValueError(f"learnGene tensors not in the model: {', '.join(missing[:5])}")
    for name, t in gene.items():
        if tuple(state[name].shape) != tuple(t.shape):
            raise ValueError(
                f"learnGene tensor {name}: shape {tuple(t.shape)}, model {tuple(state[name].shape)}"
            )
    with torch.no_grad():
        for name, t in gene.items():
            state[name].copy_(t)
    return list(gene)
