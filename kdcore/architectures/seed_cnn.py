"""The seed experiment's two CNNs. Their taps: ``stage1`` after the first pooling, ``stage2`` the conv
stack's output (teacher 32×8×8, student 16×8×8) that the seed's cosine and FitNets read, and
``embedding`` the flattened map the classifier receives."""

from __future__ import annotations

import torch
from torch import nn


class _SeedCNN(nn.Module):
    def __init__(self, stage1: list[nn.Module], stage2: list[nn.Module], classifier: list[nn.Module]):
        super().__init__()
        # One Sequential, as in the seed, so that checkpoints keep their key names (features.N.*).
        self.features = nn.Sequential(*stage1, *stage2)
        self.split = len(stage1)
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x: torch.Tensor):
        stage1 = self.features[: self.split](x)
        stage2 = self.features[self.split :](stage1)
        embedding = torch.flatten(stage2, 1)
        return self.classifier(embedding), {"stage1": stage1, "stage2": stage2, "embedding": embedding}


def seed_teacher(num_classes: int = 10) -> nn.Module:
    return _SeedCNN(
        [nn.Conv2d(3, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)],
        [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)],
        [nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, num_classes)],
    )


def seed_student(num_classes: int = 10) -> nn.Module:
    return _SeedCNN(
        [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)],
        [nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)],
        [nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_classes)],
    )


ARCHITECTURES = {
    "seed_teacher": (seed_teacher, "The seed's teacher CNN: four 3×3 convs (128-64-64-32), two poolings, MLP 512"),
    "seed_student": (seed_student, "The seed's student CNN: two 3×3 convs (16-16), two poolings, MLP 256"),
}
