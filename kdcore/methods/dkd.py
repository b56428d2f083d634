"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022): the KD loss split into a
target-class term (TCKD, binary target vs. rest) and a non-target term (NCKD)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only
from kdcore.methods.logit_standardization import logit_pair

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """α·TCKD + β·NCKD.

    TCKD = T²·KL(b_t ‖ b_s)/N with b = [p_gt, 1 − p_gt] of softmax(z/T); NCKD =
    T²·KL(p̂_t ‖ p̂_s)/N with p̂ = softmax(z/T − 1000·onehot(label)), the target pushed down
    as in the authors' code. Everything stays in log space (log_target KL, log(1 − p_gt) as
    a logsumexp over the other classes), so a teacher with p_gt → 1 gives finite values and
    gradients. No host synchronisation: the masks are built with scatter, not indexing.
    """
    import torch
    import torch.nn.functional as F

    batch = student_logits.shape[0]
    s = student_logits / temperature
    t = teacher_logits / temperature
    gt = torch.zeros_like(s, dtype=torch.bool).scatter(1, labels.reshape(-1, 1), True)
    index = labels.reshape(-1, 1)

    def binary_log_probs(z):
        log_p = F.log_softmax(z, dim=1)
        log_gt = log_p.gather(1, index)
        log_rest = torch.logsumexp(torch.where(gt, float("-inf"), log_p), dim=1, keepdim=True)
        return torch.cat([log_gt, log_rest], dim=1)

    tckd = F.kl_div(binary_log_probs(s), binary_log_probs(t), reduction="sum", log_target=True)
    tckd = tckd * temperature**2 / batch

    nckd_s = F.log_softmax(torch.where(gt, s - 1000.0, s), dim=1)
    nckd_t = F.log_softmax(torch.where(gt, t - 1000.0, t), dim=1)
    nckd = F.kl_div(nckd_s, nckd_t, reduction="sum", log_target=True) * temperature**2 / batch

    return alpha * tckd + beta * nckd


def dkd_warmup(epoch, warmup):
    """The DKD term's warm-up factor min(epoch / warmup, 1).

    ``epoch`` may be a number or a 0-d tensor (on any device: clamped on the device, no
    host read). A warm-up of 0 or less means no warm-up (factor 1).
    """
    if warmup <= 0:
        return 1.0
    if isinstance(epoch, (int, float)):
        return min(epoch / warmup, 1.0)
    import torch

    return torch.clamp(epoch / warmup, max=1.0)


class DKDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    alpha: float = Field(1.0, ge=0, le=1000, description="Weight α of the target-class term (TCKD)")
    beta: float = Field(8.0, ge=0, le=1000, description="Weight β of the non-target term (NCKD)")
    temperature: float = Field(4.0, gt=0, le=1000, description="Softmax temperature T")
    warmup: int = Field(20, ge=0, le=1000, description="Epochs over which the DKD term's weight rises to 1")
    standardize: bool = Field(False, description="Standardise both logits per row before the temperature")


def loss(student, teacher, labels, params: DKDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    s, t = logit_pair(student.logits, teacher.logits, params.standardize)
    term = dkd_loss(s, t, labels, params.alpha, params.beta, params.temperature)
    return params.ce_weight * ce + dkd_warmup(progress.epoch, params.warmup) * term, {"ce": ce, "dkd": term}


METHOD = Method(
    name="dkd", title="Decoupled KD (DKD)",
    description="CE plus α·TCKD + β·NCKD: the KD loss split into target and non-target parts (Zhao et al. 2022).",
    loss=loss, params=DKDParams, loss_terms=("ce", "dkd"), needs_teacher=True, default_epochs=10, taps=logits_only,
)
