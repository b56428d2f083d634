"""What RepDistiller's two-stage methods (FSP, AB, FT) share: the hyperparameters of their init stage, and
the pooling of two feature maps to a common size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from kdcore.methods.base import Hyperparameters

if TYPE_CHECKING:  # annotations only: the torch-free web process reads this file
    import torch


class InitStageParams(Hyperparameters):
    init_epochs: int = Field(2, ge=0, le=1000, description="Epochs of the init stage, before the main stage "
                             "(RepDistiller: 30 before 240; here 2 before the default 10, about that share; 0 skips "
                             "it)")
    init_lr: float = Field(0.05, gt=0, le=10, description="SGD learning rate of the init stage (momentum 0.9, "
                           "weight decay 5e-4), constant")


def pooled_to_smaller(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps at the smaller height and the smaller width of the two: the larger average-pooled."""
    import torch.nn.functional as F

    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    return tuple(F.adaptive_avg_pool2d(x, size) if tuple(x.shape[2:]) != size else x for x in (a, b))
