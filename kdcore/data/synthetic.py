"""Small deterministic image data for tests and demos.

Each class is a fixed random low-frequency colour pattern; every image is its class's
pattern, shifted by a few pixels, dimmed or brightened, plus noise. A CNN learns it in
an epoch or two, well above chance, but not perfectly at first.
"""

from __future__ import annotations

import numpy as np

from kdcore.data.catalog import GENERATED_TRAIN_SIZES

# Images per split, by class count: 200 / 50 per class for 10 classes, 50 / 10 for 100.
SIZES = {10: (GENERATED_TRAIN_SIZES["synthetic"], 500), 100: (GENERATED_TRAIN_SIZES["synthetic100"], 1000)}


def _split(templates: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    num_classes = len(templates)
    labels = np.arange(count) % num_classes
    rng.shuffle(labels)
    images = np.empty((count, 3, 32, 32), dtype=np.uint8)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-3, 4, size=2)
        pattern = np.roll(templates[label], (dy, dx), axis=(1, 2)) * rng.uniform(0.7, 1.3)
        noisy = pattern + rng.normal(0, 45, size=pattern.shape)
        images[i] = np.clip(noisy + 128, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def generate(num_classes: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024 if num_classes == 10 else 2024 + num_classes)
    coarse = rng.normal(0, 6, size=(num_classes, 3, 4, 4))
    templates = coarse.repeat(8, axis=2).repeat(8, axis=3)
    train_size, test_size = SIZES[num_classes]
    train_x, train_y = _split(templates, train_size, rng)
    test_x, test_y = _split(templates, test_size, rng)
    return train_x, train_y, test_x, test_y
