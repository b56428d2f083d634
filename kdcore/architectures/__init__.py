"""Model architectures, one module per family.

Every model's ``forward(x)`` returns ``(logits, taps)``: ``taps`` is a dict of named feature
tensors, ``"stage1"`` … ``"stageN"`` in order, then ``"embedding"`` (the pooled, flattened
vector the final linear classifier receives). Each family module defines factory functions
``name(num_classes) -> nn.Module`` and a module-level ``ARCHITECTURES`` dict mapping each
registered name to ``(factory, one-line description)``.

This package's ``__init__`` does not import torch; the family modules do, so import them
(or call :func:`all_architectures`) only where models are built.
"""

from __future__ import annotations

import importlib
from typing import Any

# The family modules, in the order their names are listed.
FAMILIES: tuple[str, ...] = (
    "seed_cnn",
    "resnet",
    "wrn",
    "vgg",
    "mobilenetv2",
    "shufflenetv1",
    "shufflenetv2",
)


def all_architectures() -> dict[str, tuple[Any, str]]:
    """Every family's ``ARCHITECTURES`` merged (imports torch). Names are unique across families."""
    merged: dict[str, tuple[Any, str]] = {}
    for family in FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        for name, entry in module.ARCHITECTURES.items():
            if name in merged:
                raise RuntimeError(f"architecture {name!r} is registered by two families")
            merged[name] = entry
    return merged
