"""Parts of the teacher a method reuses (``Method.teacher_parts``) and the student as it ships
(``Method.deployed``): what engine.train, the packed trainer and the graph-safety probe share."""

from __future__ import annotations

import copy

import torch
from torch import nn

from kdcore.errors import ConfigError


class Frozen(nn.Module):
    """A part taken from the teacher: no gradient step and eval mode, whatever its owner is set to, so that a
    reused batch norm keeps the teacher's statistics and a dropout stays off."""

    def __init__(self, part: nn.Module):
        super().__init__()
        self.part = part.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)

    def forward(self, *args, **kwargs):
        return self.part(*args, **kwargs)


def with_teacher_parts(method, modules: nn.Module | None, teacher: nn.Module | None, student_shapes: dict,
                       teacher_shapes: dict | None, params) -> nn.Module | None:
    """The method's modules with its teacher parts added, each a frozen copy the run owns (its checkpoint holds
    them); ``modules`` itself where the method takes none."""
    if method.teacher_parts is None or teacher is None:
        return modules
    parts = method.teacher_parts(teacher, student_shapes, teacher_shapes, params)
    if modules is None:
        modules = nn.ModuleDict()
    if not isinstance(modules, nn.ModuleDict):
        raise ConfigError(f"method {method.name!r} takes teacher parts, so its modules must be an nn.ModuleDict")
    for name, part in parts.items():
        if name in modules:
            raise ConfigError(f"method {method.name!r}: teacher part {name!r} has the name of one of its modules")
        modules[name] = Frozen(copy.deepcopy(part))
    return modules


def shipped(method, model: nn.Module, modules: nn.Module | None) -> nn.Module:
    """The module that predicts as the student ships: what evaluation runs and the parameter count counts."""
    return method.deployed(model, modules) if method.deployed is not None else model


def trainable(*modules: nn.Module | None) -> list[torch.Tensor]:
    """The parameters the optimiser steps: a frozen teacher part's are left out."""
    return [p for module in modules if module is not None for p in module.parameters() if p.requires_grad]
