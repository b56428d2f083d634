"""Seeded construction of a registered architecture (see kdcore.architectures)."""

from __future__ import annotations

import threading

from torch import nn

from kdcore.architectures import build

_seeding = threading.Lock()


def build_model(architecture: str, num_classes: int, seed: int) -> nn.Module:
    # The global RNG is shared by threads: seeding and initialising must not interleave.
    with _seeding:
        import torch

        torch.manual_seed(seed)
        return build(architecture, num_classes)
