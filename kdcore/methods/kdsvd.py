"""Self-supervised knowledge distillation using singular value decomposition (Lee, Kim & Song,
"Self-supervised Knowledge Distillation Using Singular Value Decomposition", ECCV 2018), as mdistiller's
``KDSVD``: each stage's map is summarised by its leading right singular vectors, scaled by the teacher's
normalised singular values, and the student matches the teacher's RBF correlations between the vectors
of consecutive stages. mdistiller views each map as a (C·H)×W matrix, which needs equal widths of the
two maps; RepDistiller's (H·W)×C view would need equal channel counts, which few pairs have.

On CUDA, torch's SVD reads its solver's status back to the host after every call (torch's
``_linalg_check_errors``), so this method's steps synchronise: it says so (``host_sync``), and its steps
run eagerly rather than as a CUDA graph."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Sequence

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method
from kdcore.methods.feature_pairs import every_stage, pooled_to_smaller

if TYPE_CHECKING:  # annotations only
    import torch

# torch is imported inside the functions: the web process imports this module (for the
# method's declaration) and must never import torch.


def _finite(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


@cache
def _finite_gradient():
    """An identity whose backward zeroes non-finite gradient entries. SVD's backward divides by the gaps
    between singular values, so a map with repeated ones (a dead stage: all zero) gets NaN gradients,
    which would poison every weight; the references zero non-finite values, this zeroes the gradients
    too, and leaves finite ones as they are. A class built on first use: this module imports no torch."""
    import torch

    class FiniteGradient(torch.autograd.Function):
        generate_vmap_rule = True  # packed runs call it under torch.func.vmap

        @staticmethod
        def forward(x):
            return x.clone()

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            return _finite(grad)

    return FiniteGradient.apply


def leading_singular(feature_map: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` leading singular values (B, n) and right singular vectors (B, W, n) of each sample's
    map viewed as a (C·H)×W matrix (mdistiller's view), each L2-normalised, non-finite entries zeroed.
    Half-precision maps are decomposed in float32, which the solvers need; non-finite gradients of the
    map are zeroed (``_finite_gradient``)."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = feature_map.shape
    x = feature_map.reshape(b, c * h, w)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.requires_grad:
        x = _finite_gradient()(x)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    s, v = _finite(s), _finite(vh.transpose(-2, -1))
    return F.normalize(s[:, :n], dim=1), F.normalize(v[:, :, :n], dim=1)


def align_to_teacher(student_vectors: torch.Tensor, teacher_vectors: torch.Tensor) -> torch.Tensor:
    """For each teacher vector, the student vector most collinear with it, its sign flipped to agree
    (singular vectors have no sign of their own): (B, W, n_s) → (B, W, n_t)."""
    import torch

    cosine = student_vectors.transpose(-2, -1) @ teacher_vectors
    best = cosine.abs().amax(dim=1, keepdim=True)
    chosen = torch.where(cosine.abs() == best, torch.sign(cosine), torch.zeros_like(cosine))
    return student_vectors @ chosen


def kdsvd_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor], k: int = 1) -> torch.Tensor:
    """Σ over consecutive stage pairs of Σ (rbf_s − rbf_t)² / B, rbf(v, v') = exp(−(v_a − v'_b)²/8) over
    all entries a of one stage's scaled vectors and b of the previous stage's. The teacher keeps ``k``
    vectors, the student ``k + 3`` before alignment. Where a pair's maps differ in size, the larger is
    average-pooled to the smaller first (mdistiller's KDSVD needs equal widths); non-finite squared
    differences count as zero, as there."""
    import torch

    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError(f"kdsvd_loss needs paired stages, got {len(student_maps)} and {len(teacher_maps)}")
    total = None
    previous = None
    for f_s, f_t in zip(student_maps, teacher_maps):
        f_s, f_t = pooled_to_smaller(f_s, f_t)
        s_t, v_t = leading_singular(f_t, k)
        _, v_s = leading_singular(f_s, k + 3)
        weights = s_t.unsqueeze(1)
        v_s, v_t = align_to_teacher(v_s, v_t) * weights, v_t * weights
        if previous is not None:
            v_s_before, v_t_before = previous
            rbf_s = torch.exp(-(v_s.unsqueeze(2) - v_s_before.unsqueeze(1)).pow(2) / 8)
            rbf_t = torch.exp(-(v_t.unsqueeze(2) - v_t_before.unsqueeze(1)).pow(2) / 8)
            term = _finite((rbf_s - rbf_t.detach()).pow(2)).sum()
            total = term if total is None else total + term
        previous = v_s, v_t
    if total is None:  # a single stage has no neighbour to relate to
        return student_maps[0].sum() * 0
    return total / student_maps[0].shape[0]


class KDSVDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1e6, description="Weight of the KDSVD term")
    k: int = Field(1, ge=1, le=32, description="Singular vectors kept per stage on the teacher's side "
                   "(the student keeps k + 3)")


def loss(student, teacher, labels, params: KDSVDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    term = kdsvd_loss(list(student.taps.values()), list(teacher.taps.values()), params.k)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "kdsvd": term}


METHOD = Method(
    name="kdsvd", title="KD by singular value decomposition (KDSVD)",
    description="CE plus the RBF correlations between consecutive stages' leading singular vectors "
    "(Lee et al. 2018).",
    loss=loss, params=KDSVDParams, loss_terms=("ce", "kdsvd"), needs_teacher=True, default_epochs=10,
    taps=every_stage,
    host_sync="torch's SVD reads its solver's status back to the host after every decomposition",
)
