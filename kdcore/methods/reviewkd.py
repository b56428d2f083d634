"""ReviewKD: Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021.

The student's stages and its pooled embedding are fused from the deepest level down by attention-based fusion
modules (ABF: a 1×1 conv, then a 1×1-conv attention that mixes it with the level below's residual, then a 3×3
conv to the teacher's width) and each fused map is matched to the teacher's pre-ReLU map of the same level (its
pooled embedding at the deepest) by the hierarchical context loss: the MSE, plus the MSEs of both average-pooled to
4×4, 2×2 and 1×1 where smaller than the map, with weights halving. The term is warmed up linearly over the first
epochs. As mdistiller's ReviewKD.py; defaults its cfg's (CE 1, weight 1, warm-up 20; its CIFAR-100 configs use
weight 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, TapChoice
from kdcore.methods.dkd import dkd_warmup  # the same min(epoch / warmup, 1), on the device
from kdcore.methods.preact import paired_from_the_end, pre_activation_stages, stage_names

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the web process reads this file and never imports torch.

EMBEDDING = "embedding"


def hcl_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ over paired maps of (MSE + Σ_l w_l·MSE of both pooled to l×l) / (1 + Σ_l w_l), for l in 4, 2, 1 below
    the map's height, w halving from ½."""
    import torch.nn.functional as F

    total = None
    for fs, ft in zip(student_maps, teacher_maps):
        height = fs.shape[2]
        loss, weight, weights = F.mse_loss(fs, ft), 1.0, 1.0
        for level in (4, 2, 1):
            if level >= height:
                continue
            weight /= 2
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(fs, level), F.adaptive_avg_pool2d(ft, level)) * weight
            weights += weight
        total = loss / weights if total is None else total + loss / weights
    return total


class ReviewKDParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1000, description="Weight of the hierarchical context loss (mdistiller's "
                          "cfg: 1; its CIFAR-100 configs: 5)")
    warmup: int = Field(20, ge=1, le=10000, description="Epochs over which the term's weight rises "
                               "linearly to its full value (epoch / warmup)")
    max_mid_channels: int = Field(512, ge=1, le=4096, description="Most channels of the fusion modules' middle "
                                  "width (the student's embedding width, capped here)")


def taps(student, teacher, params) -> TapChoice:
    """The student's stage outputs and the teacher's pre-ReLU stage maps, paired from the deepest, and both
    embeddings (the deepest level, as 1×1 maps)."""
    s, t = paired_from_the_end(stage_names(student), pre_activation_stages(teacher))
    return TapChoice(student=(*s, EMBEDDING), teacher=(*t, EMBEDDING))


def modules(student, teacher, params: ReviewKDParams):
    from torch import nn

    chosen = taps(student, teacher, params)
    in_channels = [student[name][0] for name in chosen.student]
    out_channels = [teacher[name][0] for name in chosen.teacher]
    middle = min(params.max_mid_channels, in_channels[-1])
    fusions = []
    for index, (inputs, outputs) in enumerate(zip(in_channels, out_channels)):
        abf = nn.ModuleDict({
            "conv1": nn.Sequential(nn.Conv2d(inputs, middle, 1, bias=False), nn.BatchNorm2d(middle)),
            "conv2": nn.Sequential(nn.Conv2d(middle, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs)),
        })
        if index < len(in_channels) - 1:  # every level but the deepest fuses the residual from below
            abf["attention"] = nn.Sequential(nn.Conv2d(middle * 2, 2, 1), nn.Sigmoid())
        nn.init.kaiming_uniform_(abf["conv1"][0].weight, a=1)
        nn.init.kaiming_uniform_(abf["conv2"][0].weight, a=1)
        fusions.append(abf)
    # The deepest level first, as they run.
    return nn.ModuleDict({"fusions": nn.ModuleList(fusions[::-1])})


def fuse(abf, x, residual, size: tuple[int, int], out_size: tuple[int, int]):
    """One ABF: (its output at the teacher's size, the residual handed to the next shallower level)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    x = abf["conv1"](x)
    if "attention" in abf:
        residual = F.interpolate(residual, size, mode="nearest")
        z = abf["attention"](torch.cat([x, residual], dim=1))
        x = x * z[:, 0].view(n, 1, h, w) + residual * z[:, 1].view(n, 1, h, w)
    if tuple(x.shape[2:]) != tuple(out_size):
        x = F.interpolate(x, out_size, mode="nearest")
    return abf["conv2"](x), x


def review(fusions, student_maps: list, teacher_sizes: list) -> list:
    """The fused student maps, shallowest first, each at its teacher level's size."""
    levels = [m if m.dim() == 4 else m[:, :, None, None] for m in student_maps][::-1]
    sizes = teacher_sizes[::-1]
    out, residual = fuse(fusions[0], levels[0], None, tuple(levels[0].shape[2:]), sizes[0])
    results = [out]
    for abf, x, out_size in zip(fusions[1:], levels[1:], sizes[1:]):
        out, residual = fuse(abf, x, residual, tuple(x.shape[2:]), out_size)
        results.insert(0, out)
    return results


def loss(student, teacher, labels, params: ReviewKDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    teacher_maps = [m if m.dim() == 4 else m[:, :, None, None] for m in teacher.taps.values()]
    fused = review(modules["fusions"], list(student.taps.values()), [tuple(m.shape[2:]) for m in teacher_maps])
    term = hcl_loss(fused, teacher_maps)
    return params.ce_weight * ce + params.weight * dkd_warmup(progress.epoch, params.warmup) * term, {"ce": ce, "reviewkd": term}


METHOD = Method(
    name="reviewkd", title="Knowledge review (ReviewKD)",
    description="CE plus a hierarchical context loss between the student's stages, fused deepest first by "
    "attention, and the teacher's (Chen et al. 2021).",
    loss=loss, params=ReviewKDParams, loss_terms=("ce", "reviewkd"), needs_teacher=True, default_epochs=10,
    taps=taps, modules=modules,
)
