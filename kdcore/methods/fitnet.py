"""FitNets hint: a Conv(16→32) regressor maps the student's 16×8×8 feature map onto the
teacher's 32×8×8 one, compared by MSE. The regressor trains with the student."""

import torch
import torch.nn.functional as F


def loss(student, labels: torch.Tensor, teacher_map: torch.Tensor, config):
    ce = F.cross_entropy(student[0], labels)
    hint = F.mse_loss(student[2], teacher_map)
    return config.ce_weight * ce + config.distill_weight * hint, {"ce": ce, "hint": hint}
