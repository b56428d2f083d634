"""Named recipes a run can start from (``--preset``, the form's Preset); fields given beside a preset win
over it. Torch-free: the configuration (kdcore.config) reads them."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The CIFAR-100 KD benchmark of Tian et al. (CRD, ICLR 2020), which later KD papers reuse.
    "crd-cifar": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 240,
                  "batch_size": 64, "schedule": "step", "milestones": (150, 180, 210), "lr_decay": 0.1,
                  "augment": True},
}
PRESET_TITLES = {"crd-cifar": "CIFAR KD benchmark (CRD): SGD 0.05, momentum 0.9, weight decay 5e-4, "
                              "240 epochs, ×0.1 at 150/180/210, crop + flip"}
