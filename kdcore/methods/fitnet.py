"""FitNets hint: a 3×3 conv regressor maps the student's last feature map onto the teacher's channels,
compared by MSE (the tutorial: Conv(16→32) from 16×8×8 to 32×8×8). Where the two maps differ in size, the
larger is average-pooled to the smaller. The regressor belongs to the method: it trains with the
student and is saved in its checkpoint, but is not part of the deployed student."""

from kdcore.methods.base import Method, TapChoice, TutorialWeights
from kdcore.methods.cosine import _last_stage


class FitNetParams(TutorialWeights):
    pass


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last_stage(student),), teacher=(_last_stage(teacher),))


def modules(student, teacher, params):
    from torch import nn  # here, not above: the torch-free web process reads this file

    s_channels, t_channels = student[_last_stage(student)][0], teacher[_last_stage(teacher)][0]
    return nn.ModuleDict({"regressor": nn.Conv2d(s_channels, t_channels, kernel_size=3, padding=1)})


def loss(student, teacher, labels, params: FitNetParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    regressed = modules["regressor"](student_map)
    size = (min(regressed.shape[2], teacher_map.shape[2]), min(regressed.shape[3], teacher_map.shape[3]))
    if tuple(regressed.shape[2:]) != size:
        regressed = F.adaptive_avg_pool2d(regressed, size)
    if tuple(teacher_map.shape[2:]) != size:
        teacher_map = F.adaptive_avg_pool2d(teacher_map, size)
    hint = F.mse_loss(regressed, teacher_map)
    return params.ce_weight * ce + params.distill_weight * hint, {"ce": ce, "hint": hint}


METHOD = Method(
    name="fitnet", title="FitNets regressor",
    description="CE plus MSE between a conv regressor on the student's last feature map and the teacher's.",
    loss=loss, params=FitNetParams, loss_terms=("ce", "hint"), needs_teacher=True, default_epochs=10,
    taps=taps, modules=modules,
)
