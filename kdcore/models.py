"""The seed experiment's two CNNs.

Both return ``(logits, feature_map)``: the feature map is the conv stack's output
(teacher 32×8×8, student 16×8×8), which the hidden-representation methods distil.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from kdcore.registry import Method


class Teacher(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 128, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, num_classes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.features(x)
        return self.classifier(torch.flatten(feature_map, 1)), feature_map


class Student(nn.Module):
    """The light CNN. With ``regressor=True`` it carries the FitNets Conv(16→32) hint regressor.

    The regressor is built between the conv stack and the classifier, as in the seed, so that
    ``torch.manual_seed`` gives the classifier the same initial weights the seed's model gets.
    """

    def __init__(self, num_classes: int = 10, regressor: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.regressor = nn.Conv2d(16, 32, kernel_size=3, padding=1) if regressor else None
        self.classifier = nn.Sequential(
            nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_classes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(logits, feature_map)``, plus the regressor's hint map when there is a regressor."""
        feature_map = self.features(x)
        logits = self.classifier(torch.flatten(feature_map, 1))
        if self.regressor is None:
            return logits, feature_map
        return logits, feature_map, self.regressor(feature_map)


_seeding = threading.Lock()


def build_model(method: Method, num_classes: int, seed: int) -> nn.Module:
    # The global RNG is shared by threads: seeding and initialising must not interleave.
    with _seeding:
        torch.manual_seed(seed)
        if method.architecture == "teacher":
            return Teacher(num_classes)
        return Student(num_classes, regressor=method.student_regressor)


def deployed_parameters(model: nn.Module) -> int:
    """Parameters of the model as deployed: a FitNets regressor only exists for training."""
    regressor = getattr(model, "regressor", None)
    extra = sum(p.numel() for p in regressor.parameters()) if regressor is not None else 0
    return sum(p.numel() for p in model.parameters()) - extra
