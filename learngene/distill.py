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
