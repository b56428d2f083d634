"""The arithmetic model of a training epoch's time, shared by the launch forms' estimates (app.launch.estimates)
and ``kd benchmark``'s cost before it trains: a fixed cost per step (launching kernels, the optimiser, Python)
plus its arithmetic (forward and backward, three forward passes' worth, over the training images; a forward
pass over the evaluated ones; a teacher's forward pass where it runs online) at a rate in FLOP/s. Torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Evaluated images per training image: the test split (CIFAR's 10,000 to 50,000).
EVALUATED = 0.2


@dataclass(frozen=True)
class Speed:
    step_seconds: float  # a training step's fixed cost
    flops_per_second: float


# The pace of the development machines, for a kind of device nothing has finished on here (README "Speed"):
# the tutorial experiment on 5,000 images on a 2-core CPU, teacher 319.3 s and the four other runs 60.5 s,
# solve to 4.6 ms a step and 198 GFLOP/s; the whole of it on full CIFAR-10 on one H100, 44.2 s, to about
# 0.1 ms a step (CUDA graphs) and 20 TFLOP/s.
PRIOR = {"cpu": Speed(0.0046, 198e9), "cuda": Speed(0.0001, 2.0e13)}


def epoch_seconds(speed: Speed, forward_flops: int, batch_size: int, images: int, online_teacher: int = 0) -> float:
    """One epoch over ``images`` of a network of ``forward_flops`` per image, at ``speed``; ``online_teacher``:
    the forward FLOPs of a teacher that runs on every training image (0 when its outputs are cached)."""
    arithmetic = images * (3 * forward_flops + EVALUATED * forward_flops + online_teacher)
    return math.ceil(images / batch_size) * speed.step_seconds + arithmetic / speed.flops_per_second
