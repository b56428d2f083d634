"""The one place that knows which run kinds exist and what each one does.

Everything else asks the registry instead of branching on ``kind``. The registry is
torch-free: a method's loss function is named by import path and loaded on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Literal


@dataclass(frozen=True)
class Method:
    kind: str
    title: str
    description: str
    architecture: Literal["teacher", "student"]
    default_epochs: int
    needs_teacher: bool
    # Hyperparameters this method uses, with the seed's defaults. Others are rejected.
    params: dict[str, float] = field(default_factory=dict)
    # Names of the unweighted train-loss terms it reports; "loss" is always their weighted total.
    loss_terms: tuple[str, ...] = ("ce",)
    # What the student needs from the teacher: None, "logits" or "features".
    teacher_output: Literal["logits", "features"] | None = None
    # Whether the student carries a FitNets regressor (trained with it, not deployed).
    student_regressor: bool = False
    loss_ref: str = "kdcore.methods.supervised:loss"

    def loss_fn(self) -> Callable:
        module, _, name = self.loss_ref.partition(":")
        return getattr(importlib.import_module(module), name)


_DISTILL_WEIGHTS = {"ce_weight": 0.75, "distill_weight": 0.25}

METHODS: dict[str, Method] = {
    "teacher": Method(
        kind="teacher",
        title="Teacher",
        description="The deep CNN trained with cross-entropy alone.",
        architecture="teacher",
        default_epochs=20,
        needs_teacher=False,
    ),
    "student": Method(
        kind="student",
        title="Student (baseline)",
        description="The light CNN trained with cross-entropy alone, no teacher.",
        architecture="student",
        default_epochs=20,
        needs_teacher=False,
    ),
    "kd": Method(
        kind="kd",
        title="Soft targets (KD)",
        description="CE plus T²·KL between the teacher's and student's softened outputs.",
        architecture="student",
        default_epochs=10,
        needs_teacher=True,
        params={**_DISTILL_WEIGHTS, "temperature": 2.0},
        loss_terms=("ce", "soft_target"),
        teacher_output="logits",
        loss_ref="kdcore.methods.soft_targets:loss",
    ),
    "cosine": Method(
        kind="cosine",
        title="Cosine hidden representation",
        description="CE plus cosine embedding loss between flattened conv outputs "
        "(teacher's average-pooled from 2048 to 1024).",
        architecture="student",
        default_epochs=10,
        needs_teacher=True,
        params=dict(_DISTILL_WEIGHTS),
        loss_terms=("ce", "cosine"),
        teacher_output="features",
        loss_ref="kdcore.methods.cosine:loss",
    ),
    "fitnet": Method(
        kind="fitnet",
        title="FitNets regressor",
        description="CE plus MSE between a conv regressor on the student's feature map "
        "and the teacher's 32×8×8 feature map.",
        architecture="student",
        default_epochs=10,
        needs_teacher=True,
        params=dict(_DISTILL_WEIGHTS),
        loss_terms=("ce", "hint"),
        teacher_output="features",
        student_regressor=True,
        loss_ref="kdcore.methods.fitnet:loss",
    ),
}

KINDS: tuple[str, ...] = tuple(METHODS)
# The seed experiment, in launch order: the teacher first, since the rest distil from it.
EXPERIMENT_KINDS: tuple[str, ...] = ("teacher", "student", "kd", "cosine", "fitnet")

