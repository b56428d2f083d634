"""The shape most CIFAR networks share: a stem, stages (each one tap), an embedding, a linear classifier."""

from __future__ import annotations

import torch
from torch import nn


class StagedNet(nn.Module):
    """Subclasses set ``stem``, ``stages`` (a ModuleList), ``pool`` and ``fc``, and may override ``embed``.

    A subclass whose stages end in an activation may leave that activation to this class (its stages' last
    blocks omit it) by setting ``activation``: the map before it is then a tap too, ``pre_stage1``… (what OFD and
    ReviewKD distil from a teacher; mdistiller's ``preact_feats``).
    """

    def __init__(self):
        super().__init__()
        self.activation: nn.Module | None = None

    def embed(self, out: torch.Tensor) -> torch.Tensor:
        """The pooled vector the classifier receives."""
        return torch.flatten(self.pool(out), 1)

    def after_last_stage(self) -> nn.Module:
        """This network's own modules that turn its last stage's map into logits (what SimKD reuses from a
        teacher); a subclass that overrides ``embed`` overrides this too."""
        return nn.Sequential(self.pool, nn.Flatten(1), self.fc)

    def pre_activation_norms(self) -> dict[str, nn.BatchNorm2d]:
        """The batch norm whose output each ``pre_stage`` tap's activation mostly receives (OFD's margins)."""
        return {}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        out = self.stem(x)
        for index, stage in enumerate(self.stages, start=1):
            out = stage(out)
            if self.activation is not None:
                taps[f"pre_stage{index}"] = out
                out = self.activation(out)
            taps[f"stage{index}"] = out
        embedding = self.embed(out)
        taps["embedding"] = embedding
        return self.fc(embedding), taps
