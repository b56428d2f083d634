"""Parameter count and tap shapes of an architecture, without training or real memory.

The model is built and run on the "meta" device: tensors there carry shapes and dtypes but no
storage, so even a large model costs nothing to describe.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


def describe(
    factory: Callable[[int], nn.Module], num_classes: int, input_shape: Sequence[int] = (3, 32, 32)
) -> dict:
    """``{"parameters": int, "taps": {name: [shape without batch]}, "flops": int}`` for ``factory(num_classes)``;
    ``flops``: the floating-point operations of one image's forward pass (what a run's time is estimated from
    before it has been measured)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2  # so that batch norm would accept it in train mode too
    with torch.device("meta"):
        model = factory(num_classes)
        # Eval mode: batch norm's statistics are irrelevant here, and dropout is skipped.
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            _, taps = model(torch.empty(batch, *input_shape))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "taps": {name: list(t.shape[1:]) for name, t in taps.items()},
        "flops": counter.get_total_flops() // batch,
    }
