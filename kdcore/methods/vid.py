"""Variational information distillation (Ahn et al., "Variational Information Distillation for Knowledge
Transfer", CVPR 2019): at every paired stage, a regressor predicts the teacher's map from the student's as
the mean of a Gaussian whose per-channel variance is learnt, and the loss is its negative log-likelihood.
Regressors and variances (RepDistiller's ``VIDLoss``, one per stage as mdistiller's VID) belong to the
method: they train with the student and are saved in its checkpoint, but are not deployed with it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from kdcore.methods.base import Hyperparameters, Method
from kdcore.methods.feature_pairs import every_stage, pooled_to_smaller

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def vid_loss(pred_mean: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """mean of ½((μ − t)²/σ² + log σ²), σ² = softplus(log_scale) + eps per channel.

    softplus is the references' log(1 + exp(·)), without its overflow for a large scale."""
    import torch.nn.functional as F

    variance = (F.softplus(log_scale) + eps).view(1, -1, 1, 1)
    return (0.5 * ((pred_mean - target).pow(2) / variance + variance.log())).mean()


class VIDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1e6, description="Weight of the VID term (summed over stages)")
    init_pred_var: float = Field(5.0, gt=0, le=1e4, description="Initial predicted variance σ² of every channel")
    eps: float = Field(1e-5, gt=0, le=1, description="Floor added to the variance")

    @model_validator(mode="after")
    def _variance_above_its_floor(self):
        if self.init_pred_var <= self.eps:
            # Reported against a field, so that a form can show it beside one.
            error = PydanticCustomError("below_floor", "init_pred_var must be larger than eps, the variance's floor")
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=error, loc=("init_pred_var",), input=self.init_pred_var)])
        return self


def _initial_log_scale(params: VIDParams) -> float:
    """The log_scale whose softplus + eps is init_pred_var (softplus⁻¹(v) = log(eˣ − 1), via expm1)."""
    return math.log(math.expm1(params.init_pred_var - params.eps))


def modules(student, teacher, params: VIDParams):
    import torch  # here, not above: the torch-free web process reads this file
    from torch import nn

    def conv1x1(c_in, c_out):
        return nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)

    chosen = every_stage(student, teacher, params)
    regressors, log_scales = nn.ModuleList(), nn.ParameterList()
    for s_name, t_name in zip(chosen.student, chosen.teacher):
        s, t = student[s_name][0], teacher[t_name][0]
        # The references' regressor: two hidden layers as wide as the teacher's map.
        regressors.append(nn.Sequential(conv1x1(s, t), nn.ReLU(), conv1x1(t, t), nn.ReLU(), conv1x1(t, t)))
        log_scales.append(nn.Parameter(torch.full((t,), _initial_log_scale(params))))
    return nn.ModuleDict({"regressors": regressors, "log_scales": log_scales})


def loss(student, teacher, labels, params: VIDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = 0
    pairs = zip(student.taps.values(), teacher.taps.values(), modules["regressors"], modules["log_scales"])
    for student_map, teacher_map, regressor, log_scale in pairs:
        student_map, teacher_map = pooled_to_smaller(student_map, teacher_map)
        term = term + vid_loss(regressor(student_map), log_scale, teacher_map, params.eps)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "vid": term}


METHOD = Method(
    name="vid", title="Variational information distillation (VID)",
    description="CE plus the Gaussian negative log-likelihood of every teacher stage given a regressor of the "
    "student's, with learnt variances (Ahn et al. 2019).",
    loss=loss, params=VIDParams, loss_terms=("ce", "vid"), needs_teacher=True, default_epochs=10,
    taps=every_stage, modules=modules,
)
