"""FSP: the flow of solution procedure (Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation: Fast
Optimization, Network Minimization and Transfer Learning", CVPR 2017), as RepDistiller's FSP.

A pre-stage ("init") trains the student's feature layers to match the teacher's FSP matrices, the
Gram matrices between consecutive stages' maps; the main stage is then plain cross-entropy from those
weights (RepDistiller's main stage adds nothing for FSP). The FSP matrices of a pair of stages compare
only where student and teacher have equal channel counts, which RepDistiller requires; here a pair of
unequal widths gets a 1×1 conv adapter per student stage, trained in the pre-stage with the student and
not deployed with it (equal widths use none, as the reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from kdcore.methods.base import Method, Stage, TapChoice
from kdcore.methods.init_stage import InitStageParams, pooled_to_smaller
from kdcore.methods.supervised import loss as cross_entropy

if TYPE_CHECKING:  # annotations only: the torch-free web process reads this file
    import torch


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """(B, C_top, C_bottom): the spatial mean of the products of every top channel with every bottom channel,
    after average-pooling the larger of the two maps to the smaller's size."""
    import torch

    bottom, top = pooled_to_smaller(bottom, top)
    return torch.einsum("bthw,bchw->btc", top, bottom) / (top.shape[2] * top.shape[3])


def fsp_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ over consecutive pairs of stages of mean((FSP_s − FSP_t)²); the maps are ordered from the input on."""
    if len(student_maps) != len(teacher_maps) or len(student_maps) < 2:
        raise ValueError(f"fsp_loss needs two or more paired stages, got {len(student_maps)} and {len(teacher_maps)}")
    total = None
    for i in range(len(student_maps) - 1):
        s = fsp_matrix(student_maps[i], student_maps[i + 1])
        t = fsp_matrix(teacher_maps[i], teacher_maps[i + 1])
        term = (s - t).pow(2).mean()
        total = term if total is None else total + term
    return total


class FSPParams(InitStageParams):
    pass


def paired_stages(student, teacher, params=None) -> TapChoice:
    """Every stage, from the input on; networks with different numbers of stages pair their last ones."""
    s = [name for name in student if name.startswith("stage")]
    t = [name for name in (teacher or {}) if name.startswith("stage")]
    count = min(len(s), len(t))
    return TapChoice(student=tuple(s[len(s) - count :]), teacher=tuple(t[len(t) - count :]))


def modules(student, teacher, params):
    from torch import nn

    pairs = paired_stages(student, teacher)
    adapters = {s: nn.Conv2d(student[s][0], teacher[t][0], kernel_size=1)
                for s, t in zip(pairs.student, pairs.teacher) if student[s][0] != teacher[t][0]}
    return nn.ModuleDict({"adapters": nn.ModuleDict(adapters)})


def init_loss(student, teacher, labels, params: FSPParams, progress, modules):
    adapters = modules["adapters"]
    maps = [adapters[name](f) if name in adapters else f for name, f in student.taps.items()]
    term = fsp_loss(maps, list(teacher.taps.values()))
    return term, {"fsp": term}


METHOD = Method(
    name="fsp", title="Flow of solution procedure (FSP)",
    description="An init stage matches the teacher's FSP matrices between consecutive stages, then CE "
    "(Yim et al. 2017).",
    loss=cross_entropy, params=FSPParams, loss_terms=("ce",), needs_teacher=True, default_epochs=10, modules=modules,
    pre_stage=Stage(name="init", loss=init_loss, loss_terms=("fsp",), taps=paired_stages, modules=("adapters",),
                    trains_student=True),
)
