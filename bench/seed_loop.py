"""The seed tutorial's pipeline, kept as the baseline the engine is measured against.

A torchvision-style dataset decoding each image through PIL with ToTensor + Normalize, a
DataLoader (batch 32, shuffled, 2 workers), the teacher run online in every KD step and
``loss.item()`` every step: the seed's loops, with its loss expressions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms

NORMALIZE = transforms.Compose([
    transforms.ToTensor(), transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
])


class ArrayImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, images_chw: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images_chw.transpose(0, 2, 3, 1), labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return NORMALIZE(Image.fromarray(self.images[index])), int(self.labels[index])


class Teacher(nn.Module):
    """The seed's teacher CNN, as the tutorial defines it: ``(logits, feature_map)``."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 128, kernel_size=3, padding=1), nn.ReLU(), nn.Conv2d(128, 64, kernel_size=3, padding=1),
            nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2), nn.Conv2d(64, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2))
        self.classifier = nn.Sequential(nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, num_classes))

    def forward(self, x):
        feature_map = self.features(x)
        return self.classifier(torch.flatten(feature_map, 1)), feature_map


class Student(nn.Module):
    """The seed's student CNN; with ``regressor`` the FitNets hint regressor, inside the student as the
    tutorial has it: ``(logits, feature_map[, hint])``."""

    def __init__(self, num_classes: int = 10, regressor: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2))
        self.regressor = nn.Conv2d(16, 32, kernel_size=3, padding=1) if regressor else None
        self.classifier = nn.Sequential(nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_classes))

    def forward(self, x):
        feature_map = self.features(x)
        logits = self.classifier(torch.flatten(feature_map, 1))
        return (logits, feature_map) if self.regressor is None else (logits, feature_map, self.regressor(feature_map))


def loader(images, labels, batch_size=32, shuffle=True, workers=2):
    return torch.utils.data.DataLoader(ArrayImages(images, labels), batch_size=batch_size, shuffle=shuffle,
                                       num_workers=workers, persistent_workers=False)


def train_epoch(kind: str, student, teacher, train_loader, optimizer, device, T=2.0, ce_w=0.75, d_w=0.25):
    """One epoch of the seed's loop for ``kind``; returns the mean loss as the seed logs it."""
    ce_loss, cosine_loss, mse_loss = nn.CrossEntropyLoss(), nn.CosineEmbeddingLoss(), nn.MSELoss()
    student.train()
    running_loss = 0.0
    for inputs, labels in train_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        logits, feature_map, *hint = student(inputs)
        if kind in ("teacher", "student"):
            loss = ce_loss(logits, labels)
        else:
            with torch.no_grad():
                teacher_logits, teacher_map = teacher(inputs)
            label_loss = ce_loss(logits, labels)
            if kind == "kd":
                soft_targets = F.softmax(teacher_logits / T, dim=-1)
                soft_prob = F.log_softmax(logits / T, dim=-1)
                extra = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (T**2)
            elif kind == "cosine":
                teacher_rep = F.avg_pool1d(torch.flatten(teacher_map, 1), 2)
                extra = cosine_loss(torch.flatten(feature_map, 1), teacher_rep,
                                    target=torch.ones(inputs.size(0)).to(device))
            else:
                extra = mse_loss(hint[0], teacher_map)
            loss = d_w * extra + ce_w * label_loss
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    return running_loss / len(train_loader)


def test_accuracy(model, test_loader, device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in test_loader:
            inputs, labels = inputs.to(device), labels.to(device)
            predicted = model(inputs)[0].argmax(1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return correct / total
