"""Weights made from a state dict's key names and shapes alone, the same in every process, and the images
they are tried on: tests/fixtures/record_reference_keys.py runs the reference frameworks' networks with them,
tests/test_teacher_import.py runs this project's, and both must give the same logits. In float64, so that the
two networks' different orders of operations stay far below the comparison's tolerance."""

from __future__ import annotations

import math
import zlib

import torch


def weight_for(name: str, shape: list[int] | tuple[int, ...]) -> torch.Tensor:
    """A deterministic tensor for one key: He-scaled weights, batch norms near identity with running
    statistics of their own (so that eval mode is not the identity), small biases."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("num_batches_tracked"):
        return torch.tensor(0)
    values = torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    if len(shape) >= 2:
        return values * math.sqrt(2.0 / math.prod(shape[1:]))
    if name.endswith("running_var"):
        return 0.5 + torch.rand(tuple(shape), generator=generator, dtype=torch.float64)
    if name.endswith("weight"):  # a batch norm's scale
        return 1.0 + 0.1 * values
    return 0.1 * values  # biases, running means


def synthetic_state(keys: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    return {name: weight_for(name, shape) for name, shape in keys}


def probe_images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
