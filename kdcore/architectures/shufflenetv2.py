"""ShuffleNet V2 1× (Ma et al. 2018), CIFAR variant of the CIFAR KD benchmark ("ShuffleV2").

A 1×1 stem conv to 24 channels + BN + ReLU (no stride, no pooling at 32×32), three stages of
widths 116/232/464, each a stride-2 down-sampling unit followed by 3/7/3 basic units, then a
1×1 conv to 1024 + BN + ReLU, global average pooling and one linear layer.

Basic unit: split the channels in half; the second half goes through 1×1 conv – BN – ReLU –
3×3 depthwise – BN – 1×1 conv – BN – ReLU; concatenate with the untouched first half; shuffle
(2 groups). Down-sampling unit: both branches see the whole input – left: 3×3 depthwise
stride 2 – BN – 1×1 conv – BN – ReLU; right: 1×1 conv – BN – ReLU – 3×3 depthwise stride 2 –
BN – 1×1 conv – BN – ReLU; each gives half the output width; concatenate; shuffle.

Taps: ``stage1``..``stage3`` are the stages' outputs (116×16×16, 232×8×8, 464×4×4 at 32×32,
before the 1×1 head conv), ``embedding`` the pooled 1024-vector.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kdcore.architectures.staged import StagedNet

from kdcore.architectures.shufflenetv1 import channel_shuffle


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class BasicUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.kept = channels // 2
        branch = channels - self.kept
        self.branch = nn.Sequential(
            *_conv_bn(branch, branch, 1),
            *_conv_bn(branch, branch, 3, groups=branch, relu=False),
            *_conv_bn(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, rest = x[:, : self.kept], x[:, self.kept :]
        return channel_shuffle(torch.cat([kept, self.branch(rest)], dim=1), 2)


class DownUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        half = out_channels // 2
        self.left = nn.Sequential(
            *_conv_bn(in_channels, in_channels, 3, stride=2, groups=in_channels, relu=False),
            *_conv_bn(in_channels, half, 1),
        )
        self.right = nn.Sequential(
            *_conv_bn(in_channels, half, 1),
            *_conv_bn(half, half, 3, stride=2, groups=half, relu=False),
            *_conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], dim=1), 2)


class ShuffleNetV2(StagedNet):
    def __init__(self, widths=(116, 232, 464), blocks=(3, 7, 3), head: int = 1024, num_classes: int = 100):
        super().__init__()
        stem = 24
        self.stem = nn.Sequential(*_conv_bn(3, stem, 1))
        stages = []
        in_channels = stem
        for width, count in zip(widths, blocks):
            stages.append(nn.Sequential(DownUnit(in_channels, width), *(BasicUnit(width) for _ in range(count))))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(*_conv_bn(in_channels, head, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head, num_classes)

    def embed(self, out: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.head(out)), 1)

    def after_last_stage(self) -> nn.Module:
        return nn.Sequential(self.head, self.pool, nn.Flatten(1), self.fc)


def shufflev2(num_classes: int = 100) -> nn.Module:
    return ShuffleNetV2(num_classes=num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "shufflev2": (shufflev2, "ShuffleNet V2 1× for CIFAR: stages of 1+3/1+7/1+3 units, 116/232/464 channels, 1024-d head"),
}
