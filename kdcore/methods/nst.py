"""Neuron selectivity transfer (Huang & Wang, "Like What You Like: Knowledge Distill via Neuron
Selectivity Transfer", arXiv 1707.01219, 2017): the squared MMD, under a degree-2 polynomial kernel,
between the distributions of the student's and the teacher's channel activation maps, at every stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method
from kdcore.methods.feature_pairs import every_stage, pooled_to_smaller

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def _channel_maps(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H·W), each channel's map L2-normalised."""
    import torch.nn.functional as F

    return F.normalize(feature_map.flatten(2), dim=2)


def _mean_poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch and all channel pairs of k(a_i, b_j) = (a_iᵀ b_j)², as one batched matmul
    (the references broadcast a B×C×C×HW tensor to get the same numbers)."""
    return (a @ b.transpose(1, 2)).pow(2).mean()


def nst_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    """MMD² = mean k(t, t) + mean k(s, s) − 2·mean k(s, t), k(x, y) = (xᵀy)², over channel-normalised
    maps; the larger map is average-pooled to the smaller size first. The teacher–teacher term carries no
    gradient but is kept, so that the value is the MMD itself (zero for identical maps)."""
    student_map, teacher_map = pooled_to_smaller(student_map, teacher_map)
    s, t = _channel_maps(student_map), _channel_maps(teacher_map)
    return _mean_poly_kernel(t, t).detach() + _mean_poly_kernel(s, s) - 2 * _mean_poly_kernel(s, t)


class NSTParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(50.0, ge=0, le=1e6, description="Weight of the NST term (summed over stages)")


def loss(student, teacher, labels, params: NSTParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = sum(nst_loss(s, t) for s, t in zip(student.taps.values(), teacher.taps.values()))
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "nst": term}


METHOD = Method(
    name="nst", title="Neuron selectivity transfer (NST)",
    description="CE plus the polynomial-kernel MMD between the channel activation maps of every paired stage "
    "(Huang & Wang 2017).",
    loss=loss, params=NSTParams, loss_terms=("ce", "nst"), needs_teacher=True, default_epochs=10, taps=every_stage,
)
