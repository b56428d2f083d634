"""The networks' arithmetic (RunConfig.precision): float32, or bfloat16 autocast around their forward passes.

Under bfloat16 autocast the student's convolutions and matrix products run in bfloat16 (about 2× faster
on CPUs with bfloat16 units, bench/bench_precision.py; GPUs have them too); the weights, the optimiser,
the batch-norm statistics and the losses stay in float32. What the network returns is widened back to
float32 before any loss sees it, so a method's arithmetic is the same in both. The frozen teacher's
outputs stay float32, whether cached or computed in each step, so that ``cache_teacher`` stays a speed
switch.
"""

from __future__ import annotations

import torch

from kdcore.methods.base import Outputs
from kdcore.training.fallback import AUTOCAST, Fallbacks, out_of_memory


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in. The cache of cast weights is off: a step's weights change, and a
    CUDA graph would otherwise replay casts of the weights it was captured with."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16", cache_enabled=False)


def widened(tensor: torch.Tensor) -> torch.Tensor:
    """float32 for a bfloat16 tensor; any other (a float64 test's) as it is."""
    return tensor.float() if tensor.dtype == torch.bfloat16 else tensor


def widened_outputs(outputs: Outputs) -> Outputs:
    """A network's logits and taps, each widened."""
    return Outputs(widened(outputs.logits), {name: widened(value) for name, value in outputs.taps.items()})


def usable_precision(precision: str, model: torch.nn.Module, images: torch.Tensor, fallbacks: Fallbacks) -> str:
    """``precision``, or "float32" where a forward pass of ``model`` under its autocast raises (a GPU
    without bfloat16, a kernel missing in it) and one without autocast does not: a pass that fails in
    float32 too is the network's own problem, which it raises. ``images``: a few of the run's, on its
    device. The passes run in eval mode and without gradients, so no statistic or random number moves:
    the run then trains as if they had not been made."""
    if precision == "float32" or fallbacks.is_off(AUTOCAST):
        return "float32"
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                with autocast(precision, images.device):
                    model(images)
                return precision
            except Exception as error:
                if out_of_memory(error):
                    raise
                failure = error
            model(images)
        fallbacks.record(AUTOCAST, failure, "the run trains in float32")
        return "float32"
    finally:
        model.train(training)
