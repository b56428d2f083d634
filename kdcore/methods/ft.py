"""FT: factor transfer (Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor
Transfer", NeurIPS 2018), as RepDistiller's FactorTransfer with its init stage.

A pre-stage ("init") trains a paraphraser, a convolutional autoencoder, to reconstruct the teacher's last
feature map (MSE); the main stage trains the student and a translator so that the translator's factor of
the student's map matches the frozen paraphraser's factor of the teacher's, by the L1 distance of the
normalised factors (``factor_loss``), beside cross-entropy. Paraphraser and translator belong to the
method: they are saved in the checkpoint and not deployed with the student.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Method, Stage, TapChoice
from kdcore.methods.cosine import _last_stage
from kdcore.methods.init_stage import InitStageParams, pooled_to_smaller

if TYPE_CHECKING:  # annotations only: the torch-free web process reads this file
    import torch


def factor(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """L2-normalise(flatten(mean over channels of f^p)): (N, C, H, W) → (N, H·W)."""
    import torch.nn.functional as F

    return F.normalize(feature.pow(p).mean(1).flatten(1), dim=1)


def factor_loss(student_factor: torch.Tensor, teacher_factor: torch.Tensor, p1: float = 2.0,
                p2: float = 1.0) -> torch.Tensor:
    """mean(|F(s) − F(t)|^p2) of the factors F (``factor`` with exponent p1), after average-pooling the
    larger map to the smaller's size; p2 = 1 is the L1 distance (RepDistiller's default)."""
    student_factor, teacher_factor = pooled_to_smaller(student_factor, teacher_factor)
    difference = factor(student_factor, p1) - factor(teacher_factor, p1)
    return difference.abs().mean() if p2 == 1 else difference.pow(p2).mean()


class FTParams(InitStageParams):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(200.0, ge=0, le=1e6, description="Weight of the factor-transfer term (RepDistiller: 200)")
    rate: float = Field(0.5, gt=0, le=4, description="Paraphrase rate k: the factor has k × the teacher's channels")
    init_lr: float = Field(0.01, gt=0, le=10, description="SGD learning rate of the init stage (momentum 0.9, "
                           "weight decay 5e-4), constant (RepDistiller: 0.01 for ResNets and WRNs)")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last_stage(student),), teacher=(_last_stage(teacher),))


def init_taps(student, teacher, params) -> TapChoice:
    return TapChoice(teacher=(_last_stage(teacher),))  # the paraphraser learns from the teacher alone


def _encoder(nn, channels: list[int], batch_norm: bool):
    layers = []
    for c_in, c_out in zip(channels, channels[1:]):
        # No bias before a batch norm, which subtracts it again (RepDistiller keeps one): its gradient is pure
        # rounding noise, which Adam would turn into steps of the full learning rate.
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm),
                   *([nn.BatchNorm2d(c_out)] if batch_norm else []), nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


def modules(student, teacher, params: FTParams):
    from torch import nn

    s_channels, t_channels = student[_last_stage(student)][0], teacher[_last_stage(teacher)][0]
    factor_channels = max(1, int(t_channels * params.rate))
    decoder = []
    for c_in, c_out in [(factor_channels, factor_channels), (factor_channels, t_channels), (t_channels, t_channels)]:
        decoder += [nn.ConvTranspose2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1)]
    return nn.ModuleDict({
        # RepDistiller's Paraphraser (no batch norm) and Translator (with it).
        "paraphraser": nn.ModuleDict({
            "encoder": _encoder(nn, [t_channels, t_channels, factor_channels, factor_channels], batch_norm=False),
            "decoder": nn.Sequential(*decoder)}),
        "translator": _encoder(nn, [s_channels, s_channels, factor_channels, factor_channels], batch_norm=True),
    })


def init_loss(student, teacher, labels, params: FTParams, progress, modules):
    import torch.nn.functional as F

    (teacher_map,) = teacher.taps.values()
    paraphraser = modules["paraphraser"]
    reconstruction = F.mse_loss(paraphraser["decoder"](paraphraser["encoder"](teacher_map)), teacher_map)
    return reconstruction, {"reconstruction": reconstruction}


def loss(student, teacher, labels, params: FTParams, progress, modules):
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    with torch.no_grad():  # the paraphraser was trained in the init stage and stays as it is
        teacher_factor = modules["paraphraser"]["encoder"](teacher_map)
    term = factor_loss(modules["translator"](student_map), teacher_factor)
    return params.ce_weight * ce + params.weight * term, {"ce": ce, "factor": term}


METHOD = Method(
    name="ft", title="Factor transfer (FT)",
    description="An init stage trains a paraphraser of the teacher's last map; then CE plus the L1 distance "
    "between the translated student's factor and the teacher's (Kim et al. 2018).",
    loss=loss, params=FTParams, loss_terms=("ce", "factor"), needs_teacher=True, default_epochs=10, taps=taps,
    modules=modules,
    pre_stage=Stage(name="init", loss=init_loss, loss_terms=("reconstruction",), taps=init_taps,
                    modules=("paraphraser",)),
)
