"""Which taps a method reads for "pre-activation" features (OFD, ReviewKD): each stage's map before its final
ReLU (``pre_stageN``) where the architecture gives it, else the stage's output, which in the networks that give
none has no activation at its end anyway (a wide ResNet's residual sum, a MobileNetV2 linear bottleneck)."""

from __future__ import annotations


def stage_names(shapes) -> list[str]:
    return [name for name in shapes if name.startswith("stage")]


def pre_activation_stages(shapes) -> list[str]:
    return [f"pre_{name}" if f"pre_{name}" in shapes else name for name in stage_names(shapes)]


def paired_from_the_end(student: list[str], teacher: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The last min(len) names of each: networks of different depths pair their deepest stages."""
    count = min(len(student), len(teacher))
    return tuple(student[len(student) - count:]), tuple(teacher[len(teacher) - count:])
