"""Images on the device, normalised exactly as ToTensor() + Normalize(mean, std) would, with the dataset's
normalisation (kdcore.data.catalog.normalization_for): a Split knows its own, and what augments its batches
(augment, views) asks it."""

from __future__ import annotations

import functools

import numpy as np
import torch

from kdcore.data.catalog import DEFAULT_NORMALIZATION, Normalization

# The default normalisation's (ImageNet's statistics, the tutorial's), under their old names.
MEAN = DEFAULT_NORMALIZATION.mean
STD = DEFAULT_NORMALIZATION.std
EVAL_BATCH = 1000


@functools.lru_cache(maxsize=None)
def device_constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant tensor of ``values`` on ``device``, made once and shared (never write to it). A step's
    code asks for its constants here: made from host values inside a CUDA graph's capture, they would need a
    host-to-device copy, which synchronises and breaks the capture; the step's warm-up makes them first."""
    return torch.tensor(values, device=device, dtype=dtype)


def normalize(images_uint8: torch.Tensor, normalization: Normalization = DEFAULT_NORMALIZATION) -> torch.Tensor:
    # The same float operations, in the same order, as ToTensor (÷255) then Normalize.
    mean = torch.tensor(normalization.mean, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(normalization.std, device=images_uint8.device).view(1, 3, 1, 1)
    return images_uint8.float().div_(255).sub_(mean).div_(std)


class Split:
    """One split's images and labels, normalised with ``normalization`` (its dataset's: no default, so that no
    caller forgets it). Resident: normalised once on the device.

    Not resident: uint8 on the host, each batch normalised after transfer (the switch that
    turns the speed-up off, and the path for data larger than the device's memory).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device, resident: bool, *,
                 normalization: Normalization):
        self.device, self.resident, self.normalization = device, resident, normalization
        self.labels = torch.from_numpy(labels).to(device)
        host = torch.from_numpy(images)
        if resident:
            self.images = torch.cat([normalize(host[i : i + 10000].to(device), normalization)
                                     for i in range(0, len(host), 10000)])
        else:
            self.images = host.pin_memory() if device.type == "cuda" else host

    def __len__(self) -> int:
        return len(self.labels)

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        if self.resident:
            return self.images.index_select(0, index)
        return normalize(self.images.index_select(0, index.cpu()).to(self.device, non_blocking=True),
                         self.normalization)

    def chunks(self, size: int = EVAL_BATCH):
        for start in range(0, len(self), size):
            index = torch.arange(start, min(start + size, len(self)), device=self.device)
            yield self.gather(index), self.labels[start : start + size]
