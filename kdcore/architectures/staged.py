"""The shape most CIFAR networks share: a stem, stages (each one tap), an embedding, a linear classifier."""

from __future__ import annotations

import torch
from torch import nn


class StagedNet(nn.Module):
    """Subclasses set ``stem``, ``stages`` (a ModuleList), ``pool`` and ``fc``, and may override ``embed``."""

    def embed(self, out: torch.Tensor) -> torch.Tensor:
        """The pooled vector the classifier receives."""
        return torch.flatten(self.pool(out), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        out = self.stem(x)
        for index, stage in enumerate(self.stages, start=1):
            out = stage(out)
            taps[f"stage{index}"] = out
        embedding = self.embed(out)
        taps["embedding"] = embedding
        return self.fc(embedding), taps
