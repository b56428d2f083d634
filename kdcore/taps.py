"""Do a run's networks have the taps its method reads? Asked when a run is launched (the API, the form, a
study), from the architecture catalog's tap shapes, so that a network without them is refused with its name
and the tap's before anything is queued; and asked again by the trainer, which gets the same answer.

Torch-free: the web process asks it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from kdcore.architectures import canonical, catalog
from kdcore.errors import ConfigError
from kdcore.methods.base import LOGITS, Hyperparameters, Method, TapChoice, TapShapes

Side = Literal["student", "teacher"]


class TapProblem(NamedTuple):
    side: Side  # whose network lacks it: the run's own (architecture) or its teacher's
    message: str


class TapError(ConfigError):
    def __init__(self, problems: list[TapProblem]):
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


def _listed(shapes: TapShapes | None) -> str:
    return ", ".join(shapes or ()) or "none"


def choose_taps(method: Method, params: Hyperparameters, student: str, student_shapes: TapShapes,
                teacher: str | None, teacher_shapes: TapShapes | None, pre_stage: bool = False) -> TapChoice:
    """The taps ``method`` (or with ``pre_stage`` its pre-stage) reads from the ``student`` and ``teacher``
    networks (their names, for the message), or a TapError naming each network and tap it lacks."""
    choose = (method.pre_stage.taps or method.taps) if pre_stage else method.taps
    try:
        wanted = choose(student_shapes, teacher_shapes, params)
    except Exception as exc:  # a method's choice that assumes taps these networks lack (e.g. no "stage" maps)
        pair = f"network {student!r} (taps: {_listed(student_shapes)})" + (
            f" and teacher network {teacher!r} (taps: {_listed(teacher_shapes)})" if teacher else "")
        raise TapError([TapProblem("student", f"method {method.name!r} cannot choose its taps from {pair}: "
                                              f"{type(exc).__name__}: {exc}")]) from exc
    problems = [TapProblem("student", f"network {student!r} has no tap {tap!r}, which method {method.name!r} "
                                      f"reads (its taps: {_listed(student_shapes)})")
                for tap in wanted.student if tap not in student_shapes]
    problems += [TapProblem("teacher", f"teacher network {teacher!r} has no tap {tap!r}, which method "
                                       f"{method.name!r} reads (its taps: {_listed(teacher_shapes)})")
                 for tap in wanted.teacher if tap != LOGITS and tap not in (teacher_shapes or {})]
    if problems:
        raise TapError(problems)
    return wanted


def tap_problems(method: Method, params: Hyperparameters, student: str, teacher: str | None,
                 num_classes: int) -> list[TapProblem]:
    """What ``choose_taps`` would refuse for these networks by name, from the catalog at ``num_classes``;
    nothing where a network is unknown or a needed teacher is not given (each reported as such instead)."""
    if method.needs_teacher and not teacher:
        return []  # the missing teacher is the problem to report
    described = catalog(num_classes)
    student, teacher = canonical(student), canonical(teacher) if method.needs_teacher else None
    if student not in described or (teacher is not None and teacher not in described):
        return []
    shapes = {name: {tap: tuple(shape) for tap, shape in described[name]["taps"].items()}
              for name in (student, teacher) if name}
    try:
        choose_taps(method, params, student, shapes[student], teacher, shapes.get(teacher))
        if method.pre_stage is not None:
            choose_taps(method, params, student, shapes[student], teacher, shapes.get(teacher), pre_stage=True)
    except TapError as error:
        return error.problems
    return []
