"""The training recipe: the optimiser and the learning-rate schedule (the named recipes a run can start
from are kdcore.presets). Torch is imported only by ``make_optimizer``."""

from __future__ import annotations

import math

from kdcore.training.fallback import FUSED, attempt


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


def make_optimizer(config, parameters: list, device, fallbacks):
    """Adam or SGD, with their fused kernels: one kernel for all the parameters, also on a CPU, where
    the per-parameter loops cost a small network more than its arithmetic. On CUDA they run inside CUDA
    graphs; a changing learning rate is then a device tensor, updated in place, since a graph replays
    the value it was captured with. Where the fused constructor raises, the optimiser takes torch's
    default kernels (``fallbacks``: kdcore.training.fallback)."""
    import torch

    cuda = device.type == "cuda"
    lr = torch.tensor(config.lr, device=device) if cuda and changes_lr(config) else config.lr

    def build(fused: bool):
        if config.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                   fused=fused)
        return torch.optim.Adam(parameters, lr=lr, weight_decay=config.weight_decay, fused=fused,
                                **({"capturable": True} if cuda else {}))

    return attempt(fallbacks, FUSED, "the optimiser uses torch's default kernels", lambda: build(True),
                   lambda: build(None))


def set_lr(optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        if hasattr(group["lr"], "fill_"):
            group["lr"].fill_(value)
        else:
            group["lr"] = value
