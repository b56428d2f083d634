"""Hinton-style soft targets: CE plus T²·KL(softmax(t/T) ‖ softmax(s/T))."""

import torch
import torch.nn.functional as F


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # KL on log-probabilities (log_target=True) has the seed's gradient, but stays finite when
    # a confident teacher's probability underflows to 0, where the seed's p·log p gives NaN.
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    return kl * temperature**2


def loss(student, labels: torch.Tensor, teacher_logits: torch.Tensor, config):
    ce = F.cross_entropy(student[0], labels)
    soft = soft_target_loss(student[0], teacher_logits, config.temperature)
    return config.ce_weight * ce + config.distill_weight * soft, {"ce": ce, "soft_target": soft}
