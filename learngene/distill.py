"""Soft distillation (Hinton et al., 2015), the loss that trains every Aux-Net.

    loss = (1 − α) · CE(student, targets) + α · τ² · KL(softmax(t/τ) ‖ softmax(s/τ))

The τ² keeps the soft term's gradients on the scale of the hard term's as τ grows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``KL(softmax(teacher/τ) ‖ softmax(student/τ))`` averaged over the batch (no τ²)."""
    return F.kl_div(
        F.log_softmax(student_logits / tau, dim=-1),
        F.log_softmax(teacher_logits.detach() / tau, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    alpha: float,
    tau: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Soft distillation loss, optionally mixed with cross-entropy on hard labels.

    Parameters
    ----------
    student_logits, teacher_logits
        ``(batch, classes)``; the teacher is not differentiated.
    targets
        ``(batch,)`` class ids; ``-1`` marks an unknown label (left out of the CE term).
        ``None`` drops the CE term (pure distillation, still weighted by ``alpha``).
    alpha
        Weight of the soft term in [0, 1]; the CE term gets ``1 − alpha``.
    tau
        Temperature > 0.
    label_smoothing
        Passed to the CE term.
    """
    if not 0.0 <= alpha <= 1.0 or tau <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")
    loss = alpha * tau**2 * kd_kl(student_logits, teacher_logits, tau)
    if targets is not None and alpha < 1.0:
        known = targets >= 0
        if known.any():
            ce = F.cross_entropy(
                student_logits[known], targets[known], label_smoothing=label_smoothing
            )
            loss = loss + (1.0 - alpha) * ce
    return loss


#: how a distillation token learns from the teacher (DeiT's ``--distillation-type``)
TOKEN_KINDS = ("hard", "soft")


def deit_loss(
    cls_logits: torch.Tensor,
    dist_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    *,
    kind: str = "hard",
    alpha: float = 0.5,
    tau: float = 1.0,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ce_scale: float = 1.0,
    kl_scale: float = 1.0,
) -> torch.Tensor:
    """DeiT's ``DistillationLoss`` for a model with a distillation token.

        loss = (1 − α) · CE(class head, labels) + α · D(distillation head, teacher)

    ``kind="hard"`` (DeiT's best): D = CE against the teacher's argmax; ``"soft"``:
    D = τ² · KL(softmax(t/τ) ‖ softmax(s/τ)), averaged over the batch (DeiT's code
    divides the summed KL by batch × classes instead, its "legacy" choice). Without a
    teacher (ours) the distillation head learns the labels too: D = CE(dist head, labels).
    ``weight`` and ``label_smoothing`` apply to the label terms only (the teacher's terms
    are DeiT's plain ones); ``ce_scale`` / ``kl_scale`` multiply the label and teacher
    means (a data-parallel rank's share of the batch).
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(f"distillation kind must be one of {TOKEN_KINDS}, got {kind!r}")
    if not 0.0 <= alpha <= 1.0 or tau <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")

    def label_ce(logits: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(
            logits.float(), targets, weight=weight, label_smoothing=label_smoothing
        )
        return ce * ce_scale

    base = label_ce(cls_logits)
    if teacher_logits is None:
        dist = label_ce(dist_logits)
    elif kind == "hard":
        dist = F.cross_entropy(dist_logits.float(), teacher_logits.detach().argmax(-1))
        dist = dist * kl_scale
    else:
        dist = tau**2 * kd_kl(dist_logits.float(), teacher_logits.float(), tau) * kl_scale
    return (1.0 - alpha) * base + alpha * dist
