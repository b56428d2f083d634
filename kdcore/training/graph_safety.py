"""Does a method's training step read anything back to the host?

A step that does (``.item()``, ``if tensor:``, ``nonzero`` or boolean-mask indexing, any shape that
depends on values) stalls the GPU every step and cannot be captured in a CUDA graph. On the "meta"
device tensors have shapes but no values, so such a step fails there at once, on any machine: one
forward, loss and backward of the method on meta tensors proves the step needs no host read.

    python -m kdcore.training.graph_safety METHOD [STUDENT_ARCH [TEACHER_ARCH]]
"""

from __future__ import annotations

import sys

import torch

from kdcore.architectures import canonical, catalog, registry
from kdcore.config import RunConfig
from kdcore.methods.base import LOGITS, Outputs, Progress
from kdcore.training.views import with_views


def meta_step(kind: str, student: str | None = None, teacher: str | None = None, num_classes: int = 10,
              batch: int = 8) -> dict[str, tuple[int, ...]]:
    """One training step of ``kind`` on the meta device; returns the shapes of its loss terms.
    Raises (RuntimeError or NotImplementedError) where the step reads a value back to the host."""
    config = RunConfig(kind=kind, **({"architecture": student} if student else {}))
    method = config.method
    teacher = canonical(teacher or "tutorial_teacher")
    shapes = {name: {tap: tuple(s) for tap, s in info["taps"].items()} for name, info in catalog(num_classes).items()}
    student_shapes = shapes[config.architecture]
    teacher_shapes = shapes[teacher] if method.needs_teacher else None
    wanted = method.taps(student_shapes, teacher_shapes, config.params)
    factories = registry()
    with torch.device("meta"):
        model = factories[config.architecture][0](num_classes)
        modules = method.modules(student_shapes, teacher_shapes, config.params) if method.modules else None
        images = torch.empty(batch, 3, 32, 32)
        labels = torch.zeros(batch, dtype=torch.long)
        progress = Progress(torch.ones(()), torch.zeros(()), config.epochs, 10)
        teacher_net = factories[teacher][0](num_classes).eval() if method.needs_teacher else None

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
                                                  teacher_out)
        total, terms = method.loss(student_out, teacher_out, labels, config.params, progress, modules)
        total.backward()
    return {name: tuple(term.shape) for name, term in terms.items()}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    terms = meta_step(*argv[:3])
    print(f"{argv[0]}: one step on meta tensors, no host read; loss terms {', '.join(terms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
