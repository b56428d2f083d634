"""The arithmetic a network costs: FLOPs and multiply-accumulates (MACs) of its forward pass, and of a
training step's forward and backward, counted by PyTorch's own ``FlopCounterMode`` at the dispatch level.

Conventions: ``FlopCounterMode`` counts the matrix products and convolutions (forward and their backward
kernels), two FLOPs per multiply-accumulate; element-wise work (batch norm, activations, additions,
pooling) counts nothing. So ``macs`` is ``flops / 2`` exactly, the convention papers that quote "FLOPs"
of CIFAR networks mostly mean when they quote MACs (fvcore and thop count one "flop" per MAC).

One correction: torch's formula for a convolution's weight gradient ignores its groups, which counts a
depthwise convolution's (MobileNetV2, the ShuffleNets) as many times over as it has channels (MobileNetV2's
training step came out at 19 times its forward pass). ``_conv_backward_flops`` counts it as the product it is.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten


def _logits(output):
    # The zoo's networks answer (logits, taps); a plain classifier answers its logits.
    return output[0] if isinstance(output, (tuple, list)) else output


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape, **_) -> int:
    """FLOPs of ``aten.convolution_backward``: the input's gradient is a transposed convolution of the output's
    gradient with the weight, and the weight's gradient pairs every output gradient with the input values its
    own forward product read, once per (per-group) weight: as many products as the forward pass."""
    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, list(out_shape[0]), not transposed)
    if output_mask[1]:
        flops += conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return flops


_CORRECTED = {aten.convolution_backward: _conv_backward_flops}


def counted_forward(model: nn.Module, images: torch.Tensor) -> tuple:
    """``(model(images), FLOPs of that forward pass)``, without gradients."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CORRECTED) as counter:
        output = model(images)
    return output, counter.get_total_flops()


def count_flops(model: nn.Module, input_shape: Sequence[int] = (3, 32, 32), batch: int = 1,
                backward: bool = True) -> dict:
    """FLOPs and MACs of ``model`` on ``batch`` images of ``input_shape`` (channels, height, width; no batch):

    - ``flops``, ``macs``: the forward pass;
    - ``training_flops``, ``training_macs`` (with ``backward``): forward and backward (the gradients of the
      parameters, as a training step computes them; the input takes none);
    - ``batch``, ``input_shape``: what was counted.

    The model runs where its parameters are, in eval mode (dropout and batch-norm statistics change no
    count), and is left as it was: no gradient is accumulated, its mode is restored. A model built on the
    "meta" device is counted without any memory or arithmetic.
    """
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    images = torch.zeros(batch, *input_shape, device=device, dtype=dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        _, flops = counted_forward(model, images)
        counted = {"flops": flops, "macs": flops // 2, "batch": batch, "input_shape": list(input_shape)}
        if backward:
            with torch.enable_grad(), FlopCounterMode(display=False, custom_mapping=_CORRECTED) as training:
                logits = _logits(model(images))
                if trainable:
                    # autograd.grad, not backward(): the model's .grad stay as they were.
                    torch.autograd.grad(logits.sum(), trainable)
            total = training.get_total_flops()
            counted.update(training_flops=total, training_macs=total // 2)
    finally:
        model.train(was_training)
    return counted
