"""Hinton-style soft targets: CE plus T²·KL(softmax(t/T) ‖ softmax(s/T))."""

from pydantic import Field

from kdcore.methods.base import Method, TutorialWeights, logits_only
from kdcore.methods.logit_standardization import logit_pair


class KDParams(TutorialWeights):
    temperature: float = Field(2.0, gt=0, le=1000, description="Softmax temperature T")
    standardize: bool = Field(False, description="Standardise both logits per row before the temperature "
                              "(logit standardisation, Sun et al. 2024)")


def soft_target_loss(student_logits, teacher_logits, temperature):
    import torch.nn.functional as F  # here, not above: the torch-free web process reads this file

    # KL on log-probabilities (log_target=True) has the tutorial's gradient, but stays finite when
    # a confident teacher's probability underflows to 0, where the tutorial's p·log p gives NaN.
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    return kl * temperature**2


def loss(student, teacher, labels, params: KDParams, progress, modules):
    import torch.nn.functional as F

    ce = F.cross_entropy(student.logits, labels)
    s, t = logit_pair(student.logits, teacher.logits, params.standardize)
    soft = soft_target_loss(s, t, params.temperature)
    return params.ce_weight * ce + params.distill_weight * soft, {"ce": ce, "soft_target": soft}


METHOD = Method(
    name="kd", title="Soft targets (KD)",
    description="CE plus T²·KL between the teacher's and student's softened outputs.",
    loss=loss, params=KDParams, loss_terms=("ce", "soft_target"), needs_teacher=True, default_epochs=10,
    taps=logits_only,
)
