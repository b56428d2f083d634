"""A method with a pre-stage: a 1×1 conv projector of the student's last feature map onto the teacher's is
first trained alone (the "warmup" stage, the student frozen), so that the hint it then gives the student
from the first main step on is a fitted projection rather than a random one; then CE plus that hint."""

from pydantic import Field

from kdcore.methods.base import Hyperparameters, Method, Stage, TapChoice


class WarmProjectorParams(Hyperparameters):
    ce_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the cross-entropy term")
    weight: float = Field(1.0, ge=0, le=1000, description="Weight of the projected hint term")
    projector_epochs: int = Field(1, ge=0, le=100, description="Epochs of the warmup stage that fits the projector")
    projector_lr: float = Field(0.05, gt=0, le=10, description="SGD learning rate of the warmup stage")


def _last(shapes):
    return [name for name in shapes if name.startswith("stage")][-1]


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last(student),), teacher=(_last(teacher),))


def modules(student, teacher, params):
    from torch import nn  # inside: the web process reads this file without torch

    return nn.ModuleDict({"projector": nn.Conv2d(student[_last(student)][0], teacher[_last(teacher)][0], 1)})


def _hint(student, teacher, modules):
    import torch.nn.functional as F

    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    projected = modules["projector"](student_map)
    size = min(projected.shape[-1], teacher_map.shape[-1])
    return F.mse_loss(F.adaptive_avg_pool2d(projected, size), F.adaptive_avg_pool2d(teacher_map, size))


def warmup_loss(student, teacher, labels, params, progress, modules):
    hint = _hint(student, teacher, modules)
    return hint, {"hint": hint}


def loss(student, teacher, labels, params: WarmProjectorParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    hint = _hint(student, teacher, modules)
    return params.ce_weight * ce + params.weight * hint, {"ce": ce, "hint": hint}


METHOD = Method(
    name="warm_projector", title="Warm projector hint",
    description="A warmup stage fits a 1×1 projector onto the teacher's last map; then CE plus its hint.",
    loss=loss, params=WarmProjectorParams, loss_terms=("ce", "hint"), needs_teacher=True, taps=taps,
    modules=modules,
    # Trains the projector alone (the student is frozen in it), by SGD for projector_epochs at projector_lr.
    pre_stage=Stage(name="warmup", loss=warmup_loss, loss_terms=("hint",), modules=("projector",),
                    epochs_param="projector_epochs", lr_param="projector_lr"),
)
