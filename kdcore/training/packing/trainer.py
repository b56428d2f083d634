"""Packed training: runs of one architecture train together, one step for all of them.

Each run keeps what makes it a run of its own:

- its seed: its initial weights (``build_model`` then its method's modules, as ``engine.train`` builds
  them), its data order (its own shuffling generator) and its dropout masks and crops;
- its method, hyperparameters and teacher (the teacher's cached outputs are shared by the runs that use
  it), its own method modules (a FitNets regressor), loss terms, metrics and checkpoint;
- its optimiser state and its batch-norm statistics (batch statistics and running statistics stay per run).

A pack's step takes one of two forms:

- **vmapped** (``kdcore.training.packing.vmapped``, a GPU's): the runs' weights are stacked
  (``torch.func.stack_module_state``) and one forward pass, ``vmap``-ped over the stack, trains every run
  on its own batch: small networks that leave a GPU mostly idle one by one fill it together. On CUDA
  the step is replayed as one CUDA graph under the engine's conditions (``cuda_graphs`` and
  ``resident_data``). Dropout masks and crops are drawn per run but from torch's shared generator, so
  they are only statistically those of the run alone; ``channels_last`` and bfloat16 do not apply.
- **looped** (``kdcore.training.packing.looped``, a CPU's, and any pack in bfloat16): each run keeps its own network
  and the step runs their forward passes one after another into one loss, one backward pass and one
  optimiser step, replayed as a CUDA graph on a GPU as a vmapped step is. On a CPU each run draws from
  its own copy of torch's generator, so it is the run alone; on a GPU its masks and crops come from the
  GPU's shared generator, statistically its own.

Either way the runs' losses are summed: their parameters are disjoint, so one backward pass gives each
run exactly its own gradients, and one optimiser (Adam or SGD, both elementwise) steps each run as its
own would. A packed run therefore equals the same run trained alone to float tolerance (a looped one on
a CPU: dropout and augmentation included).

A speed path that raises falls back as in a run alone (kdcore.training.fallback), for the whole pack: a
vmapped step that fails at the pack's set-up or first step trains the same runs again looped, each
prepared afresh from its seed; every run's result notes the fallbacks.

Each run writes its checkpoint and metrics in the engine's format, so ``engine.train(..., resume=True)``
continues a packed run on its own. A run that fails (a non-finite loss in its epoch sums) or is cancelled
leaves the pack, which goes on without it, and the others train on unchanged. An out-of-memory error in
a pack's first step retries it as two packs of half the size before failing any run.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from kdcore.architectures import catalog
from kdcore.config import RunConfig
from kdcore.data.loader import ArrayDataset, load_dataset
from kdcore.errors import ConfigError, NonFiniteLoss, RunCancelled
from kdcore.methods.base import Progress, TapChoice
from kdcore.taps import choose_taps
from kdcore.training.checkpoint import load_teacher
from kdcore.training.device_data import Split
from kdcore.training.engine import (
    EpochMetrics,
    RunResult,
    StepProgress,
    _state,
    _tap_shapes,
    _teacher_outputs,
    best_weights_of,
    keeps_best,
    normalization_notes,
    online_teacher,
    resolve_device,
    run_result,
    splits,
    teacher_notes,
    validation_split,
    write_best,
    write_run_files,
)
from kdcore.training.fallback import VMAPPED, Fallbacks
from kdcore.training.graph_safety import graph_refusal
from kdcore.training.method_calls import build_modules
from kdcore.training.networks import build_model
from kdcore.training.packing.key import differing_fields, pack_key, trains_alone
from kdcore.training.teacher_parts import with_teacher_parts
from kdcore.training.packing.looped import LoopedStep
from kdcore.training.packing.vmapped import PackedStep
from kdcore.training.run_files import CHECKPOINT
from kdcore.training.steps import graphs_apply

__all__ = ["pack_key", "train_packed"]


@dataclass
class _Shared:
    """What every run of one call shares: the device, the data, the architectures' taps, loaded teachers."""

    device: torch.device
    dataset: ArrayDataset
    train: Split
    test: Split
    val: Split | None  # the held-out training images (RunConfig.validation), if any
    described: dict
    data_root: object
    step_kind: type  # PackedStep (vmapped) or LoopedStep
    # The speed paths the call's packs fell back from (kdcore.training.fallback), from its first pack on.
    fallbacks: Fallbacks
    # Why the vmapped step failed, until a looped pack's first step shows that it, not the runs, was at fault.
    vmap_failure: BaseException | None = None
    teachers: dict[str, torch.nn.Module] = field(default_factory=dict)


@dataclass(eq=False)
class _Run:
    index: int  # the run's position in the caller's lists
    config: RunConfig
    out_dir: Path
    wanted: TapChoice
    modules: torch.nn.Module | None
    teacher_of: Callable
    shuffle: torch.Generator
    rng: torch.Tensor  # torch's generator state once the run's network and modules were built
    notes: list[str]
    history: list[EpochMetrics] = field(default_factory=list)
    # Why its step must not be captured as a CUDA graph (kdcore.training.graph_safety), or None: its pack's is not.
    graph_refusal: BaseException | None = None
    teacher_on: Callable | None = None  # the teacher online, for the method's views (engine.online_teacher)

    def module_parameters(self) -> list[torch.Tensor]:
        return list(self.modules.parameters()) if self.modules is not None else []


class _RetryPack(Exception):
    """A pack's set-up or first step raised ``error`` in a way that another try of its runs may avoid."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _PackTooLarge(_RetryPack):
    """Out of memory: retry it in smaller packs."""


class _VmapFailed(_RetryPack):
    """The vmapped step raised: retry it looped (kdcore.training.fallback)."""


def train_packed(
    configs: Sequence[RunConfig], *, out_dirs: Sequence, data_root=None, teacher_checkpoints: Sequence | None = None,
    on_step: Callable[[int, StepProgress], None] | None = None,
    on_epoch: Callable[[int, EpochMetrics], None] | None = None,
    should_stop: Callable[[int], bool] | None = None,
    max_pack: int | None = None, vectorised: bool | None = None,
) -> list[RunResult | BaseException]:
    """Train ``configs`` (pairwise packable: see ``kdcore.training.packing.key``) together; one entry per run, in order:
    its ``RunResult``, or the exception that ended it (``NonFiniteLoss``, ``RunCancelled``, a bad teacher
    checkpoint, an exception raised by its own callback, ...).

    ``out_dirs[i]`` and ``teacher_checkpoints[i]`` are run i's, as ``engine.train`` takes them. The callbacks
    get the run's index first and otherwise behave as the engine's: ``on_step`` after each step,
    ``should_stop`` right after it, ``on_epoch`` once the epoch's files are written. At most ``max_pack``
    runs train at once (default: all); the rest wait for the next pack. ``vectorised`` chooses the vmapped
    step (kdcore.training.packing.vmapped) or the looped one (kdcore.training.packing.looped); by default
    the vmapped one on a GPU and the looped one on a CPU, where it is the faster, and for bfloat16 runs.
    Problems every run shares (incompatible configurations, a missing dataset or device) raise before
    anything is written.
    """
    configs, out_dirs = list(configs), [Path(d) for d in out_dirs]
    teachers = list(teacher_checkpoints) if teacher_checkpoints is not None else [None] * len(configs)
    if not len(configs) == len(out_dirs) == len(teachers):
        raise ValueError("configs, out_dirs and teacher_checkpoints need one entry per run")
    if max_pack is not None and max_pack < 1:
        raise ValueError(f"max_pack must be at least 1, got {max_pack}")
    if not configs:
        return []
    differing = differing_fields(configs)
    if differing:
        raise ConfigError(f"these runs cannot train in one pack: they differ in {', '.join(differing)}")
    alone = next(filter(None, map(trains_alone, configs)), None)
    if alone:
        raise ConfigError(f"these runs cannot train in one pack: {alone} (engine.train)")
    if len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise ConfigError("each packed run needs an output folder of its own")
    config = configs[0]
    device = resolve_device(config.device)
    dataset = load_dataset(config.dataset, data_root, config.subset, config.validation)
    if device.type == "cuda" and not torch.backends.cudnn.deterministic:
        torch.backends.cudnn.benchmark = True
    # One pack, one dataset: its runs share one normalisation.
    shared = _Shared(device, dataset, *splits(dataset, device, config.resident_data),
                     validation_split(dataset, device, config.resident_data), catalog(dataset.num_classes), data_root,
                     _step_kind(device, vectorised, config.precision), Fallbacks(", ".join(map(str, out_dirs))))
    callbacks = (on_step, on_epoch, should_stop)
    results: list[RunResult | BaseException | None] = [None] * len(configs)
    limit = max_pack or len(configs)
    waiting = [list(range(len(configs)))]
    while waiting:
        group = waiting.pop(0)
        if len(group) > limit:
            waiting[:0] = [group[start : start + limit] for start in range(0, len(group), limit)]
            continue
        try:
            _train_pack([(i, configs[i], out_dirs[i], teachers[i]) for i in group], shared, results, callbacks)
            continue
        except _RetryPack as retry:
            error, vmapped = retry.error.with_traceback(None), isinstance(retry, _VmapFailed)
        # Out of the except clause, the exceptions are gone, and with their tracebacks the failed pack's
        # frames and tensors: the memory can be returned before the smaller or looped packs start.
        _release_memory(device)
        if vmapped:  # the same runs again, looped, each prepared afresh from its seed
            shared.vmap_failure, shared.step_kind = error, LoopedStep
            waiting.insert(0, group)
            for i in group:
                results[i] = None
            continue
        if len(group) == 1:
            results[group[0]] = error
            continue
        # Later packs would not fit either: they start at the size that is tried next.
        limit = len(group) // 2
        waiting[:0] = [group[:limit], group[limit:]]
        for i in group:
            results[i] = None
    return results


def _step_kind(device: torch.device, vectorised: bool | None, precision: str) -> type:
    # Autocast does not reach through vmap's batching rules: a bfloat16 pack loops over its runs.
    if vectorised and precision != "float32":
        raise ConfigError(f"a vmapped pack trains in float32 only, not {precision}: leave the step kind to "
                          "train_packed")
    if vectorised is None:
        vectorised = device.type != "cpu" and precision == "float32"
    return PackedStep if vectorised else LoopedStep


def _train_pack(members: list[tuple], shared: _Shared, results: list, callbacks: tuple) -> None:
    """Train one pack to its end, writing each run's outcome into ``results``. The pack's speed-path
    decisions are kept for the call's later packs once its first step has been taken."""
    fallbacks = shared.fallbacks.copy()
    try:
        runs, models = [], []
        for index, config, out_dir, teacher_checkpoint in members:
            try:
                run, model = _prepare(index, config, out_dir, teacher_checkpoint, shared)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # this run's own problem (its teacher, its taps): the others still train
                results[index] = exc
                continue
            runs.append(run)
            models.append(model)
        if not runs:
            return
        steps = math.ceil(len(shared.train) / runs[0].config.batch_size)
        progress = Progress(epoch=torch.zeros((), device=shared.device), step=torch.zeros((), device=shared.device),
                            epochs=runs[0].config.epochs, steps_per_epoch=steps)
        trainer = _PackTrainer(shared.step_kind.stack(runs, models, shared.train, progress, fallbacks), shared,
                               results, callbacks)
        del models
        # The first step is where a pack too large for the device's memory shows it, and a vmapped step
        # that cannot run.
        trainer.begin_epoch(1)
        trainer.pack.step(0)
    except torch.OutOfMemoryError as exc:
        raise _PackTooLarge(exc) from exc
    except Exception as exc:
        if shared.step_kind is PackedStep:
            raise _VmapFailed(exc) from exc
        raise
    if shared.vmap_failure is not None:
        failure, shared.vmap_failure = shared.vmap_failure, None
        fallbacks.record(VMAPPED, failure, "the pack's runs take their steps one after another (looped)")
    shared.fallbacks = fallbacks
    try:
        trainer.train()
    finally:
        trainer.close()


class _PackTrainer:
    """A pack's epochs: the engine's loop, once for all its runs, with each run's outcome its own."""

    def __init__(self, pack: PackedStep | LoopedStep, shared: _Shared, results: list, callbacks: tuple):
        self.pack, self.shared, self.results = pack, shared, results
        self.on_step, self.on_epoch, self.should_stop = callbacks
        self.config = pack.config
        self.steps = pack.progress.steps_per_epoch
        self.size = len(pack.runs)
        self.started = self.epoch_start = time.perf_counter()

    def begin_epoch(self, epoch: int) -> None:
        self.epoch_start = time.perf_counter()
        self.pack.begin_epoch(epoch)

    def train(self) -> None:
        try:
            for epoch in range(1, self.config.epochs + 1):
                if epoch > 1:
                    self.begin_epoch(epoch)
                if not self._epoch(epoch):
                    return
        except Exception as exc:  # the step itself failed: no run can be told apart, so it ends them all
            for run in self.pack.runs:
                if self.results[run.index] is None:
                    self.results[run.index] = exc
            return
        for run in self.pack.runs:
            others = self.size - 1
            self.results[run.index] = run_result(
                run.config, run.history, parameters=self.pack.parameters, seconds=time.perf_counter() - self.started,
                checkpoint=str(run.out_dir / CHECKPOINT), device=str(self.shared.device),
                notes=[*run.notes, *([f"trained packed with {others} other run{'s' if others > 1 else ''}"] if others
                                     else []), *self.pack.fallbacks.notes],
            )

    def _epoch(self, epoch: int) -> bool:
        """One epoch of every run still training; False when none is left."""
        for step in range(self.steps):
            if epoch > 1 or step > 0:  # the first step was taken with the pack's start
                self.pack.step(step)
            failures = {}
            for run in self.pack.runs:
                failure = _call(self.on_step, run.index, StepProgress(epoch, self.config.epochs, step + 1, self.steps))
                if failure is None and self.should_stop is not None:
                    try:
                        if self.should_stop(run.index):
                            failure = RunCancelled(f"cancelled during epoch {epoch}")
                    except Exception as exc:
                        failure = exc
                if failure is not None:
                    failures[run] = failure
            if failures and not self._drop(failures):
                return False
        sums = dict(zip(self.pack.runs, self.pack.take_sums(self.steps)))
        train_seconds = time.perf_counter() - self.epoch_start
        diverged = {run: NonFiniteLoss(f"training loss became non-finite in epoch {epoch} ({values[0]})")
                    for run, values in sums.items() if not all(math.isfinite(v) for v in values)}
        if diverged and not self._drop(diverged):
            return False
        losses, accuracies = self.pack.evaluate(self.shared.test)
        none = [None] * len(self.pack.runs)
        val_losses, val_accuracies = self.pack.evaluate(self.shared.val) if self.shared.val is not None else (none, none)
        seconds = time.perf_counter() - self.epoch_start
        failures = {}
        for j, run in enumerate(self.pack.runs):
            total, *terms = sums[run]
            metrics = EpochMetrics(epoch, self.config.epochs, total, dict(zip(run.config.method.loss_terms, terms)),
                                   losses[j], accuracies[j], seconds, len(self.shared.train) / train_seconds,
                                   val_losses[j], val_accuracies[j])
            failure = _finish_epoch(run, self.pack, j, metrics, self.shared) or _call(self.on_epoch, run.index, metrics)
            if failure is not None:
                failures[run] = failure
        return not failures or self._drop(failures)

    def _drop(self, failures: dict) -> bool:
        """Record why these runs ended and train on without them; False when none is left."""
        for run, failure in failures.items():
            self.results[run.index] = failure
        self.pack = self.pack.without(list(failures))
        return self.pack is not None

    def close(self) -> None:
        if self.pack is not None:
            self.pack.close()


def _prepare(index: int, config: RunConfig, out_dir: Path, teacher_checkpoint, shared: _Shared):
    """The run's teacher, taps, model and method modules, built in ``engine.train``'s order so that the
    seed gives the same initial weights, and whether its step fails the graph-safety probe."""
    method = config.method
    if method.needs_teacher and teacher_checkpoint is None:
        raise ConfigError(f"a {config.kind!r} run distils from a teacher: give a teacher checkpoint")
    if not method.needs_teacher and teacher_checkpoint is not None:
        raise ConfigError(f"a {config.kind!r} run trains without a teacher; do not give one")
    num_classes = shared.dataset.num_classes
    teacher = None
    if method.needs_teacher:
        if config.teacher_weights == "best":
            teacher_checkpoint = best_weights_of(teacher_checkpoint)
        key = str(Path(teacher_checkpoint).resolve())
        if key not in shared.teachers:
            shared.teachers[key] = load_teacher(teacher_checkpoint, num_classes, shared.device)
        teacher = shared.teachers[key]
    notes = [shared.dataset.note] if shared.dataset.note else []
    notes += teacher_notes(config) + normalization_notes(teacher, shared.dataset)
    student_shapes = _tap_shapes(shared.described, config.architecture)
    teacher_shapes = _tap_shapes(shared.described, teacher.architecture) if teacher is not None else None
    wanted = choose_taps(method, config.params, config.architecture, student_shapes,
                         teacher.architecture if teacher is not None else None, teacher_shapes)
    # The model, then at once its method's modules: both draw from the generator the seed has just set.
    model = build_model(config.architecture, shared.dataset.num_classes, config.seed).to(shared.device)
    modules = build_modules(method, student_shapes, teacher_shapes, config.params, shared.dataset.train_y)
    modules = modules.to(shared.device) if modules is not None else None
    modules = with_teacher_parts(method, modules, teacher, student_shapes, teacher_shapes, config.params)
    rng = torch.get_rng_state()
    teacher_of = _teacher_outputs(config, teacher, wanted.teacher, teacher_checkpoint, shared.train,
                                  shared.dataset.fingerprint, shared.data_root)
    run = _Run(index, config, Path(out_dir), wanted, modules, teacher_of, torch.Generator().manual_seed(config.seed),
               rng, notes, teacher_on=online_teacher(teacher, wanted.teacher))
    run.graph_refusal = graph_refusal(graphs_apply(config, shared.device), config,
                                      teacher.architecture if teacher is not None else None, num_classes)
    return run, model


def _finish_epoch(run: _Run, pack: PackedStep | LoopedStep, j: int, metrics: EpochMetrics,
                  shared: _Shared) -> BaseException | None:
    """Record the epoch and write the run's files as the engine does; a failure is the run's alone."""
    try:
        run.history.append(metrics)
        modules_state = _state(run.modules) if run.modules is not None else None
        write_run_files(run.out_dir, run.config, shared.dataset, model_state=pack.model_state(j),
                        parameters=pack.parameters, modules_state=modules_state,
                        optimizer_state=pack.optimizer_state(j), shuffle=run.shuffle, history=run.history,
                        rng_state=pack.rng_state(j))
        if keeps_best(run.config, run.history):
            write_best(run.out_dir, run.config, shared.dataset, pack.model_state(j), pack.parameters, metrics.epoch)
    except Exception as exc:
        return exc
    return None


def _call(callback, index: int, value) -> BaseException | None:
    if callback is None:
        return None
    try:
        callback(index, value)
    except Exception as exc:
        return exc
    return None


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        gc.collect()  # a pack's step and its runner refer to each other: only the collector frees them
        torch.cuda.empty_cache()
