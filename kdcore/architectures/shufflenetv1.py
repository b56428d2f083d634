"""ShuffleNet V1 (Zhang et al. 2018), CIFAR variant of the CIFAR KD benchmark ("ShuffleV1").

A 1×1 stem conv to 24 channels + BN + ReLU (no stride, no pooling at 32×32), then three stages
of 4/8/4 bottleneck units with 3 groups and output widths 240/480/960, each stage starting
with a stride-2 unit, global average pooling and one linear layer.

Unit: grouped 1×1 conv to a quarter of its output width – BN – ReLU – channel shuffle –
3×3 depthwise conv – BN – ReLU – grouped 1×1 conv – BN, added to the input (stride 1) or
concatenated with a 3×3 stride-2 average pool of the input (stride 2, so the branch produces
``out - in`` channels), then ReLU. As in the benchmark, the very first unit's first 1×1 conv
(on the 24-channel stem) is ungrouped, and so its shuffle is a no-op; and unlike the paper,
the benchmark puts a ReLU after the depthwise conv's BN, which this follows.

Taps: ``stage1``..``stage3`` are the stages' outputs (240×16×16, 480×8×8, 960×4×4 at
32×32), ``pre_stage1``..``pre_stage3`` the same before the last unit's final ReLU, ``embedding`` the pooled
960-vector.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kdcore.architectures.staged import StagedNet


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g·k, H, W) → interleave the g groups' channels: (N, k·g, H, W)."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class ShuffleUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, first_groups: int,
                 activate: bool = True):
        super().__init__()
        # A stage's last unit leaves its final ReLU to the network, which taps the map before it.
        self.activate = activate
        self.stride = stride
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = branch_out // 4
        self.first_groups = first_groups
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.first_groups > 1:
            out = channel_shuffle(out, self.first_groups)
        out = self.relu(self.bn2(self.conv2(out)))  # the benchmark's ReLU (the paper has none here)
        out = self.bn3(self.conv3(out))
        if self.pool is None:
            out = out + x
        else:
            out = torch.cat([out, self.pool(x)], dim=1)
        return self.relu(out) if self.activate else out


class ShuffleNetV1(StagedNet):
    def __init__(self, widths=(240, 480, 960), blocks=(4, 8, 4), groups: int = 3, num_classes: int = 100):
        super().__init__()
        stem = 24
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        stages = []
        in_channels = stem
        for width, count in zip(widths, blocks):
            units = []
            for index in range(count):
                first_groups = 1 if in_channels == stem else groups
                units.append(ShuffleUnit(in_channels, width, 2 if index == 0 else 1, groups, first_groups,
                                         activate=index < count - 1))
                in_channels = width
            stages.append(nn.Sequential(*units))
        self.stages = nn.ModuleList(stages)
        self.activation = nn.ReLU()  # not in place: the map before it is a tap
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def pre_activation_norms(self) -> dict[str, nn.BatchNorm2d]:
        # The last unit's last batch norm, before the input is added (as a resnet's bn2).
        return {f"pre_stage{index}": stage[-1].bn3 for index, stage in enumerate(self.stages, start=1)}


def shufflev1(num_classes: int = 100) -> nn.Module:
    return ShuffleNetV1(num_classes=num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "shufflev1": (shufflev1, "ShuffleNet V1 for CIFAR: 3 groups, stages of 4/8/4 units, 240/480/960 channels"),
}
