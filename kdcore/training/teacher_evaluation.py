"""A teacher checkpoint's accuracy on a dataset's test split, as this project's KD runs will see it: the same
loader, normalisation and evaluation as training (kdcore.training.engine.evaluate). What an imported teacher
is registered with (app.teachers), whatever figure its source reported."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from kdcore.data.loader import load_dataset
from kdcore.training.checkpoint import load_teacher
from kdcore.training.device_data import Split
from kdcore.training.engine import deployed_parameters, evaluate, resolve_device


@dataclass
class TeacherEvaluation:
    test_accuracy: float
    test_loss: float
    parameters: int
    seconds: float
    device: str


def evaluate_teacher(checkpoint: str | os.PathLike, dataset: str, data_root: str | os.PathLike | None = None,
                     device: str = "auto") -> TeacherEvaluation:
    """Load ``checkpoint`` as a KD run loads its teacher (its class count checked against the dataset's) and
    measure it on the whole test split of ``dataset``."""
    started = time.perf_counter()
    data = load_dataset(dataset, data_root)
    where = resolve_device(device)
    model = load_teacher(checkpoint, data.num_classes, where)
    test_loss, test_accuracy = evaluate(model, Split(data.test_x, data.test_y, where, resident=True))
    return TeacherEvaluation(test_accuracy=test_accuracy, test_loss=test_loss, parameters=deployed_parameters(model),
                             seconds=time.perf_counter() - started, device=str(where))
