"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): match the L2-normalised spatial
attention maps mean_c(f^p) of paired student and teacher stages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def attention_map(feature: torch.Tensor, p: float) -> torch.Tensor:
    """L2-normalise(flatten(mean over channels of f^p)): (N, C, H, W) → (N, H·W)."""
    import torch.nn.functional as F

    return F.normalize(feature.pow(p).mean(1).flatten(1), dim=1)


def at_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor], p: float) -> torch.Tensor:
    """Σ over paired stages of mean((a_s − a_t)²).

    Where a pair's spatial sizes differ, the larger feature map is average-pooled
    (adaptively) to the smaller size before its attention map is taken, as in mdistiller's
    AT (which pools the features, not the attention maps); height and width are pooled
    independently.
    """
    import torch.nn.functional as F

    if len(student_maps) != len(teacher_maps):
        raise ValueError(f"at_loss needs paired stages, got {len(student_maps)} and {len(teacher_maps)}")
    total = None
    for f_s, f_t in zip(student_maps, teacher_maps):
        size = (min(f_s.shape[2], f_t.shape[2]), min(f_s.shape[3], f_t.shape[3]))
        if tuple(f_s.shape[2:]) != size:
            f_s = F.adaptive_avg_pool2d(f_s, size)
        if tuple(f_t.shape[2:]) != size:
            f_t = F.adaptive_avg_pool2d(f_t, size)
        term = (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("at_loss needs at least one pair of feature maps")
    return total


class ATParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1000.0, ge=0, le=1e6, description="Weight of the attention-transfer term")
    p: float = Field(2.0, gt=0, le=16, description="Exponent p of the attention map mean_c |f|^p")


def _stages(shapes) -> list[str]:
    return [name for name in shapes if name.startswith("stage")]


def taps(student, teacher, params) -> TapChoice:
    """Every stage after the first; networks with different numbers of stages pair their last ones."""
    s, t = _stages(student)[1:], _stages(teacher)[1:]
    count = min(len(s), len(t))
    return TapChoice(student=tuple(s[len(s) - count :]), teacher=tuple(t[len(t) - count :]))


def loss(student, teacher, labels, params: ATParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = at_loss(list(student.taps.values()), list(teacher.taps.values()), params.p)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "at": term}


METHOD = Method(
    name="at", title="Attention transfer (AT)",
    description="CE plus the distance between normalised spatial attention maps of paired stages "
    "(Zagoruyko & Komodakis 2017).",
    loss=loss, params=ATParams, loss_terms=("ce", "at"), needs_teacher=True, default_epochs=10, taps=taps,
)
