"""What a model gives, found without training and without memory: a forward pass on the meta device."""

from __future__ import annotations

import torch


def describe(factory, num_classes: int, input_shape: tuple[int, ...] = (3, 32, 32)) -> dict:
    """``{"parameters": N, "taps": {name: [shape without the batch]}}``."""
    with torch.device("meta"):
        model = factory(num_classes)
        _, taps = model.eval()(torch.empty(2, *input_shape))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "taps": {name: list(tensor.shape[1:]) for name, tensor in taps.items()}}
