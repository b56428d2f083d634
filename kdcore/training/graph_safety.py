"""Does a method's training step read anything back to the host?

A step that does (``.item()``, ``if tensor:``, ``nonzero`` or boolean-mask indexing, any shape that
depends on values) stalls the GPU every step and cannot be captured in a CUDA graph. On the "meta"
device tensors have shapes but no values, so such a step fails there at once, on any machine: one
forward, loss and backward of the method on meta tensors proves the step needs no host read.

    python -m kdcore.training.graph_safety METHOD [STUDENT_ARCH [TEACHER_ARCH]]

Before a run's steps are captured as a CUDA graph, the trainer asks ``graph_refusal``: the probe runs once
per method, hyperparameters and network pair in a process, and a step that fails it runs eagerly, the
probe's message in the run's notes, rather than failing inside a capture (or being captured wrongly).
"""

from __future__ import annotations

import json
import sys

import torch

from kdcore.architectures import canonical, catalog, registry
from kdcore.config import RunConfig
from kdcore.data.catalog import DEFAULT_NORMALIZATION
from kdcore.methods.base import LOGITS, Outputs, Progress
from kdcore.training.fallback import reason
from kdcore.training.method_calls import build_modules, method_loss
from kdcore.training.teacher_parts import with_teacher_parts

# The probe's verdict (None: passed; else its error) per (method, hyperparameters, student, teacher, classes).
_verdicts: dict[tuple, BaseException | None] = {}


class GraphSafetyError(RuntimeError):
    """The graph-safety probe failed: the step reads a value back to the host, or cannot run on meta tensors."""
from kdcore.training.views import with_views


def meta_step(kind: str, student: str | None = None, teacher: str | None = None, num_classes: int = 10,
              batch: int = 8, params: dict | None = None, pre_stage: bool = False) -> dict[str, tuple[int, ...]]:
    """One training step of ``kind`` (with its hyperparameters ``params``, else its defaults) on the meta
    device; returns the shapes of its loss terms. Raises (RuntimeError or NotImplementedError) where the
    step reads a value back to the host. ``pre_stage``: a step of the method's pre-stage
    (kdcore.methods.base.Stage) instead of its main stage."""
    config = RunConfig(kind=kind, **({"architecture": student} if student else {}),
                       **({"params": params} if params else {}))
    method = config.method
    teacher = canonical(teacher or "tutorial_teacher")
    shapes = {name: {tap: tuple(s) for tap, s in info["taps"].items()} for name, info in catalog(num_classes).items()}
    student_shapes = shapes[config.architecture]
    teacher_shapes = shapes[teacher] if method.needs_teacher else None
    stage = method.pre_stage if pre_stage else None
    wanted = (stage.taps or method.taps if stage else method.taps)(student_shapes, teacher_shapes, config.params)
    loss = stage.loss if stage else method.loss
    factories = registry()
    with torch.device("meta"):
        model = factories[config.architecture][0](num_classes)
        # A stand-in training set of 10 images per class for an indexed method's per-image buffers.
        modules = build_modules(method, student_shapes, teacher_shapes, config.params,
                                torch.arange(10 * num_classes, device="cpu") % num_classes)
        modules = modules.to("meta") if modules is not None else None  # what was built from the labels too
        images = torch.empty(batch, 3, 32, 32)
        labels = torch.zeros(batch, dtype=torch.long)
        progress = Progress(torch.ones(()), torch.zeros(()), config.epochs, 10)
        teacher_net = factories[teacher][0](num_classes).eval() if method.needs_teacher else None
        modules = with_teacher_parts(method, modules, teacher_net, student_shapes, teacher_shapes, config.params)

        def teacher_on(batch):
            if teacher_net is None:
                return None
            with torch.no_grad():
                t_logits, t_taps = teacher_net(batch)
            return Outputs(t_logits if LOGITS in wanted.teacher else None,
                           {t: t_taps[t] for t in wanted.teacher if t != LOGITS})

        teacher_out = teacher_on(images)

        def student_on(batch):
            logits, taps = model(batch)
            return Outputs(logits, {t: taps[t] for t in wanted.student})

        student_out = student_on(images)
        if method.views:  # made on the meta device too: a view that reads a value back fails here
            student_out, teacher_out = with_views(method.views, images, student_on, teacher_on, student_out,
                                                  teacher_out, normalization=DEFAULT_NORMALIZATION)
        total, terms = method_loss(method, student_out, teacher_out, labels, config.params, progress, modules,
                                   torch.arange(batch), loss=loss)
        total.backward()
    return {name: tuple(term.shape) for name, term in terms.items()}


def probe(kind: str, params: dict, student: str, teacher: str | None, num_classes: int,
          pre_stage: bool = False) -> BaseException | None:
    """``meta_step``'s verdict, once per process for each method, hyperparameters, network pair and stage: None
    when the step passed, else the error it raised."""
    key = (kind, json.dumps(params, sort_keys=True, default=str), student, teacher, num_classes, pre_stage)
    if key not in _verdicts:
        try:
            meta_step(kind, student, teacher, num_classes, params=params, pre_stage=pre_stage)
            _verdicts[key] = None
        except Exception as error:
            _verdicts[key] = error
    return _verdicts[key]


def graph_refusal(wanted: bool, config: RunConfig, teacher: str | None, num_classes: int,
                  pre_stage: bool = False) -> BaseException | None:
    """Why the run's steps must not be captured as a CUDA graph although they would be (``wanted``:
    steps.graphs_apply): the probe's failure for its method and networks (``teacher``: the teacher's network),
    or None. StepRunner then runs them eagerly and notes it, once a step has shown that the step itself works
    (a method's own bug is its own error, not a fallback)."""
    if not wanted:
        return None
    failure = probe(config.kind, config.params.model_dump(mode="json"), config.architecture, teacher, num_classes,
                    pre_stage)
    return None if failure is None else GraphSafetyError(f"the graph-safety probe failed ({reason(failure)})")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    terms = meta_step(*argv[:3])
    print(f"{argv[0]}: one step on meta tensors, no host read; loss terms {', '.join(terms)}")
    if RunConfig(kind=argv[0]).method.pre_stage is not None:
        terms = meta_step(*argv[:3], pre_stage=True)
        print(f"{argv[0]}: one step of its pre-stage on meta tensors, no host read; loss terms {', '.join(terms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
