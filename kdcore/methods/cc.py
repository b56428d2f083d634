"""Correlation congruence (Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019),
in RepDistiller's form: both embeddings are projected by trained linear layers to a common width, and the
loss couples the differences of neighbouring samples in the batch. The two projectors belong to the
method: they train with the student and are saved in its checkpoint, but are not deployed with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def cc_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
    """mean over i < B−1 of Σ_d |Δ_i,d|·|Δ_i+1,d|, Δ = s − t (RepDistiller's ``Correlation``).
    Both embeddings have the same width (the projectors' output)."""
    delta = (student_embedding - teacher_embedding).abs()
    return (delta[:-1] * delta[1:]).sum(1).mean()


class CCParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(0.02, ge=0, le=1e6, description="Weight of the correlation-congruence term")
    embedding_dim: int = Field(128, ge=1, le=4096, description="Width both embeddings are projected to")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=("embedding",), teacher=("embedding",))


def modules(student, teacher, params: CCParams):
    from torch import nn  # here, not above: the torch-free web process reads this file

    return nn.ModuleDict({
        "student_projector": nn.Linear(student["embedding"][0], params.embedding_dim),
        "teacher_projector": nn.Linear(teacher["embedding"][0], params.embedding_dim),
    })


def loss(student, teacher, labels, params: CCParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    s = modules["student_projector"](student.taps["embedding"].flatten(1))
    t = modules["teacher_projector"](teacher.taps["embedding"].flatten(1))
    term = cc_loss(s, t)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "cc": term}


METHOD = Method(
    name="cc", title="Correlation congruence (CC)",
    description="CE plus the coupled differences of neighbouring samples' projected embeddings "
    "(Peng et al. 2019, RepDistiller's form).",
    loss=loss, params=CCParams, loss_terms=("ce", "cc"), needs_teacher=True, default_epochs=10, taps=taps,
    modules=modules,
)
