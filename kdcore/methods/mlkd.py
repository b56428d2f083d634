"""Multi-Level Logit Distillation (Ying Jin, Jiaqi Wang and Dahua Lin, "Multi-Level Logit Distillation",
CVPR 2023): the teacher's and the student's predictions aligned at three levels, per instance (KD),
across the batch's classes (class correlation) and across its images (batch correlation), at several
temperatures, on a weakly and a strongly augmented view of every batch, with confidence masking.

The arithmetic is the authors' code's (github.com/Jin-Ying/Multi-Level-Logit-Distillation,
``mdistiller/distillers/KD_ours.py``), including what it does beyond the paper's text: each term is
reduced to a scalar before its mask multiplies it, so a mask enters as the share of images (or classes)
it keeps; the temperatures are T, 3, 5, 2 and 6, and the strong view's KD term takes its last two on the
weak view's logits; the correlation terms use the weak view only. ``standardize`` z-scores the logits of
the KD terms only (logit standardisation, Sun et al. 2024, as their code extends MLKD); the masks and
correlation terms see the logits as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only
from kdcore.methods.kd import soft_target_loss
from kdcore.methods.logit_standardization import logit_pair

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module and must never import torch.

# The authors' temperatures beside the configurable first one, in their order.
EXTRA_TEMPERATURES = (3.0, 5.0, 2.0, 6.0)
STRONG = "strong"  # the view it asks for (kdcore.training.views)


def class_correlation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Σ(p_tᵀp_t − p_sᵀp_s)² / C, p = softmax(z/T): the (C, C) class-correlation matrices of the batch."""
    import torch.nn.functional as F

    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return ((p_t.T @ p_t - p_s.T @ p_s) ** 2).sum() / student_logits.shape[1]


def batch_correlation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Σ(p_t p_tᵀ − p_s p_sᵀ)² / B, p = softmax(z/T): the (B, B) image-correlation matrices of the batch."""
    import torch.nn.functional as F

    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return ((p_t @ p_t.T - p_s @ p_s.T) ** 2).sum() / student_logits.shape[0]


def kept_share(values: torch.Tensor) -> torch.Tensor:
    """The share of ``values`` at or below their median (numpy's percentile 50, linear interpolation, as
    the authors' masks): what a confidence mask keeps. On the device: no boolean indexing, no host read."""
    import torch

    values = values.detach()
    return (values <= torch.quantile(values, 0.5)).to(values.dtype).mean()


def mlkd_terms(student_weak, teacher_weak, student_strong, teacher_strong, temperature: float,
               standardize: bool = False) -> dict[str, torch.Tensor]:
    """The unweighted MLKD terms from the four logits: ``kd`` (both views), ``class_correlation`` and
    ``batch_correlation`` (weak view), each summed over the temperatures and scaled by its mask's share."""
    import torch.nn.functional as F

    temperatures = (temperature, *EXTRA_TEMPERATURES)
    confident = F.softmax(teacher_weak.detach(), dim=1)
    image_share = kept_share(confident.amax(dim=1))  # images the teacher is least sure of
    class_share = kept_share(confident.sum(dim=0))  # classes the batch predicts least
    s_weak, t_weak = logit_pair(student_weak, teacher_weak, standardize)
    s_strong, t_strong = logit_pair(student_strong, teacher_strong, standardize)
    kd_weak = sum(soft_target_loss(s_weak, t_weak, T) for T in temperatures) * image_share
    # The authors' strong KD term: T, 3 and 5 on the strong view, then 2 and 6 on the weak one.
    kd_strong = sum(soft_target_loss(s_strong, t_strong, T) for T in temperatures[:3])
    kd_strong = kd_strong + sum(soft_target_loss(s_weak, t_weak, T) for T in temperatures[3:])
    return {
        "kd": kd_weak + kd_strong,
        "class_correlation": sum(class_correlation_loss(student_weak, teacher_weak, T)
                                 for T in temperatures) * class_share,
        "batch_correlation": sum(batch_correlation_loss(student_weak, teacher_weak, T)
                                 for T in temperatures) * image_share,
    }


class MLKDParams(Hyperparameters):
    ce_weight: float = Field(0.1, ge=0, le=1000, description="Weight of the cross-entropy term (on both views)")
    kd_weight: float = Field(0.9, ge=0, le=1000, description="Weight of each distillation term")
    temperature: float = Field(4.0, gt=0, le=1000, description="First softmax temperature T; the authors' 3, 5, 2 "
                               "and 6 follow it")
    standardize: bool = Field(False, description="Standardise both logits per row in the KD terms (logit "
                              "standardisation, Sun et al. 2024)")


def loss(student, teacher, labels, params: MLKDParams, progress, modules):
    import torch.nn.functional as F

    strong_s, strong_t = student.views[STRONG].logits, teacher.views[STRONG].logits
    ce = F.cross_entropy(student.logits, labels) + F.cross_entropy(strong_s, labels)
    terms = mlkd_terms(student.logits, teacher.logits, strong_s, strong_t, params.temperature, params.standardize)
    total = params.ce_weight * ce + params.kd_weight * sum(terms.values())
    return total, {"ce": ce, **terms}


METHOD = Method(
    name="mlkd", title="Multi-level logit distillation (MLKD)",
    description="CE plus KD, class- and batch-correlation terms at five temperatures on a weak and a strong "
                "view (Jin et al. 2023).",
    loss=loss, params=MLKDParams, loss_terms=("ce", "kd", "class_correlation", "batch_correlation"),
    needs_teacher=True, default_epochs=10, taps=logits_only, views=(STRONG,),
)
