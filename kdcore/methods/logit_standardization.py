"""Logit standardisation (Sun et al., CVPR 2024): each row of logits z-scored before the
temperature, applied to both the student's and the teacher's logits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    import torch

# No torch import needed at all here (tensor methods only); kept torch-free because the web
# process imports kdcore.methods and must never import torch.


def standardize_logits(z: torch.Tensor) -> torch.Tensor:
    """(z − mean(z)) / (std(z) + 1e-7) over the last dimension, std unbiased (torch's
    default), as in the authors' code."""
    return (z - z.mean(dim=-1, keepdim=True)) / (z.std(dim=-1, keepdim=True) + 1e-7)


def logit_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor, standardize: bool):
    """Both logits as a logit-based method compares them: standardised when the run asks for it."""
    if standardize:
        return standardize_logits(student_logits), standardize_logits(teacher_logits)
    return student_logits, teacher_logits
