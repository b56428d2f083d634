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
    """``{"parameters": int, "taps": {name: [shape without batch]}, "flops": int, "macs": int}`` for
    ``factory(num_classes)``; ``flops`` and ``macs``: one image's forward pass (kdcore.architectures.cost: what
    the pages show beside the parameters, and what a run's time is estimated from before it has been
    measured). One pass gives the taps and the count: the catalog is described while a server starts."""
    from kdcore.architectures.cost import counted_forward

    with torch.device("meta"):
        model = factory(num_classes)
        # Eval mode: batch norm's statistics are irrelevant here (so one image will do), and dropout is skipped.
        model.eval()
        (_, taps), flops = counted_forward(model, torch.empty(1, *input_shape))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "taps": {name: list(t.shape[1:]) for name, t in taps.items()},
        "flops": flops,
        "macs": flops // 2,
    }
