"""Training in float64, for tests that compare two paths to the last digits (tests/test_packed.py says why
float32 cannot: Adam turns rounding noise in near-zero gradients into weight differences of up to lr)."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from kdcore.training import device_data


def _normalize64(images_uint8, normalization=device_data.DEFAULT_NORMALIZATION):
    mean = torch.tensor(normalization.mean, dtype=torch.float64, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(normalization.std, dtype=torch.float64, device=images_uint8.device).view(1, 3, 1, 1)
    return images_uint8.double().div_(255).sub_(mean).div_(std)


@contextmanager
def in_float64():
    """Default dtype float64 and the data normalised in float64, restored afterwards."""
    dtype, normalize = torch.get_default_dtype(), device_data.normalize
    torch.set_default_dtype(torch.float64)
    device_data.normalize = _normalize64
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        device_data.normalize = normalize
