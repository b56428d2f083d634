"""A method's pre-stage (kdcore.methods.base.Stage), trained before the main stage.

It trains its own parameters (named method modules, and the student where it says so) by its own SGD,
at a constant learning rate as RepDistiller's ``init`` does, through the same StepRunner as the main
stage: CUDA graphs, fallbacks and the no-host-sync rule apply unchanged. Its epochs are numbered 1..n of
their own stage and reported through the engine's callbacks with the stage named; after each one the
engine writes the checkpoint with the stage's record (``{"name", "epochs", "metrics", "optimizer"}``),
so that a run stopped inside the stage resumes there, and one stopped after it does not repeat it.
The shuffling generator and torch's generator are the run's own: an interrupted run resumed from any
epoch's checkpoint draws what the uninterrupted run drew.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from kdcore.errors import NonFiniteLoss, RunCancelled
from kdcore.methods.base import Outputs, Progress, TapChoice
from kdcore.training.augment import random_crop_flip
from kdcore.training.method_calls import method_loss
from kdcore.training.precision import autocast, widened_outputs
from kdcore.training.recipe import make_optimizer
from kdcore.training.steps import StepRunner, graphs_apply


def stage_optimizer(config, stage, parameters: list, device, fallbacks):
    """SGD at the stage's learning rate, momentum and weight decay, constant over the stage; the main
    recipe's optimiser construction (fused kernels where they work) otherwise."""
    recipe = config.model_copy(update=dict(
        optimizer="sgd", lr=float(getattr(config.params, stage.lr_param)), momentum=stage.momentum,
        weight_decay=stage.weight_decay, schedule="constant", warmup_epochs=0))
    return make_optimizer(recipe, parameters, device, fallbacks)


def run_pre_stage(
    config, *, model: torch.nn.Module, modules, wanted: TapChoice, teacher_of: Callable, split, precision: str,
    shuffle: torch.Generator, fallbacks, saved: dict | None, refused: Callable[[bool], BaseException | None],
    on_step: Callable[[int, int, int, int], None], should_stop: Callable[[], bool],
    end_epoch: Callable[[dict, int, int, list[float], float], None],
) -> dict | None:
    """Train ``config.method.pre_stage`` from where ``saved`` (a checkpoint's stage record) left it; returns
    the finished stage's record, or None when the stage has no epochs. ``on_step(epoch, epochs, step,
    steps)`` and ``should_stop()`` act as the engine's; ``end_epoch(record, epoch, epochs, mean_terms,
    train_seconds)`` evaluates, appends the epoch's metrics to ``record["metrics"]``, writes the checkpoint
    and reports the epoch. ``refused(use_graph)``: why the stage's steps must not be captured (the
    graph-safety probe of the stage's loss), or None."""
    stage = config.method.pre_stage
    epochs = stage.epochs(config.params)
    if epochs == 0:
        return None
    record = saved or {"name": stage.name, "epochs": epochs, "metrics": [], "optimizer": None}
    done = len(record["metrics"])
    if done >= epochs:
        return record
    device = split.device
    trained = [*(model.parameters() if stage.trains_student else ()),
               *(p for name in stage.modules for p in modules[name].parameters())]
    optimizer = stage_optimizer(config, stage, trained, device, fallbacks)
    if record["optimizer"] is not None:
        optimizer.load_state_dict(record["optimizer"])
        for group in optimizer.param_groups:  # the implementation is this run's, not the writer's
            group.update({key: optimizer.defaults[key] for key in ("fused", "foreach", "capturable")
                          if key in optimizer.defaults})
    steps = math.ceil(len(split) / config.batch_size)
    progress = Progress(epoch=torch.zeros((), device=device), step=torch.full((), float(done * steps), device=device),
                        epochs=epochs, steps_per_epoch=steps)
    # FT's paraphraser learns from the teacher alone: the student's forward pass would be wasted.
    reads_student = stage.trains_student or bool(wanted.student)

    def loss_fn(batch: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        if config.augment:
            batch = random_crop_flip(batch, split.normalization)
        student = None
        if reads_student:
            with autocast(precision, device), torch.set_grad_enabled(stage.trains_student):
                logits, taps = model(batch)
            student = widened_outputs(Outputs(logits, {name: taps[name] for name in wanted.student}))
        total, terms = method_loss(config.method, student, teacher_of(batch, index), labels, config.params, progress,
                                   modules, index, loss=stage.loss)
        progress.step.add_(1)
        return total, terms

    buffers = [*model.buffers(), *(modules.buffers() if modules is not None else ())]
    use_graph = graphs_apply(config, device)
    runner = StepRunner(trained, optimizer, loss_fn, split, config.batch_size, len(stage.loss_terms),
                        use_graph, fallbacks, counters=(progress.step, *buffers), refused=refused(use_graph))
    for epoch in range(done + 1, epochs + 1):
        started = time.perf_counter()
        # As RepDistiller's init: the student in training mode only where the stage trains it.
        model.train(stage.trains_student)
        if modules is not None:
            modules.train()
        progress.epoch.fill_(epoch)
        order = torch.randperm(len(split), generator=shuffle).to(device)
        for step in range(steps):
            runner.step(order[step * config.batch_size : (step + 1) * config.batch_size])
            on_step(epoch, epochs, step + 1, steps)
            if should_stop():
                raise RunCancelled(f"cancelled during {stage.name} epoch {epoch}")
        sums = (runner.take_sums() / steps).tolist()
        if not all(math.isfinite(v) for v in sums):
            raise NonFiniteLoss(f"the {stage.name} stage's loss became non-finite in its epoch {epoch} ({sums[0]})")
        record["optimizer"] = optimizer.state_dict()
        end_epoch(record, epoch, epochs, sums, time.perf_counter() - started)
    return record
