"""Training on the labels alone: the teacher, and the baseline student it is compared with."""

from kdcore.methods.base import Method


def loss(student, teacher, labels, params, progress, modules):
    import torch.nn.functional as F  # here, not above: the torch-free web process reads this file

    ce = F.cross_entropy(student.logits, labels)
    return ce, {"ce": ce}


METHODS = (
    Method(name="teacher", title="Teacher", description="The teacher network trained with cross-entropy alone.",
           loss=loss, teaches=True, default_architecture="tutorial_teacher", default_epochs=20),
    Method(name="student", title="Student (baseline)",
           description="The student network trained with cross-entropy alone, no teacher.",
           loss=loss, baseline=True, default_architecture="tutorial_student", default_epochs=20),
)
