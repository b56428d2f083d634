"""ResNet-50 for CIFAR (He et al. 2016, the ImageNet design with bottleneck blocks), as the CIFAR KD benchmark
uses it for its ResNet50 → MobileNetV2 / VGG-8 pairs (RepDistiller's and mdistiller's ``resnetv2``).

A 3×3 stride-1 stem conv to 64 channels with BN-ReLU (no max-pool: the input is 32×32), four stages of
3/4/6/3 bottleneck blocks (1×1 reduce, 3×3, 1×1 expand ×4) of widths 256/512/1024/2048 at 32×32, 16×16, 8×8 and
4×4, global average pooling and a linear classifier. A block that changes width or resolution projects its
shortcut with a 1×1 conv + BN.

Taps: ``stage1``..``stage4`` are the stages' outputs (after the last block's ReLU), ``pre_stage1``..``pre_stage4``
the same before that ReLU (the residual sums), ``embedding`` the pooled vector the classifier receives.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kdcore.architectures.staged import StagedNet

EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, width: int, stride: int, activate: bool = True):
        super().__init__()
        out_channels = width * EXPANSION
        # A stage's last block leaves its final ReLU to the network, which taps the map before it.
        self.activate = activate
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out)) + self.shortcut(x)
        return self.relu(out) if self.activate else out


class BottleneckResNet(StagedNet):
    def __init__(self, blocks_per_stage: tuple[int, ...], num_classes: int = 100):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        stages, in_channels = [], 64
        for index, (width, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
            blocks = []
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(Bottleneck(in_channels, width, stride, activate=block < count - 1))
                in_channels = width * EXPANSION
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
        # The last block's third batch norm, before the shortcut is added (mdistiller's get_bn_before_relu).
        return {f"pre_stage{index}": stage[-1].bn3 for index, stage in enumerate(self.stages, start=1)}


def resnet50(num_classes: int = 100) -> nn.Module:
    return BottleneckResNet((3, 4, 6, 3), num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "resnet50": (resnet50, "ResNet-50 for CIFAR: 3×3 stem, 4 stages of 3/4/6/3 bottleneck blocks, 256/512/1024/2048 "
                           "channels"),
}
