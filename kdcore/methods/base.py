"""What a method file declares, and what its loss receives.

A method is one file in ``kdcore/methods/`` (or in a plugin package, registered under the
``kdcore.methods`` entry-point group) holding a module-level ``METHOD`` (or ``METHODS``, a tuple).
The web process reads these declarations to validate runs and draw the launch form, and it never
imports torch, so method files import torch inside the functions that train, not at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# Tap shapes by name, e.g. {"stage1": (16, 32, 32), "embedding": (64,)}, batch dimension left out.
TapShapes = dict[str, tuple[int, ...]]
LOGITS = "logits"  # what a method names to ask for the teacher's logits beside its taps


class Hyperparameters(BaseModel):
    """Base of every method's own hyperparameters: defaults, ranges and help text live on the fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoHyperparameters(Hyperparameters):
    pass


class TutorialWeights(Hyperparameters):
    """The tutorial's weighting: loss = ce_weight·CE + distill_weight·(the method's term)."""

    ce_weight: float = Field(0.75, ge=0, le=1000, description="Weight of the cross-entropy term")
    distill_weight: float = Field(0.25, ge=0, le=1000, description="Weight of the distillation term")

    @model_validator(mode="after")
    def _some_weight(self):
        if self.ce_weight + self.distill_weight <= 0:
            # Reported against a field, so that a form can show it beside one.
            error = PydanticCustomError("all_zero", "ce_weight and distill_weight cannot both be zero")
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=error, loc=("distill_weight",), input=self.distill_weight)])
        return self


SeedWeights = TutorialWeights  # its former name, which plugin packages may import


class TapChoice(NamedTuple):
    """The taps a method reads: from the student, and from the teacher (``LOGITS`` for its logits)."""

    student: tuple[str, ...] = ()
    teacher: tuple[str, ...] = ()


class Outputs(NamedTuple):
    """A model's logits and the taps the method asked for, by name; with ``views``, its ``Outputs`` on each
    extra view of the batch the method asked for (``Method.views``), by the view's name."""

    logits: Any
    taps: dict[str, Any]
    views: dict[str, Any] | None = None


# The extra augmented views a method may ask for (kdcore.training.views makes them on the device).
VIEW_NAMES = ("strong",)


class Progress(NamedTuple):
    """Where training stands, as 0-d device tensors so a loss can use them inside a CUDA graph.

    ``epoch`` counts from 1 and holds during an epoch; ``step`` counts optimiser steps from 0 over
    the whole run. Both are float tensors, ready for warm-up arithmetic.
    """

    epoch: Any
    step: Any
    epochs: int
    steps_per_epoch: int


def no_taps(student: TapShapes, teacher: TapShapes | None, params: Hyperparameters) -> TapChoice:
    return TapChoice()


def logits_only(student: TapShapes, teacher: TapShapes | None, params: Hyperparameters) -> TapChoice:
    return TapChoice(teacher=(LOGITS,))


@dataclass(frozen=True)
class Stage:
    """A pre-stage that a method runs before its main stage (FitNets' hint stage, AB's and FSP's
    initialisation, FT's paraphraser): its own loss, taps, trained parameters, epochs and optimiser.

    ``loss`` has ``Method.loss``'s signature and returns ``(total, terms)`` named by ``loss_terms``; its
    ``student`` is None when the stage neither trains the student nor reads its taps (FT's paraphraser
    learns from the teacher alone). ``taps`` defaults to the method's. The stage trains the method modules
    named in ``modules`` and, with ``trains_student``, the student's parameters that its loss reaches (its
    classifier does not: no gradient reaches it, so the optimiser leaves it as it is), by SGD at the
    hyperparameter ``lr_param`` with the stage's momentum and weight decay, for the hyperparameter
    ``epochs_param`` epochs (0 skips the stage). Its epochs are numbered 1..n of their own stage; the main
    stage's stay 1..epochs. A method with a pre-stage trains alone, not in a pack
    (kdcore.training.packing.key)."""

    name: str  # shown on the run page and in the epochs CSV, e.g. "init"
    loss: Callable[..., Any]
    loss_terms: tuple[str, ...]
    taps: Callable[[TapShapes, TapShapes | None, Hyperparameters], TapChoice] | None = None
    modules: tuple[str, ...] = ()
    trains_student: bool = False
    epochs_param: str = "init_epochs"
    lr_param: str = "init_lr"
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def epochs(self, params: Hyperparameters) -> int:
        return int(getattr(params, self.epochs_param))


@dataclass(frozen=True)
class Method:
    """One training method.

    ``loss(student, teacher, labels, params, progress, modules)`` gets the student's ``Outputs``,
    the teacher's ``Outputs`` (None without a teacher; its logits are None unless asked for), the
    labels, the run's hyperparameters, the ``Progress`` and the method's own modules (None when it
    has none), and returns ``(total, terms)``: the loss to minimise and the unweighted terms named by
    ``loss_terms``. It must not synchronise with the host.
    """

    name: str
    title: str
    description: str  # one line
    loss: Callable[..., Any]
    params: type[Hyperparameters] = NoHyperparameters
    loss_terms: tuple[str, ...] = ("ce",)
    needs_teacher: bool = False
    # Whether its runs can be distilled from (the teacher's own method).
    teaches: bool = False
    # Whether it is the baseline that distillation is measured against: the student trained alone.
    baseline: bool = False
    default_architecture: str = "tutorial_student"
    default_epochs: int = 20
    taps: Callable[[TapShapes, TapShapes | None, Hyperparameters], TapChoice] = no_taps
    # Trainable modules of the method's own (a regressor, a projector), built from the tap shapes.
    # They train with the student and are saved in its checkpoint, but are not deployed with it.
    modules: Callable[[TapShapes, TapShapes | None, Hyperparameters], Any] | None = None
    # Whether the method keeps state per training image (CRD's memory banks) or draws other images of the
    # training set (negatives). Then ``modules`` gets the keyword ``train_labels`` (the training split's labels
    # in order, a CPU long tensor, whose length sizes per-image buffers) and ``loss`` the keyword ``index`` (the
    # batch's positions in that split, a long tensor on the device). Buffers of the modules (a memory bank
    # updated in place) are saved in the checkpoint and kept per run in a pack.
    indexed: bool = False
    # Why its step synchronises with the host on a GPU, where a library call it needs does so (KDSVD:
    # torch's SVD reads its solver's status back); empty when it does not. Such steps are never captured
    # in a CUDA graph: they run eagerly, and the run's notes say why.
    host_sync: str = ""
    # A stage run before the main one, with its own loss, epochs and optimiser (None: none).
    pre_stage: Stage | None = None
    # Extra augmented views of each batch it needs (names in VIEW_NAMES): both networks then run on each
    # view too, and the loss finds their outputs in ``student.views`` and ``teacher.views``.
    views: tuple[str, ...] = ()
    # Those of ``loss_terms`` that are values it reports rather than loss terms (a learnt temperature):
    # averaged over each epoch's steps and stored as the terms are, but drawn on a chart of their own.
    reported: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = [v for v in self.views if v not in VIEW_NAMES]
        if unknown:
            raise ValueError(f"method {self.name!r} asks for unknown views {', '.join(unknown)}; "
                             f"there are: {', '.join(VIEW_NAMES)}")
        stray = [r for r in self.reported if r not in self.loss_terms]
        if stray:
            raise ValueError(f"method {self.name!r} reports {', '.join(stray)}, which are not among its loss_terms")
    # Parts taken from the loaded teacher (SimKD: its classifier head; OFD: margins from its batch norms):
    # teacher_parts(teacher, student_shapes, teacher_shapes, params) -> {name: nn.Module}. Each joins the
    # method's modules (an nn.ModuleDict, or None) as modules[name], a frozen copy that calls the part (its .part):
    # saved in the checkpoint with the other modules, no gradient step, eval mode (kdcore.training.teacher_parts).
    teacher_parts: Callable[[Any, TapShapes, TapShapes | None, Hyperparameters], dict] | None = None
    # What ships when more than the student's own network does (SimKD: its trunk, the projector and the
    # teacher's head): deployed(model, modules) -> the nn.Module that predicts, forward(images) -> (logits, taps).
    # Evaluation runs it and the deployed parameter count counts its parameters. None: the student alone.
    # Such a run trains alone, never in a pack (kdcore.training.packing.key).
    deployed: Callable[[Any, Any], Any] | None = None

    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params.model_fields)
