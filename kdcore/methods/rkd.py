"""Relational knowledge distillation (Park et al., CVPR 2019): match the batch's pairwise
distances (distance-wise) and the angles of its triplets (angle-wise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def pairwise_distances(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """N×N Euclidean distances: squared distances clamped at ``eps``, square-rooted, with a
    zero diagonal (set through a mask, not by indexing, so it can be graph-captured)."""
    import torch

    square = embedding.pow(2).sum(dim=1)
    squared = (square.unsqueeze(1) + square.unsqueeze(0) - 2 * embedding @ embedding.transpose(0, 1)).clamp(min=eps)
    eye = torch.eye(embedding.shape[0], dtype=torch.bool, device=embedding.device)
    return torch.where(eye, 0.0, squared.sqrt())


def normalized_distances(embedding: torch.Tensor) -> torch.Tensor:
    """Pairwise distances divided by the mean of their positive entries, that mean taken as
    sum / count(d > 0) on the device (no boolean-mask indexing, no host read)."""
    d = pairwise_distances(embedding)
    positive = (d > 0).to(d.dtype)
    mean = (d * positive).sum() / positive.sum().clamp(min=1.0)
    return d / mean.clamp(min=1e-12)


def triplet_angles(embedding: torch.Tensor) -> torch.Tensor:
    """Flattened N·N·N cosines: entry (i, j, k) is the cosine between (e_j − e_i)/‖·‖ and
    (e_k − e_i)/‖·‖ (zero where j = i or k = i, whose difference vector is zero)."""
    import torch
    import torch.nn.functional as F

    differences = embedding.unsqueeze(0) - embedding.unsqueeze(1)  # [i, j] = e_j − e_i
    unit = F.normalize(differences, p=2, dim=2)
    return torch.bmm(unit, unit.transpose(1, 2)).reshape(-1)


def rkd_loss(
    student_embedding: torch.Tensor,
    teacher_embedding: torch.Tensor,
    distance_weight: float,
    angle_weight: float,
) -> torch.Tensor:
    """distance_weight·smoothL1(d_s, d_t) + angle_weight·smoothL1(angles_s, angles_t).

    Embeddings are flattened to (N, D); their widths may differ. The teacher's side is
    computed without gradient.
    """
    import torch
    import torch.nn.functional as F

    student = student_embedding.flatten(1)
    with torch.no_grad():
        teacher = teacher_embedding.detach().flatten(1)
        teacher_d = normalized_distances(teacher)
        teacher_angle = triplet_angles(teacher)
    distance = F.smooth_l1_loss(normalized_distances(student), teacher_d)
    angle = F.smooth_l1_loss(triplet_angles(student), teacher_angle)
    return distance_weight * distance + angle_weight * angle


class RKDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1e6, description="Weight of the relational term")
    distance_weight: float = Field(25.0, ge=0, le=1e6, description="Weight of the distance relation")
    angle_weight: float = Field(50.0, ge=0, le=1e6, description="Weight of the angle relation")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=("embedding",), teacher=("embedding",))


def loss(student, teacher, labels, params: RKDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = rkd_loss(student.taps["embedding"], teacher.taps["embedding"], params.distance_weight, params.angle_weight)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "rkd": term}


METHOD = Method(
    name="rkd", title="Relational KD (RKD)",
    description="CE plus smooth-L1 between the batch's pairwise distances and triplet angles of the embeddings "
    "(Park et al. 2019).",
    loss=loss, params=RKDParams, loss_terms=("ce", "rkd"), needs_teacher=True, default_epochs=10, taps=taps,
)
