"""A method that reuses part of the teacher and ships it with the student (the contract's ``teacher_parts`` and
``deployed``): a 1×1 conv maps the student's last feature map onto the teacher's channels, and the teacher's own
head (``after_last_stage()``: pooling and classifier) predicts from it; the loss is that prediction's CE."""

import functools

from kdcore.methods.base import Method, NoHyperparameters, TapChoice


def _last_stage(shapes):
    return [name for name in shapes if name.startswith("stage")][-1]


def taps(student, teacher, params):
    return TapChoice(student=(_last_stage(student),))


def modules(student, teacher, params):
    from torch import nn  # inside: the web process reads this file and never imports torch

    s, t = student[_last_stage(student)], teacher[_last_stage(teacher)]
    align = nn.AdaptiveAvgPool2d(tuple(t[1:])) if s[1:] != t[1:] else nn.Identity()
    return nn.ModuleDict({"projector": nn.Sequential(align, nn.Conv2d(s[0], t[0], 1))})


def teacher_parts(teacher, student_shapes, teacher_shapes, params):
    # Copied and frozen by the engine, saved in the run's checkpoint with the projector.
    return {"head": teacher.after_last_stage()}


def loss(student, teacher, labels, params, progress, modules):
    import torch.nn.functional as F

    (student_map,) = student.taps.values()
    ce = F.cross_entropy(modules["head"](modules["projector"](student_map)), labels)
    return ce, {"ce": ce}


@functools.cache
def _shipped():
    from torch import nn

    class Shipped(nn.Module):
        """The student's network, the projector and the teacher's head: what evaluation runs and the deployed
        parameter count counts (the student's own classifier, unused, is counted too: a small example)."""

        def __init__(self, student, projector, head):
            super().__init__()
            self.student, self.projector, self.head = student, projector, head

        def forward(self, images):
            _, taps = self.student(images)
            return self.head(self.projector(taps[_last_stage(taps)])), taps

    return Shipped


def deployed(model, modules):
    return _shipped()(model, modules["projector"], modules["head"])


METHOD = Method(name="reused_head", title="Reused teacher head",
                description="The teacher's head predicts from the student's projected last map.",
                loss=loss, params=NoHyperparameters, loss_terms=("ce",), needs_teacher=True, taps=taps,
                modules=modules, teacher_parts=teacher_parts, deployed=deployed)
