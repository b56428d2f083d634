"""OFD: Heo, Kim, Yun, Park, Kwak and Choi, "A Comprehensive Overhaul of Feature Distillation", ICCV 2019.

Each student stage's pre-ReLU map goes through a connector (1×1 conv + BN) to the teacher's channels and is
compared with the teacher's pre-ReLU map by a partial L2: below the teacher's margin the student only has to stay
below it too. The margin is the expectation of the teacher's negative responses, per channel, from the batch norm
before its ReLU (its weight as the std, its bias as the mean: mdistiller's OFD.py); for a teacher stage with no
such batch norm (the tutorial CNNs, wide ResNets) it comes from the batch's own per-channel mean and std. Deeper
stages weigh more: stage i of n counts 1/2^(n−i). Defaults: mdistiller's cfg (CE 1, feature weight 0.001).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice
from kdcore.methods.preact import paired_from_the_end, pre_activation_stages

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the web process reads this file and never imports torch.


def margin(std: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Per channel, E[x | x < 0] for x ~ N(mean, |std|²): −s·φ(m/s)/Φ(−m/s) + m, or −3s where Φ(−m/s) ≤ 0.001
    (almost no negative responses)."""
    import torch

    s = std.abs()
    ratio = mean / s
    below = torch.special.ndtr(-ratio)
    expected = -s * torch.exp(-ratio.pow(2) / 2) / math.sqrt(2 * math.pi) / below + mean
    return torch.where(below > 0.001, expected, -3 * s)


def partial_l2(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """mdistiller's feat_loss: (s − margin)² where the student exceeds a teacher below its margin, (s − t)² where
    the student exceeds a teacher between its margin and 0, (s − t)² wherever the teacher is positive; the batch
    mean, summed over channels and positions. ``margin`` broadcasts against the maps ((1, C, 1, 1))."""
    margin = margin.to(source)
    loss = ((source - margin).pow(2) * ((source > margin) & (target <= margin))
            + (source - target).pow(2) * ((source > target) & (target > margin) & (target <= 0))
            + (source - target).pow(2) * (target > 0))
    return loss.abs().mean(dim=0).sum()


def ofd_loss(student_maps, teacher_maps, margins) -> torch.Tensor:
    """Σ over stage pairs i of n: partial_l2(s_i, t_i pooled to s_i's size, margin_i) / 2^(n−1−i); the student
    maps have been through their connectors."""
    import torch.nn.functional as F

    total, count = None, len(student_maps)
    for i, (s, t, m) in enumerate(zip(student_maps, teacher_maps, margins)):
        if tuple(t.shape[2:]) != tuple(s.shape[2:]):
            t = F.adaptive_avg_pool2d(t, s.shape[2:])
        term = partial_l2(s, t.detach(), m) / 2 ** (count - i - 1)
        total = term if total is None else total + term
    return total


class OFDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(0.001, ge=0, le=1000, description="Weight of the partial L2 between the connected "
                          "student maps and the teacher's pre-ReLU maps")


def taps(student, teacher, params) -> TapChoice:
    s, t = paired_from_the_end(pre_activation_stages(student), pre_activation_stages(teacher))
    return TapChoice(student=s, teacher=t)


def modules(student, teacher, params):
    from torch import nn

    def connector(s_channels: int, t_channels: int):
        conv, bn = nn.Conv2d(s_channels, t_channels, 1, bias=False), nn.BatchNorm2d(t_channels)
        nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / t_channels))  # mdistiller: n = k·k·out
        return nn.Sequential(conv, bn)

    chosen = taps(student, teacher, params)
    return nn.ModuleDict({"connectors": nn.ModuleList(
        [connector(student[s][0], teacher[t][0]) for s, t in zip(chosen.student, chosen.teacher)])})


def teacher_parts(teacher, student_shapes, teacher_shapes, params) -> dict:
    """The margins, one buffer per teacher tap; an empty one where no batch norm precedes its ReLU, whose
    margin comes from the batch."""
    import torch
    from torch import nn

    norms = teacher.pre_activation_norms() if hasattr(teacher, "pre_activation_norms") else {}
    holder = nn.Module()
    for index, name in enumerate(taps(student_shapes, teacher_shapes, params).teacher):
        bn = norms.get(name)
        value = (margin(bn.weight.detach(), bn.bias.detach()).reshape(1, -1, 1, 1) if bn is not None
                 else torch.empty(0, device=next(teacher.parameters()).device))
        holder.register_buffer(f"margin{index}", value)
    return {"margins": holder}


def _margins(teacher_maps, holder) -> list:
    found = []
    for index, t in enumerate(teacher_maps):
        m = getattr(holder.part, f"margin{index}")
        if m.numel() == 0:  # no batch norm before this ReLU: the batch's own statistics
            m = margin(t.std(dim=(0, 2, 3)), t.mean(dim=(0, 2, 3))).reshape(1, -1, 1, 1).detach()
        found.append(m)
    return found


def loss(student, teacher, labels, params: OFDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    teacher_maps = list(teacher.taps.values())
    connected = [c(s) for c, s in zip(modules["connectors"], student.taps.values())]
    term = ofd_loss(connected, teacher_maps, _margins(teacher_maps, modules["margins"]))
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "ofd": term}


METHOD = Method(
    name="ofd", title="Overhaul of feature distillation (OFD)",
    description="CE plus a partial L2 between connected student maps and the teacher's pre-ReLU maps, below a "
    "margin from the teacher's batch norms (Heo et al. 2019).",
    loss=loss, params=OFDParams, loss_terms=("ce", "ofd"), needs_teacher=True, default_epochs=10,
    taps=taps, modules=modules, teacher_parts=teacher_parts,
)
