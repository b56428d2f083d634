"""MobileNetV2 (Sandler et al. 2018) at width 0.5, the CIFAR KD benchmark's "mobile_half".

A stride-2 3×3 stem (16 channels at width 0.5), seven groups of inverted residual blocks
(1×1 expand – BN – ReLU, 3×3 depthwise – BN – ReLU, 1×1 linear projection – BN; identity
shortcut when stride 1 and widths match) with expansion 6 (1 for the first group; the
benchmark keeps that group's 1×1 expansion conv even at ratio 1), a 1×1 conv to 1280 channels
(not scaled at width < 1) + BN + ReLU, global average pooling and one linear layer.

Group settings (expansion t, channels c at width 1, blocks n, first stride s):
(1,16,1,1) (6,24,2,1) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1).
At 32×32 the resolutions are 16 (stem, groups 1–2), 8, 4, 4, 2, 2.

Taps follow the benchmark's feature list: ``stage1`` after group 2 (12×16×16), ``stage2``
after group 3 (16×8×8), ``stage3`` after group 5 (48×4×4), ``stage4`` after group 7
(160×2×2); these are linear-bottleneck outputs (no ReLU after the projection, by design).
``embedding`` is the pooled 1280-vector.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Taps are taken after these groups (0-based), as the benchmark's feature list does.
_TAP_AFTER = (1, 2, 4, 6)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            *_conv_bn_relu(in_channels, hidden, 1),
            *_conv_bn_relu(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, expansion: int = 6, width: float = 0.5, num_classes: int = 100):
        super().__init__()
        channels = int(32 * width)
        self.stem = nn.Sequential(*_conv_bn_relu(3, channels, 3, stride=2))
        groups = []
        for t, c, n, s in _SETTINGS:
            t = expansion if t != 1 else 1
            out_channels = int(c * width)
            blocks = []
            for index in range(n):
                blocks.append(InvertedResidual(channels, out_channels, s if index == 0 else 1, t))
                channels = out_channels
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.ModuleList(groups)
        last = int(1280 * width) if width > 1.0 else 1280
        self.head = nn.Sequential(*_conv_bn_relu(channels, last, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        out = self.stem(x)
        for index, group in enumerate(self.groups):
            out = group(out)
            if index in _TAP_AFTER:
                taps[f"stage{len(taps) + 1}"] = out
        embedding = torch.flatten(self.pool(self.head(out)), 1)
        taps["embedding"] = embedding
        return self.classifier(embedding), taps

    def after_last_stage(self) -> nn.Module:
        """The modules that turn the last stage's map into logits (what SimKD reuses from a teacher)."""
        return nn.Sequential(self.head, self.pool, nn.Flatten(1), self.classifier)


def mobilenetv2(num_classes: int = 100) -> nn.Module:
    return MobileNetV2(expansion=6, width=0.5, num_classes=num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "mobilenetv2": (mobilenetv2, "MobileNetV2 ×0.5 for CIFAR (expansion 6, stride-2 stem, 1280-d head)"),
}
