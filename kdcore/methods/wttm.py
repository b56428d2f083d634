"""Weighted transformed teacher matching (Zheng & Yang, "Knowledge Distillation Based on Transformed
Teacher Matching", ICLR 2024): the student's plain softmax matches the teacher's power-transformed
distribution p_t^γ / Σ p_t^γ (a temperature 1/γ on the teacher's side only), each sample weighted by the
teacher's power sum Σ p_t^γ, which is larger for a smoother teacher output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def wttm_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """mean over the batch of U_γ(p_t)·KL(p_t^γ / U_γ(p_t) ‖ softmax(s)), U_γ(p) = Σ_c p_c^γ
    (the authors' ``WTTM``).

    In log space throughout: log p_t^γ = γ·log_softmax(t), so the transformed teacher is
    softmax(γ·log_softmax(t)) and log U_γ its logsumexp. A confident teacher, whose small
    probabilities underflow to 0 in the authors' pow(softmax, γ), stays finite here."""
    import torch
    import torch.nn.functional as F

    powered = gamma * F.log_softmax(teacher_logits, dim=1)  # log p_t^γ
    log_norm = torch.logsumexp(powered, dim=1)
    log_target = powered - log_norm.unsqueeze(1)
    kl = F.kl_div(F.log_softmax(student_logits, dim=1), log_target, reduction="none", log_target=True).sum(1)
    return (log_norm.exp() * kl).mean()


class WTTMParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(4.0, ge=0, le=1e6, description="Weight β of the WTTM term")
    gamma: float = Field(0.2, gt=0, le=10, description="Exponent γ of the teacher's power transform "
                         "(a teacher-side temperature of 1/γ)")


def loss(student, teacher, labels, params: WTTMParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = wttm_loss(student.logits, teacher.logits, params.gamma)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "wttm": term}


METHOD = Method(
    name="wttm", title="Weighted transformed teacher matching (WTTM)",
    description="CE plus the KL from the teacher's power-transformed distribution to the student's, weighted "
    "per sample by the teacher's power sum (Zheng & Yang 2024).",
    loss=loss, params=WTTMParams, loss_terms=("ce", "wttm"), needs_teacher=True, default_epochs=10,
    taps=logits_only,
)
