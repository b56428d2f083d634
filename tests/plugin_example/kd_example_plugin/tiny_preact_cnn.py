"""A tiny CNN that gives what OFD, ReviewKD and SimKD ask of a network beyond its taps: each stage's map before its
ReLU (``pre_stage1``, ``pre_stage2``), the batch norms before those ReLUs, and the modules after its last stage."""

import torch
from torch import nn


class TinyPreactCNN(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8))
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        pre1 = self.stage1(x)
        stage1 = torch.relu(pre1)
        pre2 = self.stage2(stage1)
        stage2 = torch.relu(pre2)
        embedding = torch.flatten(self.pool(stage2), 1)
        return self.classifier(embedding), {"pre_stage1": pre1, "stage1": stage1, "pre_stage2": pre2,
                                            "stage2": stage2, "embedding": embedding}

    def pre_activation_norms(self):
        return {"pre_stage1": self.stage1[1], "pre_stage2": self.stage2[1]}

    def after_last_stage(self):
        return nn.Sequential(self.pool, nn.Flatten(1), self.classifier)


ARCHITECTURES = {"tiny_preact_cnn": (TinyPreactCNN, "Two strided conv-BN stages (8, 16 channels), with "
                                                     "pre-activation taps")}
