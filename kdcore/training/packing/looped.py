"""The looped pack step (a CPU's, and a bfloat16 pack's): each run keeps its own network; one step trains
them all (kdcore.training.packing.trainer uses it).

On a CPU the vmapped step (kdcore.training.packing.vmapped) is slower than the runs one after another (0.60×,
bench/bench_packed.py --step vmapped): vmap turns the convolutions into grouped ones in NCHW, whose
backward took about 3× the separate convolutions' time in a profile, and copies the stacked activations
between layouts. Here the runs' forward passes run one after another, each on its own channels-last
network as ``engine.train`` runs it, into one loss: one backward pass and one fused optimiser step for
the pack. What the pack saves is what does not grow with the data: the optimiser's, the autograd
engine's and the step loop's fixed costs, once per step instead of once per run.

Each run draws its random numbers (dropout masks, augmentation crops) from its own copy of torch's
generator, in the order it would alone, so a packed run on a CPU is the run trained alone: dropout
networks included, to float tolerance. A bfloat16 pack on a GPU loops too (autocast does not reach
through vmap); there the step is replayed as one CUDA graph under the engine's conditions, and the
runs' masks come from the GPU's generator, as statistically their own as a vmapped pack's.
"""

from __future__ import annotations

import torch

from kdcore.methods.base import Outputs, Progress
from kdcore.training.augment import random_crop_flip
from kdcore.training.device_data import Split
from kdcore.training.engine import deployed_parameters, evaluate, probe_images
from kdcore.training.fallback import Fallbacks
from kdcore.training.method_calls import method_loss
from kdcore.training.networks import channels_last
from kdcore.training.packing.vmapped import PackSteps, cpu_copy
from kdcore.training.precision import autocast, usable_precision, widened_outputs
from kdcore.training.views import with_views


class LoopedStep(PackSteps):
    def __init__(self, runs: list, models: list[torch.nn.Module], split: Split, progress: Progress,
                 fallbacks: Fallbacks, precision: str, *, lr: float | None = None,
                 optimizer_states: list[dict | None] | None = None):
        """``runs`` (kdcore.training.packing.trainer's): config, wanted taps, modules, teacher_of, shuffle and
        ``rng``, the state torch's generator had once the run's network and modules were built.
        ``precision``: the one the networks run in (the runs', unless its autocast fell back)."""
        self.runs, self.models, self.split, self.progress = runs, models, split, progress
        self.fallbacks, self.precision = fallbacks, precision
        self.config = runs[0].config
        self.device = split.device
        self.owned = [[*model.parameters(), *run.module_parameters()] for run, model in zip(runs, models)]
        self.parameters = deployed_parameters(models[0])
        buffers = [b for run, model in zip(runs, models)
                   for b in [*model.buffers(), *(run.modules.buffers() if run.modules is not None else ())]]
        self._start([p for own in self.owned for p in own], buffers, lr, optimizer_states)

    @classmethod
    def stack(cls, runs: list, models: list[torch.nn.Module], split: Split, progress: Progress,
              fallbacks: Fallbacks) -> "LoopedStep":
        if runs[0].config.channels_last:
            channels_last([*models, *(run.modules for run in runs)], fallbacks)
        precision = usable_precision(runs[0].config.precision, models[0], probe_images(split), fallbacks)
        return cls(runs, models, split, progress, fallbacks, precision)

    def _loss(self, batch: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        """StepRunner's loss: ``batch`` holds each run's batch in turn; returns the sum of the runs' totals
        (their parameters are disjoint, so one backward gives each its own gradients) and every run's
        total and terms."""
        count = len(self.runs)
        batch, labels, index = (t.unflatten(0, (count, -1)) for t in (batch, labels, index))
        total, parts = None, {}
        outside = torch.get_rng_state()
        try:
            for j, (run, model) in enumerate(zip(self.runs, self.models)):
                torch.set_rng_state(run.rng)
                images = random_crop_flip(batch[j], self.split.normalization) if self.config.augment else batch[j]

                def student_on(images, model=model, run=run):
                    with autocast(self.precision, self.device):
                        logits, taps = model(images)
                    return widened_outputs(Outputs(logits, {name: taps[name] for name in run.wanted.student}))

                student, teacher = student_on(images), run.teacher_of(images, index[j])
                method = run.config.method
                if method.views:
                    student, teacher = with_views(method.views, batch[j], student_on, run.teacher_on, student, teacher,
                                                  normalization=self.split.normalization)
                own, terms = method_loss(method, student, teacher, labels[j], run.config.params, self.progress,
                                         run.modules, index[j])
                run.rng = torch.get_rng_state()
                parts[str(j)] = own
                parts.update({f"{j}/{name}": term for name, term in terms.items()})
                total = own if total is None else total + own
        finally:
            torch.set_rng_state(outside)
        self.progress.step.add_(1)
        return total, parts

    def begin_epoch(self, epoch: int) -> None:
        for model in self.models:
            model.train()
        self._begin_epoch(epoch)

    def evaluate(self, split: Split) -> tuple[list[float], list[float]]:
        """Each run's mean cross-entropy and accuracy on ``split`` (test or validation), by engine.evaluate itself."""
        scores = [evaluate(model, split, self.precision) for model in self.models]
        for model in self.models:
            model.train()
        return [loss for loss, _ in scores], [accuracy for _, accuracy in scores]

    def model_state(self, j: int) -> dict[str, torch.Tensor]:
        return {name: value.detach().to("cpu", copy=True) for name, value in self.models[j].state_dict().items()}

    def rng_state(self, j: int) -> torch.Tensor:
        """Run j's generator state, which its checkpoint keeps so that it resumes alone with the same draws."""
        return self.runs[j].rng

    def optimizer_state(self, j: int) -> dict:
        """Run j's optimiser state_dict as engine.train's optimiser would hold it: the network's parameters
        in their order, then its method modules'."""
        own = self.owned[j]
        state = {i: {k: cpu_copy(v) for k, v in self.optimizer.state[p].items()}
                 for i, p in enumerate(own) if self.optimizer.state.get(p)}
        return self._optimizer_state_dict(state, len(own))

    def without(self, leaving: list) -> "LoopedStep | None":
        """The pack of the other runs (None when none is left), each continuing exactly where it was:
        its optimiser state, data order and this epoch's loss sums."""
        keep = [j for j, run in enumerate(self.runs) if run not in leaving]
        if not keep:
            self.close()
            return None
        states = [self.optimizer.state.get(p) for j in keep for p in self.owned[j]]
        smaller = LoopedStep([self.runs[j] for j in keep], [self.models[j] for j in keep], self.split, self.progress,
                             self.fallbacks, self.precision, lr=self.lr, optimizer_states=states)
        self._carry_to(smaller, keep)
        self.close()
        return smaller

    def close(self) -> None:
        """Let go of the networks and moments now: the step and its runner refer to each other."""
        self.runner = self.optimizer = self.orders = None
        self.models, self.owned = [], []
