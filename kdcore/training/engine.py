"""The training loop: one importable function that reports through callbacks.

No printing and no storage beyond the run's own output folder (checkpoint.pt and
metrics.json, both written atomically each epoch). A speed path that raises is left for the plain one
before the loop needs it (kdcore.training.fallback); the result's notes say so.
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

from kdcore.architectures import catalog
from kdcore.config import RunConfig, best_teacher_weights_error
from kdcore.data.catalog import cache_dir, file_sha256
from kdcore.data.loader import load_dataset
from kdcore.errors import ConfigError, NonFiniteLoss, RunCancelled
from kdcore.methods.base import LOGITS, Outputs, Progress
from kdcore.taps import choose_taps
from kdcore.training.augment import random_crop_flip
from kdcore.training.checkpoint import load_checkpoint, load_teacher, save_checkpoint
from kdcore.training.device_data import Split
from kdcore.training.fallback import Fallbacks
from kdcore.training.graph_safety import graph_refusal
from kdcore.training.method_calls import build_modules, method_loss
from kdcore.training.networks import build_model, channels_last
from kdcore.training.precision import autocast, usable_precision, widened, widened_outputs
from kdcore.training.recipe import lr_at, make_optimizer, set_lr
from kdcore.training.run_files import BEST, CHECKPOINT, METRICS
from kdcore.training.selection import best_epoch_label, best_of
from kdcore.training.stages import run_pre_stage
from kdcore.training.steps import StepRunner, graphs_apply
from kdcore.training.teacher_cache import teacher_outputs
from kdcore.training.teacher_parts import shipped, trainable, with_teacher_parts
from kdcore.training.views import with_views


@dataclass
class StepProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    stage: str | None = None  # a method's pre-stage (kdcore.training.stages); None: the main stage


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
    # On the held-out part of the training split (RunConfig.validation); None without one.
    val_loss: float | None = None
    val_accuracy: float | None = None
    # A method's pre-stage, whose epochs count 1..n of their own (kdcore.training.stages); None: the main stage.
    stage: str | None = None


@dataclass
class RunResult:
    final_accuracy: float  # test accuracy after the last epoch
    # The best epoch: of highest validation accuracy, or without a validation split of highest test accuracy
    # (optimistic); best_epoch_label says which (kdcore.training.selection).
    best_epoch: int
    test_accuracy_at_best: float
    best_val_accuracy: float | None
    best_epoch_label: str
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
    dataset = load_dataset(config.dataset, data_root, config.subset, config.validation)
    if method.needs_teacher and config.teacher_weights == "best":
        teacher_checkpoint = best_weights_of(teacher_checkpoint)
    teacher = load_teacher(teacher_checkpoint, dataset.num_classes, device) if method.needs_teacher else None
    notes = [dataset.note] if dataset.note else []
    notes += teacher_notes(config) + normalization_notes(teacher, dataset)
    if device.type == "cuda" and config.cuda_graphs and method.host_sync:
        notes.append(f"steps run eagerly, not as a CUDA graph: {method.host_sync}")
    fallbacks = Fallbacks(str(out_dir))
    if device.type == "cuda" and not torch.backends.cudnn.deterministic:
        torch.backends.cudnn.benchmark = True

    described = catalog(dataset.num_classes)
    student_shapes = _tap_shapes(described, config.architecture)
    teacher_shapes = _tap_shapes(described, teacher.architecture) if teacher is not None else None
    wanted = choose_taps(method, config.params, config.architecture, student_shapes,
                         teacher.architecture if teacher is not None else None, teacher_shapes)
    model = build_model(config.architecture, dataset.num_classes, config.seed).to(device)
    modules = build_modules(method, student_shapes, teacher_shapes, config.params, dataset.train_y)
    modules = modules.to(device) if modules is not None else None
    modules = with_teacher_parts(method, modules, teacher, student_shapes, teacher_shapes, config.params)
    deployed = shipped(method, model, modules)
    if config.channels_last:
        channels_last([model, modules], fallbacks)
    trained = trainable(model, modules)
    optimizer = make_optimizer(config, trained, device, fallbacks)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[EpochMetrics] = []
    stage_record = None  # the pre-stage's record, saved in every checkpoint once it exists
    if resume:
        history = _restore(out_dir / CHECKPOINT, config, model, modules, optimizer, shuffle, device)
        stage_record = load_checkpoint(out_dir / CHECKPOINT).get("stage")

    train_split, test_split = splits(dataset, device, config.resident_data)
    val_split = validation_split(dataset, device, config.resident_data)
    steps = math.ceil(len(train_split) / config.batch_size)
    precision = usable_precision(config.precision, model, probe_images(train_split), fallbacks)
    progress = Progress(epoch=torch.zeros((), device=device), step=torch.full((), float(len(history) * steps),
                        device=device), epochs=config.epochs, steps_per_epoch=steps)
    teacher_of = _teacher_outputs(config, teacher, wanted.teacher, teacher_checkpoint, train_split,
                                  dataset.fingerprint, data_root)

    teacher_on = online_teacher(teacher, wanted.teacher)  # for the method's views: never cached

    def student_on(images: torch.Tensor) -> Outputs:
        with autocast(precision, device):
            logits, taps = model(images)
        return widened_outputs(Outputs(logits, {name: taps[name] for name in wanted.student}))

    def loss_fn(batch: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        images = random_crop_flip(batch, train_split.normalization) if config.augment else batch
        # The teacher stays in float32, online as cached: cache_teacher changes the speed, not the targets.
        student, teacher_out = student_on(images), teacher_of(images, index)
        if method.views:
            student, teacher_out = with_views(method.views, batch, student_on, teacher_on, student, teacher_out,
                                              normalization=train_split.normalization)
        total, terms = method_loss(method, student, teacher_out, labels, config.params, progress, modules, index)
        progress.step.add_(1)
        return total, terms

    if method.pre_stage is not None:
        stage_record = _pre_stage(config, model, modules, (student_shapes, teacher_shapes), teacher, teacher_checkpoint,
                                  train_split, test_split, dataset, data_root, precision, shuffle, fallbacks,
                                  stage_record, out_dir, optimizer, on_step, on_epoch, should_stop)

    # Buffers count as counters: a graph capture's warm-up steps must not move the running statistics.
    buffers = [*model.buffers(), *(modules.buffers() if modules is not None else ())]
    use_graph = graphs_apply(config, device)
    runner = StepRunner(trained, optimizer, loss_fn, train_split, config.batch_size, len(method.loss_terms),
                        use_graph, fallbacks, counters=(progress.step, *buffers),
                        refused=graph_refusal(use_graph, config, teacher.architecture if teacher is not None else None,
                                              dataset.num_classes))
    started = time.perf_counter()
    for epoch in range(len(history) + 1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        if modules is not None:  # evaluating a deployed student that includes them set them to eval
            modules.train()
        progress.epoch.fill_(epoch)
        set_lr(optimizer, lr_at(config, epoch))
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
        test_loss, test_accuracy = evaluate(deployed, test_split, precision)
        val_loss, val_accuracy = evaluate(deployed, val_split, precision) if val_split is not None else (None, None)
        metrics = EpochMetrics(
            epoch, config.epochs, sums[0], dict(zip(method.loss_terms, sums[1:])), test_loss, test_accuracy,
            time.perf_counter() - epoch_start, len(train_split) / train_seconds, val_loss, val_accuracy,
        )
        history.append(metrics)
        _save(out_dir, config, dataset, model, modules, optimizer, shuffle, history, stage_record,
              parameters=deployed_parameters(deployed))
        if keeps_best(config, history):
            _save_best(out_dir, config, dataset, model, epoch)
        if on_epoch:
            on_epoch(metrics)
    return run_result(config, history, parameters=deployed_parameters(deployed), seconds=time.perf_counter() - started,
                      checkpoint=str(out_dir / CHECKPOINT), device=str(device), notes=[*notes, *fallbacks.notes])


def splits(dataset, device: torch.device, resident: bool) -> tuple[Split, Split]:
    """The training and test splits on the device, normalised as their dataset says."""
    return (Split(dataset.train_x, dataset.train_y, device, resident, normalization=dataset.normalization),
            Split(dataset.test_x, dataset.test_y, device, resident, normalization=dataset.normalization))


def validation_split(dataset, device: torch.device, resident: bool) -> Split | None:
    """The held-out training images (RunConfig.validation) on the device, or None without a split."""
    if dataset.val_x is None:
        return None
    return Split(dataset.val_x, dataset.val_y, device, resident, normalization=dataset.normalization)


def probe_images(split: Split) -> torch.Tensor:
    """A couple of the split's images on its device: what a speed path is tried on before the run uses it."""
    return split.gather(torch.arange(min(2, len(split)), device=split.device))


def keeps_best(config: RunConfig, history: list[EpochMetrics]) -> bool:
    """Whether the epoch just ended is a teacher's new best, whose weights go to best.pt. Only with a
    validation split: weights chosen on the test set are not offered for distillation at all."""
    return config.method.teaches and bool(config.validation) and best_of(history) is history[-1]


def run_result(config: RunConfig, history: list[EpochMetrics], **fields) -> RunResult:
    """The run's result from its epochs: the final and best-epoch figures (kdcore.training.selection)."""
    best = best_of(history)
    return RunResult(final_accuracy=history[-1].test_accuracy, best_epoch=best.epoch,
                     test_accuracy_at_best=best.test_accuracy, best_val_accuracy=best.val_accuracy,
                     best_epoch_label=best_epoch_label(config.validation), epochs=history, **fields)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: Split, precision: str = "float32") -> tuple[float, float]:
    """Mean cross-entropy per image of ``split`` (test or validation) and accuracy, with one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=split.device)
    correct = torch.zeros((), device=split.device, dtype=torch.long)
    for images, labels in split.chunks():
        with autocast(precision, split.device):
            logits = widened(model(images)[0])
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(dim=1) == labels).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)


def deployed_parameters(model: torch.nn.Module) -> int:
    """The student as deployed (``Method.deployed``, else its own network): a method's training-only modules
    (a FitNets regressor) are not part of it, a SimKD projector and the teacher's head it reuses are."""
    return sum(p.numel() for p in model.parameters())


def _tap_shapes(described: dict, architecture: str) -> dict[str, tuple[int, ...]]:
    if architecture not in described:
        raise ConfigError(f"unknown architecture {architecture!r}; choose one of: {', '.join(described)}")
    return {name: tuple(shape) for name, shape in described[architecture]["taps"].items()}


def _teacher_outputs(config, teacher, taps: tuple[str, ...], checkpoint_path, train_split: Split, fingerprint: str,
                     data_root) -> Callable[[torch.Tensor, torch.Tensor], Outputs | None]:
    """What the loss gets from the teacher for a batch: its logits (when asked for) and the asked taps."""
    if teacher is None:
        return lambda batch, index: None
    if not taps:
        return lambda batch, index: Outputs(None, {})
    feature_taps = tuple(t for t in taps if t != LOGITS)
    # Augmented images differ every epoch, so their teacher outputs cannot be computed once.
    if not config.cache_teacher or config.augment:
        online = online_teacher(teacher, taps)
        return lambda batch, index: online(batch)
    # Recomputing costs well under a second on a GPU; on a CPU it costs seconds, so keep a disk copy.
    disk = cache_dir(data_root) if train_split.device.type == "cpu" else None
    cached = teacher_outputs(teacher, train_split.images, taps, teacher_digest=file_sha256(checkpoint_path),
                             data_fingerprint=fingerprint, normalization=train_split.normalization, disk_dir=disk)

    def lookup(batch, index):
        logits = cached[LOGITS].index_select(0, index) if LOGITS in taps else None
        return Outputs(logits, {t: cached[t].index_select(0, index) for t in feature_taps})
    return lookup


def online_teacher(teacher, taps: tuple[str, ...]) -> Callable[[torch.Tensor], Outputs | None]:
    """The teacher's outputs on images, computed now: its logits (when asked for) and the asked taps."""
    if teacher is None:
        return lambda images: None
    feature_taps = tuple(t for t in taps if t != LOGITS)

    def online(images):
        with torch.no_grad():
            logits, found = teacher(images)
        return Outputs(logits if LOGITS in taps else None, {t: found[t] for t in feature_taps})
    return online


def teacher_notes(config: RunConfig) -> list[str]:
    """What the run's notes say about how its teacher's outputs are computed."""
    method = config.method
    if not (method.needs_teacher and config.cache_teacher):
        return []
    if config.augment:
        return ["teacher outputs are computed online: augmentation changes every image"]
    if method.views:
        return [f"the teacher runs online on the {' and '.join(method.views)} view (drawn afresh every step); "
                "its outputs on the batch itself come from the cache"]
    return []


def normalization_notes(teacher, dataset) -> list[str]:
    """What the run's notes say when its teacher was trained on inputs normalised otherwise than this run's data
    is (a CIFAR-100 teacher trained here before datasets had their own statistics): it sees other inputs than it
    learnt on, and its outputs are worse than its accuracy says."""
    if teacher is None or teacher.normalization in (None, dataset.normalization):
        return []
    theirs, ours = teacher.normalization, dataset.normalization
    return [f"the teacher was trained on inputs normalised with mean {list(theirs.mean)}, std {list(theirs.std)}; "
            f"this run's {dataset.name} is normalised with mean {list(ours.mean)}, std {list(ours.std)}: the teacher "
            "sees other inputs than it learnt on (train it again on this dataset)"]


def best_weights_of(checkpoint: str | os.PathLike) -> Path:
    """A teacher's weights at its best validation epoch, kept beside its final checkpoint. A teacher trained
    without a validation split is refused: its best epoch would have been chosen on the test set."""
    best = Path(checkpoint).with_name(BEST)
    # The teacher's configuration, from the smaller file when it exists (best.pt holds no optimiser state).
    trained_with = RunConfig.model_validate(load_checkpoint(best if best.is_file() else checkpoint)["config"])
    problem = best_teacher_weights_error(trained_with.validation)
    if problem:
        raise ConfigError(problem)
    if not best.is_file():
        raise ConfigError(f"teacher_weights 'best': {best} does not exist (a teacher run writes it as it trains)")
    return best


def _save_best(out_dir: Path, config, dataset, model, epoch: int) -> None:
    write_best(out_dir, config, dataset, _state(model), deployed_parameters(model), epoch)


def write_best(out_dir: Path, config, dataset, model_state: dict, parameters: int, epoch: int) -> None:
    # A teacher's weights at its best validation accuracy so far: what a KD run may distil from instead of the last.
    save_checkpoint(out_dir / BEST, {
        "config": config.to_json_dict(), "num_classes": dataset.num_classes, "classes": list(dataset.classes),
        "data_fingerprint": dataset.fingerprint, "normalization": dataset.normalization.to_json_dict(),
        "parameters": parameters, "epoch": epoch, "model": model_state, "modules": None,
    })


def _pre_stage(config, model, modules, shapes, teacher, teacher_checkpoint, train_split, test_split, dataset,
               data_root, precision, shuffle, fallbacks, saved, out_dir, optimizer, on_step, on_epoch, should_stop):
    """Run the method's pre-stage (kdcore.training.stages) with this engine's evaluation, files and callbacks."""
    teacher_name = teacher.architecture if teacher is not None else None
    wanted = choose_taps(config.method, config.params, config.architecture, shapes[0], teacher_name, shapes[1],
                         pre_stage=True)
    teacher_of = _teacher_outputs(config, teacher, wanted.teacher, teacher_checkpoint, train_split,
                                  dataset.fingerprint, data_root)
    name = config.method.pre_stage.name

    def step_done(epoch, epochs, step, steps):
        if on_step:
            on_step(StepProgress(epoch, epochs, step, steps, stage=name))

    def end_epoch(record, epoch, epochs, sums, train_seconds):
        test_loss, test_accuracy = evaluate(model, test_split, precision)
        metrics = EpochMetrics(epoch, epochs, sums[0], dict(zip(config.method.pre_stage.loss_terms, sums[1:])),
                               test_loss, test_accuracy, train_seconds, len(train_split) / train_seconds, stage=name)
        record["metrics"].append(asdict(metrics))
        _save(out_dir, config, dataset, model, modules, optimizer, shuffle, [], record)
        if on_epoch:
            on_epoch(metrics)

    return run_pre_stage(config, model=model, modules=modules, wanted=wanted, teacher_of=teacher_of, split=train_split,
                         precision=precision, shuffle=shuffle, fallbacks=fallbacks, saved=saved, on_step=step_done,
                         should_stop=should_stop or (lambda: False), end_epoch=end_epoch,
                         refused=lambda use_graph: graph_refusal(use_graph, config, teacher_name, dataset.num_classes,
                                                                 pre_stage=True))


def _save(out_dir: Path, config, dataset, model, modules, optimizer, shuffle, history, stage=None,
          parameters: int | None = None) -> None:
    parameters = deployed_parameters(model) if parameters is None else parameters  # the deployed student's
    write_run_files(out_dir, config, dataset, model_state=_state(model), parameters=parameters,
                    modules_state=_state(modules) if modules is not None else None,
                    optimizer_state=optimizer.state_dict(), shuffle=shuffle, history=history, stage=stage)


def write_run_files(out_dir: Path, config, dataset, *, model_state: dict, parameters: int, modules_state: dict | None,
                    optimizer_state: dict, shuffle: torch.Generator, history: list[EpochMetrics],
                    rng_state: torch.Tensor | None = None, stage: dict | None = None) -> None:
    """checkpoint.pt and metrics.json, each written atomically: what ``train(..., resume=True)`` reads back.
    The packed trainer writes its runs' files through here too, so either can resume the other's;
    ``rng_state`` is a packed run's own generator state (default: torch's); ``stage`` the record of a method's
    pre-stage (kdcore.training.stages), which metrics.json leaves out: its epochs are not the main stage's."""
    save_checkpoint(out_dir / CHECKPOINT, {
        "config": config.to_json_dict(),
        "num_classes": dataset.num_classes,
        "classes": list(dataset.classes),
        "data_fingerprint": dataset.fingerprint,
        # What the model's inputs were normalised with: a loaded model (or its export) needs the same inputs.
        "normalization": dataset.normalization.to_json_dict(),
        "parameters": parameters,
        "epoch": len(history),
        "model": model_state,
        "modules": modules_state,
        "optimizer": _to_cpu(optimizer_state),
        "rng": {
            "torch": torch.get_rng_state() if rng_state is None else rng_state,
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "shuffle": shuffle.get_state(),
        },
        "metrics": [asdict(m) for m in history],
        "stage": _to_cpu(stage),
    })
    fd, tmp = tempfile.mkstemp(prefix=".metrics-", suffix=".tmp", dir=out_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump([asdict(m) for m in history], handle, indent=1)
    os.replace(tmp, out_dir / METRICS)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _restore(path: Path, config: RunConfig, model, modules, optimizer, shuffle, device) -> list[EpochMetrics]:
    payload = load_checkpoint(path)
    saved = RunConfig.model_validate(payload["config"])
    if saved != config:
        raise ConfigError(f"cannot resume: {path} was written by a different configuration")
    model.load_state_dict(payload["model"])
    if modules is not None:
        modules.load_state_dict(payload["modules"])
    optimizer.load_state_dict(payload["optimizer"])
    for group in optimizer.param_groups:
        # The implementation is this run's, not the writer's: a CPU checkpoint resumed in a CUDA graph
        # needs the capturable kernels, an older unfused one the fused.
        group.update({key: optimizer.defaults[key] for key in ("fused", "foreach", "capturable")
                      if key in optimizer.defaults})
    _match_layouts(optimizer)
    for group in optimizer.param_groups:  # a learning rate saved as a tensor comes back on the CPU
        if torch.is_tensor(group["lr"]):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(payload["rng"]["cuda"])
    shuffle.set_state(payload["rng"]["shuffle"])
    return [EpochMetrics(**m) for m in payload["metrics"]]


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each loaded moment its parameter's memory layout. A checkpoint written from another layout (a
    vmapped pack's, a run without channels_last) loads as it was saved, and the fused kernels pair
    parameter, gradient and moments element by element in memory order."""
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == parameter.shape and value.stride() != parameter.stride():
                state[key] = torch.empty_like(parameter).copy_(value)


def _to_cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value
