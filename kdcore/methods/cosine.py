"""Cosine loss between hidden representations: the student's flattened conv output (1024)
against the teacher's (2048) average-pooled pairwise down to 1024."""

import torch
import torch.nn.functional as F


def cosine_hidden_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    student_flat = torch.flatten(student_map, 1)
    teacher_flat = F.avg_pool1d(torch.flatten(teacher_map, 1), 2)
    target = torch.ones(student_flat.shape[0], device=student_flat.device)
    return F.cosine_embedding_loss(student_flat, teacher_flat, target)


def loss(student, labels: torch.Tensor, teacher_map: torch.Tensor, config):
    ce = F.cross_entropy(student[0], labels)
    cos = cosine_hidden_loss(student[1], teacher_map)
    return config.ce_weight * ce + config.distill_weight * cos, {"ce": ce, "cosine": cos}
