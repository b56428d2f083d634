"""A pack's stacked weights, optimiser and training step (kdcore.training.packing.trainer trains with it).

Every stacked tensor has the runs along its first dimension: parameters and buffers
(``torch.func.stack_module_state``), the optimiser's moments, each epoch's data orders. A run's slice of
them, in the engine's parameter order, is what its checkpoint holds; dropping runs slices them all.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from kdcore.methods.base import Outputs, Progress
from kdcore.training.augment import random_crop_flip
from kdcore.training.device_data import EVAL_BATCH, Split
from kdcore.training.fallback import Fallbacks
from kdcore.training.method_calls import method_loss
from kdcore.training.recipe import lr_at, make_optimizer, set_lr
from kdcore.training.steps import StepRunner, graphs_apply
from kdcore.training.views import VIEWS


class PackSteps:
    """What both kinds of pack step share: each epoch's data orders (one per run, drawn as engine.train
    draws them), the step through them, and the runs' loss sums (after the pack's total, each run's
    weighted total then its terms, as StepRunner sums them)."""

    runs: list
    split: Split
    progress: Progress
    config: object
    device: torch.device
    runner: StepRunner | None
    optimizer: torch.optim.Optimizer | None
    orders: torch.Tensor | None
    fallbacks: Fallbacks

    def _start(self, trained: list[torch.Tensor], buffers: list[torch.Tensor], lr: float | None,
               optimizer_states: list[dict | None] | None) -> None:
        """The pack's optimiser (with the moments a larger pack had, and its learning rate) and its step
        runner, replayed as a CUDA graph under the engine's conditions. A speed path that raises is left for
        the pack's plain one (``self.fallbacks``: kdcore.training.fallback), and for its smaller packs too."""
        self.optimizer = make_optimizer(self.config, trained, self.device, self.fallbacks)
        for parameter, state in zip(trained, optimizer_states or ()):
            if state:
                self.optimizer.state[parameter] = state
        self.lr = lr
        if lr is not None:
            set_lr(self.optimizer, lr)
        self.widths = [1 + len(run.config.method.loss_terms) for run in self.runs]
        self.offsets = [1 + sum(self.widths[:j]) for j in range(len(self.runs))]
        self.orders = None
        # Buffers count as counters: a graph capture's warm-up steps must not move the running statistics.
        self.runner = StepRunner(trained, self.optimizer, self._loss, self.split,
                                 len(self.runs) * self.config.batch_size, sum(self.widths),
                                 graphs_apply(self.config, self.device), self.fallbacks,
                                 counters=(self.progress.step, *buffers),
                                 refused=next((r.graph_refusal for r in self.runs if r.graph_refusal), None))

    def _begin_epoch(self, epoch: int) -> None:
        self.progress.epoch.fill_(epoch)
        self.lr = lr_at(self.config, epoch)
        set_lr(self.optimizer, self.lr)
        self.orders = torch.stack([torch.randperm(len(self.split), generator=run.shuffle)
                                   for run in self.runs]).to(self.device)

    def step(self, step: int) -> None:
        size = self.config.batch_size
        self.runner.step(self.orders[:, step * size : (step + 1) * size].reshape(-1))

    def take_sums(self, steps: int) -> list[list[float]]:
        """Each run's total and terms averaged over the epoch's ``steps``, as the engine reports them (one host
        sync)."""
        values = (self.runner.take_sums() / steps).tolist()
        return [values[offset : offset + width] for offset, width in zip(self.offsets, self.widths)]

    def _optimizer_state_dict(self, state: dict, parameters: int) -> dict:
        """A run's optimiser state_dict from its ``state`` by index: the pack's one group of options."""
        (group,) = self.optimizer.param_groups
        options = {k: cpu_copy(v) for k, v in group.items() if k != "params"}
        return {"state": state, "param_groups": [{**options, "params": list(range(parameters))}]}

    def _carry_to(self, smaller: "PackSteps", keep: list[int]) -> None:
        """Give the pack of the runs in ``keep`` their data orders and this epoch's loss sums."""
        sums = torch.cat([self.runner.sums[self.offsets[j] : self.offsets[j] + self.widths[j]] for j in keep])
        smaller.runner.sums[1:].copy_(sums)
        if self.orders is not None:
            smaller.orders = self.orders.index_select(0, torch.tensor(keep, device=self.device))


class PackedStep(PackSteps):
    def __init__(self, runs: list, base: torch.nn.Module, params: dict[str, torch.Tensor],
                 buffers: dict[str, torch.Tensor], split: Split, progress: Progress, fallbacks: Fallbacks, *,
                 lr: float | None = None, optimizer_states: list[dict | None] | None = None):
        """``runs`` (kdcore.training.packing.trainer's): config, wanted taps, modules, teacher_of, shuffle.
        ``base``: the architecture on the meta device, the structure ``functional_call`` fills with a run's slice."""
        self.runs, self.base, self.params, self.buffers = runs, base, params, buffers
        self.split, self.progress, self.fallbacks = split, progress, fallbacks
        self.config = runs[0].config
        self.device = split.device
        self.state_keys = list(base.state_dict().keys())
        self.parameters = sum(p[0].numel() for p in params.values())  # one run's deployed network
        self._forward = vmap(self._one, randomness="different")
        trained = [*params.values(), *(p for run in runs for p in run.module_parameters())]
        # The runs' method modules keep their own buffers (a memory bank each), counters as the network's are.
        own_buffers = [b for run in runs if run.modules is not None for b in run.modules.buffers()]
        self._start(trained, [*buffers.values(), *own_buffers], lr, optimizer_states)

    @classmethod
    def stack(cls, runs: list, models: list[torch.nn.Module], split: Split, progress: Progress,
              fallbacks: Fallbacks) -> "PackedStep":
        base = copy.deepcopy(models[0]).to("meta")
        params, buffers = stack_module_state(models)
        return cls(runs, base, params, buffers, split, progress, fallbacks)

    def _one(self, params, buffers, images):
        return functional_call(self.base, (params, buffers), (images,))

    def _loss(self, batch: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        """StepRunner's loss: ``batch`` holds each run's batch in turn; returns the sum of the runs' totals
        (one backward gives each run its own gradients) and every run's total and terms."""
        count = len(self.runs)
        original = batch
        if self.config.augment:
            batch = random_crop_flip(batch, self.split.normalization)
        # A pack's runs ask for the same views (the pack key says so): each view is made for all of them at once.
        views = {name: VIEWS[name](original, self.split.normalization).unflatten(0, (count, -1))
                 for name in self.config.method.views}
        batch, labels, index = (t.unflatten(0, (count, -1)) for t in (batch, labels, index))
        logits, taps = self._forward(self.params, self.buffers, batch)
        on_views = {name: self._forward(self.params, self.buffers, view) for name, view in views.items()}
        total, parts = None, {}
        for j, run in enumerate(self.runs):
            student = Outputs(logits[j], {name: taps[name][j] for name in run.wanted.student})
            teacher = run.teacher_of(batch[j], index[j])
            if views:
                student = student._replace(views={name: Outputs(out[0][j], {t: out[1][t][j] for t in run.wanted.student})
                                                  for name, out in on_views.items()})
                teacher = teacher if teacher is None else teacher._replace(
                    views={name: run.teacher_on(view[j]) for name, view in views.items()})
            own, terms = method_loss(run.config.method, student, teacher, labels[j], run.config.params, self.progress,
                                     run.modules, index[j])
            parts[str(j)] = own
            parts.update({f"{j}/{name}": term for name, term in terms.items()})
            total = own if total is None else total + own
        self.progress.step.add_(1)
        return total, parts

    def begin_epoch(self, epoch: int) -> None:
        self.base.train()
        self._begin_epoch(epoch)

    @torch.inference_mode()
    def evaluate(self, split: Split) -> tuple[list[float], list[float]]:
        """Each run's mean cross-entropy and accuracy on ``split`` (test or validation), as engine.evaluate gives
        them; one host sync."""
        self.base.eval()
        count = len(self.runs)
        forward = vmap(self._one, in_dims=(0, 0, None))  # every run sees the same images
        loss_sum = torch.zeros(count, device=split.device)
        correct = torch.zeros(count, device=split.device, dtype=torch.long)
        for images, labels in split.chunks(max(1, EVAL_BATCH // count)):
            logits = forward(self.params, self.buffers, images)[0]  # (runs, images, classes)
            loss_sum += F.cross_entropy(logits.transpose(1, 2), labels.expand(count, -1), reduction="none").sum(1)
            correct += (logits.argmax(dim=2) == labels).sum(1)
        self.base.train()
        return [v / len(split) for v in loss_sum.tolist()], [c / len(split) for c in correct.tolist()]

    def model_state(self, j: int) -> dict[str, torch.Tensor]:
        """Run j's network state_dict, on the CPU (copies: a view would save the whole stack)."""
        named = {**self.params, **self.buffers}
        return {name: named[name][j].detach().to("cpu", copy=True) for name in self.state_keys}

    def rng_state(self, j: int) -> None:
        """vmap draws the pack's random numbers from torch's own generator: there is no run's own to save."""
        return None

    def optimizer_state(self, j: int) -> dict:
        """Run j's optimiser state_dict as engine.train's optimiser would hold it: the network's parameters
        in their order, then its method modules'."""
        stacked, own = list(self.params.values()), self.runs[j].module_parameters()
        state = {}
        for i, parameter in enumerate(stacked):
            if self.optimizer.state.get(parameter):
                state[i] = {k: cpu_copy(v[j] if _per_run(v, parameter) else v)
                            for k, v in self.optimizer.state[parameter].items()}
        for i, parameter in enumerate(own, start=len(stacked)):
            if self.optimizer.state.get(parameter):
                state[i] = {k: cpu_copy(v) for k, v in self.optimizer.state[parameter].items()}
        return self._optimizer_state_dict(state, len(stacked) + len(own))

    def without(self, leaving: list) -> "PackedStep | None":
        """The pack of the other runs (None when none is left): stacks, moments, data orders and this
        epoch's loss sums sliced, so each remaining run continues exactly where it was."""
        keep = [j for j, run in enumerate(self.runs) if run not in leaving]
        if not keep:
            self.close()
            return None
        index = torch.tensor(keep, device=self.device)
        with torch.no_grad():
            params = {n: p.index_select(0, index).requires_grad_(p.requires_grad) for n, p in self.params.items()}
            buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        states = []
        for parameter in self.params.values():
            state = self.optimizer.state.get(parameter)
            states.append({k: v.index_select(0, index) if _per_run(v, parameter) else v for k, v in state.items()}
                          if state else None)
        for j in keep:
            states.extend(self.optimizer.state.get(p) for p in self.runs[j].module_parameters())
        smaller = PackedStep([self.runs[j] for j in keep], self.base, params, buffers, self.split, self.progress,
                             self.fallbacks, lr=self.lr, optimizer_states=states)
        self._carry_to(smaller, keep)
        self.close()
        return smaller

    def close(self) -> None:
        """Let go of the stacks, moments and CUDA graph now: the step and its runner refer to each other,
        a cycle that only the garbage collector would break."""
        self.runner = self.optimizer = self._forward = self.orders = None
        self.params, self.buffers = {}, {}


def _per_run(value, parameter: torch.Tensor) -> bool:
    """Whether an optimiser state entry is stacked like its parameter (moments), not shared (Adam's step)."""
    return torch.is_tensor(value) and value.dim() > 0 and value.shape == parameter.shape


def cpu_copy(value):
    """A checkpoint's copy of an optimiser state value: detached, on the CPU, not a view of the pack's."""
    return value.detach().to("cpu", copy=True) if torch.is_tensor(value) else value
