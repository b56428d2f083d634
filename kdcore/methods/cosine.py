"""Cosine loss between hidden representations: the student's flattened last feature map against the
teacher's, average-pooled to the student's width (the tutorial: 2048 pooled pairwise to 1024)."""

from kdcore.methods.base import Method, TapChoice, TutorialWeights


class CosineParams(TutorialWeights):
    pass


def _last_stage(shapes) -> str:
    return [name for name in shapes if name.startswith("stage")][-1]


def taps(student, teacher, params) -> TapChoice:
    return TapChoice(student=(_last_stage(student),), teacher=(_last_stage(teacher),))


def cosine_hidden_loss(student_map, teacher_map):
    import torch  # here, not above: the torch-free web process reads this file
    import torch.nn.functional as F

    student_flat = torch.flatten(student_map, 1)
    teacher_flat = F.adaptive_avg_pool1d(torch.flatten(teacher_map, 1).unsqueeze(1), student_flat.shape[1]).squeeze(1)
    target = torch.ones(student_flat.shape[0], device=student_flat.device)
    return F.cosine_embedding_loss(student_flat, teacher_flat, target)


def loss(student, teacher, labels, params: CosineParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    (student_map,), (teacher_map,) = student.taps.values(), teacher.taps.values()
    cos = cosine_hidden_loss(student_map, teacher_map)
    return params.ce_weight * ce + params.distill_weight * cos, {"ce": ce, "cosine": cos}


METHOD = Method(
    name="cosine", title="Cosine hidden representation",
    description="CE plus cosine embedding loss between the flattened last feature maps "
    "(the teacher's average-pooled to the student's width).",
    loss=loss, params=CosineParams, loss_terms=("ce", "cosine"), needs_teacher=True, default_epochs=10, taps=taps,
)
