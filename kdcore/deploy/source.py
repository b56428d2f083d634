"""The network a checkpoint ships, rebuilt on the CPU in float32: the run's own network, or what its method
deploys (SimKD: the student's trunk, its projector and the teacher's head), wrapped to return the logits alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kdcore.architectures import catalog, registry
from kdcore.config import RunConfig
from kdcore.data.catalog import Normalization
from kdcore.errors import CheckpointError
from kdcore.training.checkpoint import load_checkpoint, trained_normalization
from kdcore.training.method_calls import build_modules
from kdcore.training.networks import build_model
from kdcore.training.run_files import CHECKPOINT
from kdcore.training.teacher_parts import shipped, with_teacher_parts


class LogitsOnly(nn.Module):
    """Our networks return ``(logits, taps)``; an exported graph outputs the logits alone."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[0]


@dataclass
class Source:
    checkpoint: Path
    config: RunConfig
    num_classes: int
    classes: list[str]
    epoch: int
    final_accuracy: float | None  # the run's test accuracy at its last recorded epoch (None: best.pt has none)
    data_fingerprint: str | None
    shipped: nn.Module  # forward(images) -> (logits, taps), eval mode, CPU float32
    teacher_architecture: str | None  # the teacher whose parts ship with the student (SimKD's head), if any
    # What the network saw its inputs normalised with (None: not known, a teacher imported without a dataset).
    normalization: Normalization | None = None

    @property
    def network(self) -> LogitsOnly:
        return LogitsOnly(self.shipped).eval()

    @property
    def complete(self) -> bool:
        return self.epoch >= (self.config.epochs or 0)


def checkpoint_path(path: str | Path) -> Path:
    """A run folder names its ``checkpoint.pt``; a file names itself."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: give a run folder (holding {CHECKPOINT}) or a checkpoint file")
    return path


def load_source(path: str | Path) -> Source:
    file = checkpoint_path(path)
    payload = load_checkpoint(file)
    config = RunConfig.model_validate(payload["config"])
    num_classes = int(payload["num_classes"])
    model = build_model(config.architecture, num_classes, config.seed)
    model.load_state_dict(payload["model"])
    network, teacher_architecture = model, None
    if config.method.deployed is not None:
        network, teacher_architecture = _deployed(config, num_classes, model, payload.get("modules") or {}, file)
    network.float().eval()
    metrics = payload.get("metrics") or []
    return Source(checkpoint=file, config=config, num_classes=num_classes,
                  classes=list(payload.get("classes") or range(num_classes)), epoch=int(payload.get("epoch") or 0),
                  final_accuracy=metrics[-1]["test_accuracy"] if metrics else None,
                  data_fingerprint=payload.get("data_fingerprint"), shipped=network,
                  teacher_architecture=teacher_architecture, normalization=trained_normalization(payload))


def _deployed(config: RunConfig, num_classes: int, model: nn.Module, saved: dict, file: Path):
    """The method's shipped module with the checkpoint's weights. Its parts taken from the teacher (SimKD's head)
    are rebuilt from the teacher's network, which the checkpoint does not name: it is the network whose parts and
    modules have exactly the saved names and shapes."""
    method = config.method
    if method.indexed:
        raise CheckpointError(f"{file}: method {method.name!r} keeps per-image state; its deployed student "
                              "cannot be rebuilt without the training data")
    described = catalog(num_classes)
    wanted = {name: tuple(value.shape) for name, value in saved.items()}
    candidates = list(registry()) if method.needs_teacher else [None]
    for teacher_name in candidates:
        if teacher_name is not None and teacher_name not in described:
            continue
        try:
            network, modules = shipped_structure(config, num_classes, model, teacher_name, described)
        except Exception:
            continue  # this network cannot be the teacher (no head to reuse, another shape)
        found = {name: tuple(value.shape) for name, value in (modules.state_dict() if modules is not None else {}).items()}
        if found == wanted:
            if modules is not None:
                modules.load_state_dict(saved)
            return network, teacher_name
    raise CheckpointError(f"{file}: no network here has the teacher parts and modules this {method.name!r} "
                          "checkpoint saved, so its deployed student cannot be rebuilt")


def shipped_structure(config: RunConfig, num_classes: int, model: nn.Module, teacher_name: str | None,
                      described: dict | None = None) -> tuple[nn.Module, nn.Module | None]:
    """The module the run's method ships around ``model`` (and the method's modules, teacher parts included, built
    for the teacher network ``teacher_name``), with whatever weights they were built with."""
    method = config.method
    if method.deployed is None:
        return model, None
    described = described or catalog(num_classes)
    student_shapes = _shapes(described, config.architecture)
    teacher_shapes = _shapes(described, teacher_name) if teacher_name else None
    modules = build_modules(method, student_shapes, teacher_shapes, config.params, train_labels=None)
    teacher = build_model(teacher_name, num_classes, 0) if teacher_name else None
    modules = with_teacher_parts(method, modules, teacher, student_shapes, teacher_shapes, config.params)
    return shipped(method, model, modules), modules


def _shapes(described: dict, name: str) -> dict[str, tuple[int, ...]]:
    return {tap: tuple(shape) for tap, shape in described[name]["taps"].items()}
