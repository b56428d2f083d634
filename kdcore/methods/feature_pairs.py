"""Feature maps paired across student and teacher: which stages meet, and at which spatial size.

Shared by the methods that compare every stage (NST, KDSVD, VID), as mdistiller's do with
``feats[1:]``. Importable without torch: the web process reads the tap choices.
"""

from __future__ import annotations

from kdcore.methods.base import TapChoice


def stage_names(shapes) -> list[str]:
    return [name for name in shapes if name.startswith("stage")]


def every_stage(student, teacher, params) -> TapChoice:
    """All stages of each network, paired in order; a network with more stages gives its last ones
    (a vgg8's five against a ResNet's three pair vgg's stages 3-5 with the ResNet's 1-3)."""
    s, t = stage_names(student), stage_names(teacher)
    count = min(len(s), len(t))
    return TapChoice(student=tuple(s[len(s) - count:]), teacher=tuple(t[len(t) - count:]))


def pooled_to_smaller(student_map, teacher_map):
    """The pair with the larger map average-pooled (adaptively, height and width each) to the smaller
    size, whichever side it is on; maps of one size are returned as they are."""
    import torch.nn.functional as F

    size = (min(student_map.shape[2], teacher_map.shape[2]), min(student_map.shape[3], teacher_map.shape[3]))
    if tuple(student_map.shape[2:]) != size:
        student_map = F.adaptive_avg_pool2d(student_map, size)
    if tuple(teacher_map.shape[2:]) != size:
        teacher_map = F.adaptive_avg_pool2d(teacher_map, size)
    return student_map, teacher_map
