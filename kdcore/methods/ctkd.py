"""Curriculum Temperature for Knowledge Distillation (Zheng Li, Xiang Li, Lingfeng Yang, Borui Zhao, Renjie Song,
Lei Luo, Jun Li and Jian Yang, "Curriculum Temperature for Knowledge Distillation", AAAI 2023): KD at a
temperature the run learns, adversarially. The temperature is T = T_min + T_range·sigmoid(θ), θ one learnt
parameter (the authors' global temperature, their code's default), reached through a gradient-reversal
layer: the student descends the KD loss while θ ascends it, each step a little harder. The reversal's
strength λ rises over the first epochs along a cosine (easy to hard), as the authors' ``CosineDecay``
(github.com/zhengli97/CTKD, train_student.py; defaults from its scripts/run_cifar_distill.sh).

The learnt temperature is reported each epoch (its mean over the epoch's steps) and drawn in the run's
curves. The authors' instance-wise variant (a temperature per image) is not offered: its module was
published only as a download, not in their code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only
from kdcore.methods.kd import soft_target_loss

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module and must never import torch.

THETA = "temperature_logit"  # the learnt parameter θ, by its name in the method's modules


def gradient_reversal(x: torch.Tensor, strength) -> torch.Tensor:
    """``x`` itself going forward; going backward, the gradient times −``strength`` (Ganin & Lempitsky
    2015). ``strength`` may be a number or a tensor (a device scalar: no host read). The forward value is
    exactly ``x``: x − x.detach() is exactly zero."""
    return x.detach() - strength * (x - x.detach())


def reversal_strength(epoch, start: float, end: float, epochs: int):
    """λ at ``epoch`` (counted from 1; a number or a 0-d device tensor): from ``start`` towards ``end``
    along a half cosine over ``epochs`` epochs, then ``end``. The authors' CosineDecay(max=−start,
    min=−end, loops=epochs).get_value(epoch) is −λ; their layer multiplies the gradient by it."""
    if epochs <= 0:
        return end
    if isinstance(epoch, (int, float)):
        return start + (end - start) * (1 - math.cos(math.pi * min(max(epoch, 0), epochs) / epochs)) / 2
    import torch

    return start + (end - start) * (1 - torch.cos(math.pi * epoch.clamp(0, epochs) / epochs)) / 2


def curriculum_temperature(theta: torch.Tensor, strength, minimum: float, span: float) -> torch.Tensor:
    """T = minimum + span·sigmoid(θ), θ behind the gradient reversal of ``strength``."""
    import torch

    return minimum + span * torch.sigmoid(gradient_reversal(theta, strength))


class CTKDParams(Hyperparameters):
    ce_weight: float = Field(0.1, ge=0, le=1000, description="Weight of the cross-entropy term")
    kd_weight: float = Field(0.9, ge=0, le=1000, description="Weight of the KD term at the learnt temperature")
    min_temperature: float = Field(1.0, gt=0, le=1000, description="Lowest temperature the module can learn "
                                   "(T = minimum + range·sigmoid(θ))")
    temperature_range: float = Field(20.0, ge=0, le=1000, description="How far above the lowest the learnt "
                                     "temperature can go")
    reversal_start: float = Field(0.0, ge=0, le=100, description="Strength λ of the gradient reversal at the start")
    reversal_end: float = Field(1.0, ge=0, le=100, description="Strength λ of the gradient reversal once ramped up")
    reversal_epochs: int = Field(10, ge=0, le=10000, description="Epochs over which λ rises along a cosine "
                                 "(0: λ is its end value from the start)")


def modules(student, teacher, params: CTKDParams):
    import torch

    # θ = 1 at the start, as the authors' Global_T: T starts at minimum + range·sigmoid(1).
    return torch.nn.ParameterDict({THETA: torch.nn.Parameter(torch.ones(()))})


def loss(student, teacher, labels, params: CTKDParams, progress, modules):
    import torch.nn.functional as F

    strength = reversal_strength(progress.epoch, params.reversal_start, params.reversal_end, params.reversal_epochs)
    temperature = curriculum_temperature(modules[THETA], strength, params.min_temperature, params.temperature_range)
    ce = F.cross_entropy(student.logits, labels)
    kd = soft_target_loss(student.logits, teacher.logits, temperature)
    total = params.ce_weight * ce + params.kd_weight * kd
    return total, {"ce": ce, "kd": kd, "temperature": temperature.detach()}


METHOD = Method(
    name="ctkd", title="Curriculum temperature (CTKD)",
    description="CE plus KD at a learnt temperature that ascends the KD loss through a gradient reversal "
                "ramped up along a cosine (Li et al. 2023).",
    loss=loss, params=CTKDParams, loss_terms=("ce", "kd", "temperature"), reported=("temperature",),
    needs_teacher=True, default_epochs=10, taps=logits_only, modules=modules,
)
