"""The tutorial experiment's two CNNs, with the taps interface: ``tutorial_teacher`` and ``tutorial_student``
(formerly ``seed_teacher`` and ``seed_student``, names that still work: kdcore.architectures.ALIASES).

Built exactly like the tutorial's ``Teacher`` / ``Student(regressor=False)`` (bench/seed_loop.py) (same modules, in
the same order, under the same names), so ``torch.manual_seed(s)`` gives bit-identical initial
weights and their state dicts (and existing checkpoints) are interchangeable. The FitNets hint
regressor is not part of the student: it belongs to the method that trains it.

Taps: ``stage1`` after the first max-pool (teacher 64×16×16, student 16×16×16), ``stage2`` the
conv stack's output that the tutorial's cosine / FitNets losses use (teacher 32×8×8, student
16×8×8), ``embedding`` the flattened conv output the classifier receives (2048 / 1024);
``pre_stage1`` and ``pre_stage2`` are the stages before their last ReLU (max-pooled like the stage:
pooling commutes with the ReLU, so the ReLU of the tap is the stage's output).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class _TutorialCNN(nn.Module):
    features: nn.Sequential
    classifier: nn.Sequential
    # Index in ``features`` of the first max-pool: stage1 is its output.
    _stage1_end: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        out = pre = x
        for index, layer in enumerate(self.features):
            if isinstance(layer, nn.ReLU):
                pre = out
            out = layer(out)
            if isinstance(layer, nn.MaxPool2d):
                pre = layer(pre)
            if index == self._stage1_end:
                taps["pre_stage1"], taps["stage1"] = pre, out
        taps["pre_stage2"], taps["stage2"] = pre, out
        embedding = torch.flatten(out, 1)
        taps["embedding"] = embedding
        return self.classifier(embedding), taps

    def after_last_stage(self) -> nn.Module:
        """The modules that turn the last stage's map into logits (what SimKD reuses from a teacher)."""
        return nn.Sequential(nn.Flatten(1), self.classifier)


class TutorialTeacher(_TutorialCNN):
    _stage1_end = 4

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


class TutorialStudent(_TutorialCNN):
    _stage1_end = 2

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_classes)
        )


def tutorial_teacher(num_classes: int = 10) -> nn.Module:
    return TutorialTeacher(num_classes)


def tutorial_student(num_classes: int = 10) -> nn.Module:
    return TutorialStudent(num_classes)


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "tutorial_teacher": (tutorial_teacher, "The tutorial's teacher CNN: 4 convs (128/64/64/32), 2 max-pools, MLP 2048→512→classes"),
    "tutorial_student": (tutorial_student, "The tutorial's light student CNN: 2 convs (16/16), 2 max-pools, MLP 1024→256→classes"),
}
