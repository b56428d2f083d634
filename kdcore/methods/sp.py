"""Similarity-preserving KD (Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019):
the student's batch similarity matrix of its last feature map should equal the teacher's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice
from kdcore.methods.cosine import _last_stage

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def similarity_matrix(feature_map: torch.Tensor) -> torch.Tensor:
    """G = f·fᵀ over the batch's flattened maps (B×B), each row L2-normalised."""
    import torch.nn.functional as F

    flat = feature_map.flatten(1)
    return F.normalize(flat @ flat.transpose(0, 1), dim=1)


def sp_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    """‖G_t − G_s‖²_F / B². The maps may differ in channels and size: only the B×B matrices meet."""
    batch = student_map.shape[0]
    difference = similarity_matrix(teacher_map) - similarity_matrix(student_map)
    return difference.pow(2).sum() / (batch * batch)


class SPParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(3000.0, ge=0, le=1e7, description="Weight of the similarity-preserving term")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last_stage(student),), teacher=(_last_stage(teacher),))


def loss(student, teacher, labels, params: SPParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    term = sp_loss(student_map, teacher_map)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "sp": term}


METHOD = Method(
    name="sp", title="Similarity-preserving KD (SP)",
    description="CE plus the distance between the batch's normalised similarity matrices of the last "
    "feature maps (Tung & Mori 2019).",
    loss=loss, params=SPParams, loss_terms=("ce", "sp"), needs_teacher=True, default_epochs=10, taps=taps,
)
