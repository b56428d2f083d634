"""Seeded construction of a registered architecture (see kdcore.architectures), and its memory layout."""

from __future__ import annotations

import threading

import torch
from torch import nn

from kdcore.architectures import build
from kdcore.training.fallback import CHANNELS_LAST, Fallbacks, attempt

_seeding = threading.Lock()


def build_model(architecture: str, num_classes: int, seed: int) -> nn.Module:
    # The global RNG is shared by threads: seeding and initialising must not interleave.
    with _seeding:
        torch.manual_seed(seed)
        return build(architecture, num_classes)


def to_channels_last(module: nn.Module) -> None:
    """The NHWC layout for a network's 4-d weights (in place): faster on GPUs and on CPUs (oneDNN's pooling
    above all; bench/bench_layout.py)."""
    module.to(memory_format=torch.channels_last)


def channels_last(modules: list[nn.Module | None], fallbacks: Fallbacks) -> None:
    """Every network of ``modules`` (None: none) in the NHWC layout; all of them back in NCHW, the
    arithmetic of a run without the layout, where a conversion raises."""
    present = [module for module in modules if module is not None]

    def convert() -> None:
        for module in present:
            to_channels_last(module)

    def undo() -> None:  # also what a conversion that raised halfway left converted
        for module in present:
            module.to(memory_format=torch.contiguous_format)

    attempt(fallbacks, CHANNELS_LAST, "the networks keep the NCHW layout", convert, undo)
