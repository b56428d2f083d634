"""The training loop: one importable function that reports through callbacks.

No printing and no storage beyond the run's own output folder (checkpoint.pt and
metrics.json, both written atomically each epoch).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from kdcore.checkpoint import load_checkpoint, load_teacher, save_checkpoint
from kdcore.config import RunConfig
from kdcore.data.catalog import cache_dir, file_sha256
from kdcore.data.loader import load_dataset
from kdcore.device_data import Split
from kdcore.errors import ConfigError, NonFiniteLoss, RunCancelled
from kdcore.models import build_model, deployed_parameters
from kdcore.run_files import CHECKPOINT, METRICS
from kdcore.steps import StepRunner
from kdcore.teacher_cache import OUTPUTS, teacher_outputs


@dataclass
class StepProgress:
    epoch: int
    epochs: int
    step: int
    steps: int


@dataclass
class EpochMetrics:
    epoch: int
    epochs: int
    train_loss: float
    train_terms: dict[str, float]
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_sec: float


@dataclass
class RunResult:
    final_accuracy: float
    best_accuracy: float
    best_epoch: int
    parameters: int
    seconds: float
    checkpoint: str
    device: str
    epochs: list[EpochMetrics] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is visible")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def train(
    config: RunConfig, *, out_dir: str | os.PathLike, data_root: str | os.PathLike | None = None,
    teacher_checkpoint: str | os.PathLike | None = None, resume: bool = False,
    on_step: Callable[[StepProgress], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    method, out_dir = config.method, Path(out_dir)
    if method.needs_teacher and teacher_checkpoint is None:
        raise ConfigError(f"a {config.kind!r} run distils from a teacher: give a teacher checkpoint")
    if not method.needs_teacher and teacher_checkpoint is not None:
        raise ConfigError(f"a {config.kind!r} run trains without a teacher; do not give one")
    device = resolve_device(config.device)
    dataset = load_dataset(config.dataset, data_root, config.subset)
    teacher = load_teacher(teacher_checkpoint, dataset.num_classes, device) if method.needs_teacher else None
    notes = [dataset.note] if dataset.note else []
    use_graph = device.type == "cuda" and config.cuda_graphs and config.resident_data
    if device.type == "cuda" and not torch.backends.cudnn.deterministic:
        torch.backends.cudnn.benchmark = True

    model = build_model(method, dataset.num_classes, config.seed).to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    cuda_options = {"fused": True, "capturable": True} if device.type == "cuda" else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, **cuda_options)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[EpochMetrics] = []
    if resume:
        history = _restore(out_dir / CHECKPOINT, config, model, optimizer, shuffle)

    train_split = Split(dataset.train_x, dataset.train_y, device, config.resident_data)
    test_split = Split(dataset.test_x, dataset.test_y, device, config.resident_data)
    targets = _teacher_targets(config, teacher, teacher_checkpoint, train_split, dataset.fingerprint, data_root)
    runner = StepRunner(model, optimizer, method.loss_fn(), config, train_split, targets,
                        len(method.loss_terms), use_graph)
    steps = math.ceil(len(train_split) / config.batch_size)
    started = time.perf_counter()
    for epoch in range(len(history) + 1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_split), generator=shuffle).to(device)
        for step in range(steps):
            runner.step(order[step * config.batch_size : (step + 1) * config.batch_size])
            if on_step:
                on_step(StepProgress(epoch, config.epochs, step + 1, steps))
            if should_stop and should_stop():
                raise RunCancelled(f"cancelled during epoch {epoch}")
        sums = (runner.take_sums() / steps).tolist()
        train_seconds = time.perf_counter() - epoch_start
        if not all(math.isfinite(v) for v in sums):
            raise NonFiniteLoss(f"training loss became non-finite in epoch {epoch} ({sums[0]})")
        test_loss, test_accuracy = evaluate(model, test_split)
        metrics = EpochMetrics(
            epoch, config.epochs, sums[0], dict(zip(method.loss_terms, sums[1:])), test_loss, test_accuracy,
            time.perf_counter() - epoch_start, len(train_split) / train_seconds,
        )
        history.append(metrics)
        _save(out_dir, config, dataset, model, optimizer, shuffle, history)
        if on_epoch:
            on_epoch(metrics)
    best = max(history, key=lambda m: m.test_accuracy)
    return RunResult(
        final_accuracy=history[-1].test_accuracy, best_accuracy=best.test_accuracy, best_epoch=best.epoch,
        parameters=deployed_parameters(model), seconds=time.perf_counter() - started,
        checkpoint=str(out_dir / CHECKPOINT), device=str(device), epochs=history, notes=notes,
    )


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: Split) -> tuple[float, float]:
    """Mean cross-entropy per test image and accuracy, with one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=split.device)
    correct = torch.zeros((), device=split.device, dtype=torch.long)
    for images, labels in split.chunks():
        logits = model(images)[0]
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(dim=1) == labels).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)


def _teacher_targets(config, teacher, checkpoint_path, train_split: Split, fingerprint: str, data_root):
    output = config.method.teacher_output
    if teacher is None or output is None:
        return lambda batch, index: None
    position = OUTPUTS.index(output)
    if not config.cache_teacher:
        return lambda batch, index: _no_grad_output(teacher, batch, position)
    # Recomputing costs well under a second on a GPU; on a CPU it costs seconds, so keep a disk copy.
    disk = cache_dir(data_root) if train_split.device.type == "cpu" else None
    cached = teacher_outputs(teacher, train_split.images, teacher_digest=file_sha256(checkpoint_path),
                             data_fingerprint=fingerprint, disk_dir=disk)[output]
    return lambda batch, index: cached.index_select(0, index)


def _no_grad_output(teacher, batch, position):
    with torch.no_grad():
        return teacher(batch)[position]


def _save(out_dir: Path, config, dataset, model, optimizer, shuffle, history) -> None:
    save_checkpoint(out_dir / CHECKPOINT, {
        "config": config.to_json_dict(),
        "num_classes": dataset.num_classes,
        "classes": list(dataset.classes),
        "data_fingerprint": dataset.fingerprint,
        "parameters": deployed_parameters(model),
        "epoch": len(history),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(optimizer.state_dict()),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "shuffle": shuffle.get_state(),
        },
        "metrics": [asdict(m) for m in history],
    })
    fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=out_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump([asdict(m) for m in history], handle, indent=1)
    os.replace(tmp, out_dir / METRICS)


def _restore(path: Path, config: RunConfig, model, optimizer, shuffle) -> list[EpochMetrics]:
    payload = load_checkpoint(path)
    saved = RunConfig.model_validate(payload["config"])
    if saved != config:
        raise ConfigError(f"cannot resume: {path} was written by a different configuration")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(payload["rng"]["cuda"])
    shuffle.set_state(payload["rng"]["shuffle"])
    return [EpochMetrics(**m) for m in payload["metrics"]]


def _to_cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value
