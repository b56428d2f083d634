"""Wide ResNets (Zagoruyko & Komodakis 2016) for CIFAR, as used by the CIFAR KD benchmark.

WRN-d-k: depth ``6n + 4``, a 3×3 stem conv to 16 channels, then three stages of ``n``
pre-activation basic blocks (BN-ReLU-conv3×3-BN-ReLU-conv3×3) of widths 16k/32k/64k at
32×32, 16×16 and 8×8, a final BN-ReLU, global average pooling and a linear classifier.
A block that changes width or resolution pre-activates its input once and feeds it to both
its residual branch and a 1×1 projection shortcut (no BN on the projection).

Taps: ``stage1``..``stage3`` are the stages' raw outputs (residual sums, before the next
BN-ReLU) as the benchmark exposes them (a pre-activation net has no activation at a stage's
end); ``embedding`` is the pooled vector after the final BN-ReLU.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kdcore.architectures.staged import StagedNet


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.projection = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.relu(self.bn2(out)))
        # With a projection, the shortcut sees the pre-activated input; without, the raw one.
        shortcut = x if self.projection is None else self.projection(activated)
        return out + shortcut


class WideResNet(StagedNet):
    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"a wide ResNet has depth 6n+4, not {depth}")
        blocks_per_stage = (depth - 4) // 6
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        stages = []
        in_channels = 16
        for index, base in enumerate((16, 32, 64)):
            width = base * widen_factor
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(PreActBlock(in_channels, width, stride))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def embed(self, out: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.relu(self.bn(out))), 1)

    def after_last_stage(self) -> nn.Module:
        return nn.Sequential(self.bn, self.relu, self.pool, nn.Flatten(1), self.fc)


def wrn_16_2(num_classes: int = 100) -> nn.Module:
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes: int = 100) -> nn.Module:
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes: int = 100) -> nn.Module:
    return WideResNet(40, 2, num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "wrn_16_2": (wrn_16_2, "Wide ResNet-16-2 (pre-activation): 3 stages × 2 blocks, 32/64/128 channels"),
    "wrn_40_1": (wrn_40_1, "Wide ResNet-40-1 (pre-activation): 3 stages × 6 blocks, 16/32/64 channels"),
    "wrn_40_2": (wrn_40_2, "Wide ResNet-40-2 (pre-activation): 3 stages × 6 blocks, 32/64/128 channels"),
}
