"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018): match the conditional
distributions given by the cosine-similarity kernel over the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
