"""CIFAR ResNets (He et al. 2016, section 4.2) as used by the CIFAR knowledge-distillation benchmark.

Depth ``6n + 2``: a 3×3 stem conv, three stages of ``n`` basic blocks (two 3×3 convs each) at
32×32, 16×16 and 8×8, global average pooling and a linear classifier. Where a block changes the
width or the resolution, its shortcut is a 1×1 conv + BN projection (the benchmark's choice,
which its parameter counts reflect). The plain nets use widths 16 → 16/32/64; the "x4" nets
use a 32-channel stem and stages of 64/128/256.

Taps: ``stage1``..``stage3`` are the stages' outputs (after the final ReLU of the last block),
``pre_stage1``..``pre_stage3`` the same before that ReLU (the residual sums), ``embedding`` the pooled vector
the classifier receives.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kdcore.architectures.staged import StagedNet


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, activate: bool = True):
        super().__init__()
        # A stage's last block leaves its final ReLU to the network, which taps the map before it.
        self.activate = activate
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu(out) if self.activate else out


class CifarResNet(StagedNet):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"a CIFAR ResNet with basic blocks has depth 6n+2, not {depth}")
        blocks_per_stage = (depth - 2) // 6
        stem, *stage_widths = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        stages = []
        in_channels = stem
        for index, width in enumerate(stage_widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride, activate=block < blocks_per_stage - 1))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.activation = nn.ReLU()  # not in place: the map before it is a tap
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


    def pre_activation_norms(self) -> dict[str, nn.BatchNorm2d]:
        # The last block's second batch norm, before the shortcut is added (mdistiller's get_bn_before_relu).
        return {f"pre_stage{index}": stage[-1].bn2 for index, stage in enumerate(self.stages, start=1)}


_PLAIN = (16, 16, 32, 64)
_X4 = (32, 64, 128, 256)


def resnet20(num_classes: int = 100) -> nn.Module:
    return CifarResNet(20, _PLAIN, num_classes)


def resnet32(num_classes: int = 100) -> nn.Module:
    return CifarResNet(32, _PLAIN, num_classes)


def resnet56(num_classes: int = 100) -> nn.Module:
    return CifarResNet(56, _PLAIN, num_classes)


def resnet110(num_classes: int = 100) -> nn.Module:
    return CifarResNet(110, _PLAIN, num_classes)


def resnet8x4(num_classes: int = 100) -> nn.Module:
    return CifarResNet(8, _X4, num_classes)


def resnet32x4(num_classes: int = 100) -> nn.Module:
    return CifarResNet(32, _X4, num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "resnet20": (resnet20, "CIFAR ResNet-20: 3 stages × 3 basic blocks, 16/32/64 channels"),
    "resnet32": (resnet32, "CIFAR ResNet-32: 3 stages × 5 basic blocks, 16/32/64 channels"),
    "resnet56": (resnet56, "CIFAR ResNet-56: 3 stages × 9 basic blocks, 16/32/64 channels"),
    "resnet110": (resnet110, "CIFAR ResNet-110: 3 stages × 18 basic blocks, 16/32/64 channels"),
    "resnet8x4": (resnet8x4, "CIFAR ResNet-8 ×4 wide: 32-channel stem, 3 stages × 1 basic block, 64/128/256 channels"),
    "resnet32x4": (resnet32x4, "CIFAR ResNet-32 ×4 wide: 32-channel stem, 3 stages × 5 basic blocks, 64/128/256 channels"),
}
