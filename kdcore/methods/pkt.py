"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018): match the conditional
distributions given by the cosine-similarity kernel over the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def _conditional_probabilities(embedding: torch.Tensor, eps: float) -> torch.Tensor:
    import torch

    flat = embedding.flatten(1)
    # vector_norm has a zero (not NaN) gradient at a zero row, unlike sqrt(sum(x²)).
    unit = flat / (torch.linalg.vector_norm(flat, dim=1, keepdim=True) + eps)
    similarity = (unit @ unit.transpose(0, 1) + 1.0) / 2.0
    return similarity / similarity.sum(dim=1, keepdim=True)


def pkt_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """mean(P_t · log((P_t + eps) / (P_s + eps))) over the N×N conditional probabilities.

    Rows are divided by their norm + eps, the cosine similarities mapped to [0, 1] by
    (s + 1)/2 and each row normalised to sum 1. The widths may differ (N×Ds, N×Dt).
    """
    import torch

    p_s = _conditional_probabilities(student_embedding, eps)
    p_t = _conditional_probabilities(teacher_embedding, eps)
    return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))


class PKTParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(30000.0, ge=0, le=1e7, description="Weight of the probabilistic-transfer term")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=("embedding",), teacher=("embedding",))


def loss(student, teacher, labels, params: PKTParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = pkt_loss(student.taps["embedding"], teacher.taps["embedding"])
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "pkt": term}


METHOD = Method(
    name="pkt", title="Probabilistic KT (PKT)",
    description="CE plus the KL divergence between the batch's cosine-similarity distributions of the "
    "embeddings (Passalis & Tefas 2018).",
    loss=loss, params=PKTParams, loss_terms=("ce", "pkt"), needs_teacher=True, default_epochs=10, taps=taps,
)
