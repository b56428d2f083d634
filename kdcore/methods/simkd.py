"""SimKD: Chen, Mei, Wang, Feng and Chen, "Knowledge Distillation with the Reused Teacher Classifier", CVPR 2022.

The student's last feature map goes through a projector (the authors' bottleneck: 1×1 conv to C_t/factor, 3×3
conv, 1×1 conv to the teacher's C_t, each with BN and ReLU) and is matched to the teacher's last feature map by
MSE; the teacher's own head (what follows its last stage: pooling and classifier) is reused, frozen, to predict.
The deployed student is therefore the student's trunk, the projector and the teacher's head: evaluation runs that,
and the run's parameter count counts it (Method.deployed). Where the two maps differ in size, the larger is
average-pooled to the smaller, as in the authors' code; the student's is pooled inside the projector, so the
deployed student does it too.

Defaults are the authors' CIFAR-100 command (``-c 0 -d 0 -b 1``, factor 2): the feature MSE alone. ``ce`` is the
cross-entropy of the deployed prediction, reported always and added with ``ce_weight``.
"""

from __future__ import annotations

import functools

from pydantic import Field

from kdcore.errors import ConfigError
from kdcore.methods.base import Method, TapChoice, TutorialWeights
from kdcore.methods.cosine import _last_stage

# torch is imported inside the functions: the web process reads this file and never imports torch.


class SimKDParams(TutorialWeights):
    ce_weight: float = Field(0.0, ge=0, le=1000, description="Weight of the cross-entropy of the deployed "
                             "prediction (through the projector and the teacher's head); the authors use 0")
    distill_weight: float = Field(1.0, ge=0, le=1000, description="Weight of the MSE between the projected "
                                  "student map and the teacher's last map")
    factor: int = Field(2, ge=1, le=64, description="Bottleneck factor of the projector: its middle width is the "
                        "teacher's channels / factor")


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last_stage(student),), teacher=(_last_stage(teacher),))


def modules(student, teacher, params: SimKDParams):
    from torch import nn

    (s_channels, *s_size), (t_channels, *t_size) = student[_last_stage(student)], teacher[_last_stage(teacher)]
    middle = max(1, t_channels // params.factor)
    size = tuple(min(s, t) for s, t in zip(s_size, t_size))

    def conv_bn_relu(inputs: int, outputs: int, kernel: int) -> list:
        return [nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(outputs),
                nn.ReLU(inplace=True)]

    # A student map larger than the teacher's is pooled to its size first (the authors' spatial alignment).
    align = nn.AdaptiveAvgPool2d(size) if tuple(s_size) != size else nn.Identity()
    projector = nn.Sequential(align, *conv_bn_relu(s_channels, middle, 1), *conv_bn_relu(middle, middle, 3),
                              *conv_bn_relu(middle, t_channels, 1))
    return nn.ModuleDict({"projector": projector})


def teacher_parts(teacher, student_shapes, teacher_shapes, params) -> dict:
    head = getattr(teacher, "after_last_stage", None)
    if head is None:
        raise ConfigError(f"simkd reuses the teacher's head, and architecture {teacher.architecture!r} does not "
                          "say which modules follow its last stage (after_last_stage)")
    return {"head": head()}


def simkd_loss(projected, teacher_map):
    """MSE between the projected student map and the teacher's, the teacher's pooled to the projected size
    where it is larger (the authors' alignment; the student's was pooled inside the projector)."""
    import torch.nn.functional as F

    if tuple(teacher_map.shape[2:]) != tuple(projected.shape[2:]):
        teacher_map = F.adaptive_avg_pool2d(teacher_map, projected.shape[2:])
    return F.mse_loss(projected, teacher_map)


def loss(student, teacher, labels, params: SimKDParams, progress, modules):
    import torch.nn.functional as F

    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    projected = modules["projector"](student_map)
    feature = simkd_loss(projected, teacher_map)
    ce = F.cross_entropy(modules["head"](projected), labels)
    return params.ce_weight * ce + params.distill_weight * feature, {"ce": ce, "simkd": feature}


@functools.cache
def _shipped_class():
    from torch import nn

    class SimKDStudent(nn.Module):
        """The student as SimKD ships it: its trunk up to its last stage, the projector, the teacher's head.
        The student's own head is not part of it (nor of its parameters), though its forward still runs."""

        def __init__(self, student: nn.Module, projector: nn.Module, head: nn.Module):
            super().__init__()
            unused = {id(m) for m in student.after_last_stage().modules()}
            self.trunk = nn.ModuleList([child for child in student.children() if id(child) not in unused])
            object.__setattr__(self, "student", student)  # not a submodule: its head is not shipped
            self.projector, self.head = projector, head

        def train(self, mode: bool = True):
            self.student.train(mode)
            return super().train(mode)

        def forward(self, images):
            _, taps = self.student(images)
            return self.head(self.projector(taps[_last_stage(taps)])), taps

    return SimKDStudent


def deployed(model, modules):
    return _shipped_class()(model, modules["projector"], modules["head"])


METHOD = Method(
    name="simkd", title="SimKD (reused teacher classifier)",
    description="A projector maps the student's last feature map onto the teacher's (MSE), and the teacher's "
    "classifier, reused, predicts from it (Chen et al. 2022).",
    loss=loss, params=SimKDParams, loss_terms=("ce", "simkd"), needs_teacher=True, default_epochs=10,
    taps=taps, modules=modules, teacher_parts=teacher_parts, deployed=deployed,
)
