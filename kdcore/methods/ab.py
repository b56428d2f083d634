"""AB: activation boundaries (Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation
Boundaries Formed by Hidden Neurons", AAAI 2019), as RepDistiller's ABLoss and its init stage.

A pre-stage ("init") trains the student's feature layers and a connector per stage to put each of the
teacher's neurons on the same side of its activation boundary, with a margin; the main stage is then
plain cross-entropy from those weights (RepDistiller's main stage adds nothing for AB). The teacher's
side is read from its stage outputs after their ReLU: a neuron is active (> 0) there exactly where its
pre-activation is, which is all the loss asks of the teacher. The student's connector (1×1 conv and batch
norm to the teacher's channels; none where channels and size already agree, as the reference) reads the
student's stage outputs, which RepDistiller takes before the ReLU; where sizes differ, the larger map is
average-pooled to the smaller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from pydantic import Field

from kdcore.methods.base import Method, Stage
from kdcore.methods.fsp import paired_stages
from kdcore.methods.init_stage import InitStageParams, pooled_to_smaller
from kdcore.methods.supervised import loss as cross_entropy

if TYPE_CHECKING:  # annotations only: the torch-free web process reads this file
    import torch


def activation_boundary_loss(source: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Σ of the alternative L2 loss: (s + m)² where the teacher is inactive (t ≤ 0) and s > −m, (s − m)²
    where it is active (t > 0) and s ≤ m; zero elsewhere."""
    inactive = ((source > -margin) & (target <= 0)).to(source.dtype)
    active = ((source <= margin) & (target > 0)).to(source.dtype)
    return ((source + margin).pow(2) * inactive + (source - margin).pow(2) * active).sum()


def ab_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor],
            margin: float = 1.0) -> torch.Tensor:
    """RepDistiller's ABLoss summed over stages: stage i of n weighs 2^(i − n + 1) (the last 1, each earlier
    one half the next), each divided by the batch size and scaled by 3/1000."""
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError(f"ab_loss needs paired stages, got {len(student_maps)} and {len(teacher_maps)}")
    n, batch = len(student_maps), student_maps[0].shape[0]
    total = None
    for i, (s, t) in enumerate(zip(student_maps, teacher_maps)):
        term = 2.0 ** (i - n + 1) * activation_boundary_loss(s, t, margin) / batch / 1000 * 3
        total = term if total is None else total + term
    return total


class ABParams(InitStageParams):
    margin: float = Field(1.0, gt=0, le=100, description="Margin m of the activation boundary")


def modules(student, teacher, params):
    from torch import nn

    pairs = paired_stages(student, teacher)
    connectors = {s: nn.Sequential(nn.Conv2d(student[s][0], teacher[t][0], kernel_size=1, bias=False),
                                   nn.BatchNorm2d(teacher[t][0]))
                  for s, t in zip(pairs.student, pairs.teacher) if student[s] != teacher[t]}
    return nn.ModuleDict({"connectors": nn.ModuleDict(connectors)})


def init_loss(student, teacher, labels, params: ABParams, progress, modules):
    connectors = modules["connectors"]
    sources, targets = [], []
    for (name, s), t in zip(student.taps.items(), teacher.taps.values()):
        s, t = pooled_to_smaller(connectors[name](s) if name in connectors else s, t)
        sources.append(s)
        targets.append(t)
    term = ab_loss(sources, targets, params.margin)
    return term, {"ab": term}


METHOD = Method(
    name="ab", title="Activation boundaries (AB)",
    description="An init stage puts the student's neurons on the teacher's side of each activation boundary, "
    "then CE (Heo et al. 2019).",
    loss=cross_entropy, params=ABParams, loss_terms=("ce",), needs_teacher=True, default_epochs=10, modules=modules,
    pre_stage=Stage(name="init", loss=init_loss, loss_terms=("ab",), taps=paired_stages, modules=("connectors",),
                    trains_student=True),
)
