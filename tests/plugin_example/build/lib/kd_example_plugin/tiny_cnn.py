"""A tiny CNN: two conv stages and a linear classifier."""

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x):
        stage1 = self.stage1(x)
        stage2 = self.stage2(stage1)
        embedding = torch.flatten(stage2, 1)
        return self.classifier(embedding), {"stage1": stage1, "stage2": stage2, "embedding": embedding}


ARCHITECTURES = {"tiny_cnn": (TinyCNN, "Two 3×3 conv stages (8, 16 channels) and a linear classifier")}
