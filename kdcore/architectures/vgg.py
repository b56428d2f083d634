"""VGG with batch norm (Simonyan & Zisserman 2015), CIFAR variant of the CIFAR KD benchmark.

Five conv blocks of 3×3 conv (with bias) + BN + ReLU; 2×2 max-pools after the first four…
except that at 32×32 the benchmark skips the fourth pool (it only applies it to 64×64 inputs),
so blocks 4 and 5 both run at 4×4. The fully connected head is replaced by global average
pooling and one linear layer (512 → classes).

vgg8 has one conv per block (64/128/256/512/512); vgg13 two (configuration "B").

Taps: ``stage1``..``stage5`` are the five blocks' outputs after their last ReLU (before the
following pool), ``pre_stage1``..``pre_stage5`` the same before that ReLU; ``embedding`` the pooled 512-vector
the classifier receives.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn


def _block(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    # The block's last ReLU is the network's (VGG.activation), which taps the map before it; it has no weights,
    # so the state dict's keys are the same either way.
    return nn.Sequential(*layers[:-1])


class VGG(nn.Module):
    def __init__(self, config: Sequence[Sequence[int]], num_classes: int = 100):
        super().__init__()
        if len(config) != 5:
            raise ValueError("a CIFAR VGG has five conv blocks")
        blocks = []
        in_channels = 3
        for widths in config:
            blocks.append(_block(in_channels, widths))
            in_channels = widths[-1]
        self.blocks = nn.ModuleList(blocks)
        self.activation = nn.ReLU()  # not in place: the map before it is a tap
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        out = x
        for index, block in enumerate(self.blocks, start=1):
            out = block(out)
            taps[f"pre_stage{index}"] = out
            out = self.activation(out)
            taps[f"stage{index}"] = out
            if index <= 3:  # 32 → 16 → 8 → 4; blocks 4 and 5 both run at 4×4
                out = self.pool(out)
        embedding = torch.flatten(self.global_pool(out), 1)
        taps["embedding"] = embedding
        return self.classifier(embedding), taps

    def after_last_stage(self) -> nn.Module:
        """The modules that turn the last stage's map into logits (what SimKD reuses from a teacher)."""
        return nn.Sequential(self.global_pool, nn.Flatten(1), self.classifier)

    def pre_activation_norms(self) -> dict[str, nn.BatchNorm2d]:
        """Each block's last batch norm: the activation of its ``pre_stage`` tap (OFD's margins)."""
        return {f"pre_stage{index}": block[-1] for index, block in enumerate(self.blocks, start=1)}


_VGG8 = ((64,), (128,), (256,), (512,), (512,))
_VGG13 = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))


def vgg8(num_classes: int = 100) -> nn.Module:
    return VGG(_VGG8, num_classes)


def vgg13(num_classes: int = 100) -> nn.Module:
    return VGG(_VGG13, num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "vgg8": (vgg8, "VGG-8 with BN (CIFAR): 5 blocks × 1 conv, 64/128/256/512/512, GAP + linear"),
    "vgg13": (vgg13, "VGG-13 with BN (CIFAR): 5 blocks × 2 convs, 64/128/256/512/512, GAP + linear"),
}
