"""The training recipe: optimiser, learning-rate schedule and presets. Torch is imported only by
``make_optimizer``; the rest is read by the torch-free configuration."""

from __future__ import annotations

import math
from typing import Any

# Named recipes a run can start from; fields given beside a preset win over it.
PRESETS: dict[str, dict[str, Any]] = {
    # The CIFAR-100 KD benchmark of Tian et al. (CRD, ICLR 2020), which later KD papers reuse.
    "crd-cifar": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 240,
                  "batch_size": 64, "schedule": "step", "milestones": (150, 180, 210), "lr_decay": 0.1,
                  "augment": True},
}
PRESET_TITLES = {"crd-cifar": "CIFAR KD benchmark (CRD): SGD 0.05, momentum 0.9, weight decay 5e-4, "
                              "240 epochs, ×0.1 at 150/180/210, crop + flip"}


def lr_at(config, epoch: int) -> float:
    """The learning rate for ``epoch`` (from 1): a linear warm-up, then the schedule."""
    if config.warmup_epochs and epoch <= config.warmup_epochs:
        return config.lr * epoch / config.warmup_epochs
    if config.schedule == "step":
        return config.lr * config.lr_decay ** sum(epoch > milestone for milestone in config.milestones)
    if config.schedule == "cosine":
        span = max(1, config.epochs - config.warmup_epochs)
        done = epoch - 1 - config.warmup_epochs
        return config.lr * 0.5 * (1 + math.cos(math.pi * done / span))
    return config.lr


def changes_lr(config) -> bool:
    return config.schedule != "constant" or config.warmup_epochs > 0


def make_optimizer(config, parameters: list, device):
    """Adam or SGD, with their fused kernels: one kernel for all the parameters, also on a CPU, where
    the per-parameter loops cost a small network more than its arithmetic. On CUDA they run inside CUDA
    graphs; a changing learning rate is then a device tensor, updated in place, since a graph replays
    the value it was captured with."""
    import torch

    cuda = device.type == "cuda"
    lr = torch.tensor(config.lr, device=device) if cuda and changes_lr(config) else config.lr
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               fused=True)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=config.weight_decay, fused=True,
                            **({"capturable": True} if cuda else {}))


def set_lr(optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        if hasattr(group["lr"], "fill_"):
            group["lr"].fill_(value)
        else:
            group["lr"] = value
