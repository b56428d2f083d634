"""Logit matching (Ba & Caruana 2014): CE plus the mean squared difference of the raw logits."""

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only


class LogitMSEParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(0.5, ge=0, le=1000, description="Weight of the logit MSE term")


def loss(student, teacher, labels, params: LogitMSEParams, progress, modules):
    import torch.nn.functional as F  # inside: the web process reads this file without torch

    ce = F.cross_entropy(student.logits, labels)
    mse = F.mse_loss(student.logits, teacher.logits)
    return params.ce_weight * ce + params.weight * mse, {"ce": ce, "logit_mse": mse}


METHOD = Method(
    name="logit_mse", title="Logit MSE (plugin)", description="CE plus MSE between raw logits (Ba & Caruana 2014).",
    loss=loss, params=LogitMSEParams, loss_terms=("ce", "logit_mse"), needs_teacher=True, default_epochs=5,
    taps=logits_only,
)
