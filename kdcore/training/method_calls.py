"""How the training code calls a method's ``modules`` and ``loss``, with what its declaration asks for beyond
taps: an indexed method (``Method.indexed``) gets the training labels when its modules are built and the
batch's dataset indices at each step. The engine, both pack steps and the graph-safety probe call it alike."""

from __future__ import annotations

import numpy as np
import torch

from kdcore.methods.base import Method


def build_modules(method: Method, student_shapes, teacher_shapes, params, train_labels) -> torch.nn.Module | None:
    """The method's own modules (None when it has none). ``train_labels``: the training split's labels in order
    (numpy or torch), handed over as a CPU long tensor to an indexed method."""
    if method.modules is None:
        return None
    if not method.indexed:
        return method.modules(student_shapes, teacher_shapes, params)
    # On the CPU explicitly: the graph-safety probe builds modules under a meta default device.
    labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long, device="cpu")
    return method.modules(student_shapes, teacher_shapes, params, train_labels=labels)


def method_loss(method: Method, student, teacher, labels, params, progress, modules, index: torch.Tensor,
                loss=None):
    """``method.loss`` (or ``loss``, its pre-stage's) on one run's batch; ``index``: the batch's positions in
    the training split."""
    extra = {"index": index} if method.indexed else {}
    return (loss or method.loss)(student, teacher, labels, params, progress, modules, **extra)
