"""The standard CIFAR augmentation on resident, normalised images: a random 32×32 crop of the image
padded by 4 pixels, and a horizontal flip with probability ½, one gather per batch on the device.

Equivalent to torchvision's RandomCrop(size, padding=4) + RandomHorizontalFlip() before
ToTensor + Normalize: the padding is black pixels, which normalise to −mean/std per channel of the
images' normalisation (their Split's).
"""

from __future__ import annotations

import torch

from kdcore.data.catalog import Normalization
from kdcore.training.device_data import device_constant

PADDING = 4


def random_crop_flip(images: torch.Tensor, normalization: Normalization, padding: int = PADDING) -> torch.Tensor:
    """A new batch of ``images`` (normalised with ``normalization``); draws from torch's default generator on the
    images' device (graph-safe on CUDA)."""
    n, channels, height, width = images.shape
    dtype = torch.get_default_dtype()  # as torch.tensor(MEAN) was: the float64 tests pad in float64
    mean = device_constant(normalization.mean, images.device, dtype)
    black = (0.0 - mean) / device_constant(normalization.std, images.device, dtype)
    padded = black.to(images.dtype).view(1, channels, 1, 1).expand(n, channels, height + 2 * padding,
                                                                   width + 2 * padding).clone()
    padded[:, :, padding : padding + height, padding : padding + width] = images
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device)
    flip = torch.rand(n, 1, device=images.device) < 0.5
    columns = torch.arange(width, device=images.device).unsqueeze(0)
    columns = left + torch.where(flip, width - 1 - columns, columns)  # (n, width)
    rows = top + torch.arange(height, device=images.device).unsqueeze(0)  # (n, height)
    samples = torch.arange(n, device=images.device).view(n, 1, 1)
    # Advanced indexing puts the indexed dimensions first: (n, height, width, channels).
    cropped = padded.permute(0, 2, 3, 1)[samples, rows.unsqueeze(2), columns.unsqueeze(1)]
    return cropped.permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)
