"""DIST (Huang et al., NeurIPS 2022): distillation from a stronger teacher by matching the
Pearson correlations of the predictions within each sample (inter-class) and within each
class across the batch (intra-class)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, logits_only
from kdcore.methods.logit_standardization import logit_pair

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-row Pearson correlation as the cosine of the mean-centred rows,
    (a·b) / (‖a‖·‖b‖ + eps), as in the authors' code."""
    import torch

    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(a, dim=1) * torch.linalg.vector_norm(b, dim=1)
    return (a * b).sum(dim=1) / (norms + eps)


def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float,
    gamma: float,
    temperature: float,
) -> torch.Tensor:
    """T²·(β·(1 − mean row Pearson) + γ·(1 − mean column Pearson)) of softmax(z/T)."""
    y_s = (student_logits / temperature).softmax(dim=1)
    y_t = (teacher_logits / temperature).softmax(dim=1)
    inter = 1 - pearson_rows(y_s, y_t).mean()
    intra = 1 - pearson_rows(y_s.transpose(0, 1), y_t.transpose(0, 1)).mean()
    return temperature**2 * (beta * inter + gamma * intra)


class DISTParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    beta: float = Field(1.0, ge=0, le=1000, description="Weight β of the inter-class (row) relation")
    gamma: float = Field(1.0, ge=0, le=1000, description="Weight γ of the intra-class (column) relation")
    temperature: float = Field(4.0, gt=0, le=1000, description="Softmax temperature T")
    standardize: bool = Field(False, description="Standardise both logits per row before the temperature")


def loss(student, teacher, labels, params: DISTParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    s, t = logit_pair(student.logits, teacher.logits, params.standardize)
    term = dist_loss(s, t, params.beta, params.gamma, params.temperature)
    return params.ce_weight * ce + term, {"ce": ce, "dist": term}


METHOD = Method(
    name="dist", title="DIST",
    description="CE plus Pearson-correlation relations of the softened outputs, across classes and across the "
    "batch (Huang et al. 2022).",
    loss=loss, params=DISTParams, loss_terms=("ce", "dist"), needs_teacher=True, default_epochs=10, taps=logits_only,
)
