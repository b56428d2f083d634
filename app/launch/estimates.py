"""How long a run will train, said before it is launched: from the epochs of completed runs of the same
method, network, batch and precision on the same kind of device (app.launch.timings), scaled to the data
size; else from the network's arithmetic (its forward pass's FLOPs) at this device's measured pace; else,
where nothing has finished on such a device yet, at the pace of the development machines. Each estimate
says which of these it is.

The model of an epoch is kdcore.studies.pace's (``kd benchmark`` uses it too). A distilling run with cached
teacher outputs adds one teacher pass.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable

from app.launch.timings import DEVICES, Measured
from kdcore.config import RunConfig
from kdcore.registry import METHODS
from kdcore.studies.pace import PRIOR, epoch_seconds


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # "measured", "scaled", "estimated" or "rough"
    how: str  # where the figure comes from, in words


@dataclass(frozen=True)
class Planned:
    """A run to estimate: its config, its data size (the subset, else the training split) and the forward
    FLOPs of the teacher it distils from (None: no teacher, or unknown)."""

    config: RunConfig
    images: int
    teacher_flops: int | None = None


class Estimator:
    """Estimates for runs on ``device`` (None: unknown, taken to be a CPU), from ``measured`` paces and the
    networks' forward FLOPs (``flops``, by architecture)."""

    def __init__(self, measured: list[Measured], device: str | None, flops: dict[str, int]):
        self.device, self.known = device or "cpu", device is not None
        self.flops = flops
        self.measured = [m for m in measured if m.device == self.device and m.images]
        self.prior = PRIOR[self.device]
        # This machine against the development one: how much longer (or shorter) its runs took than the model
        # says, over the runs without a teacher (whose teacher's cost, when online, the model cannot know).
        ratios = [m.epoch_seconds / model for m in self.measured if m.kind in METHODS
                  and not METHODS[m.kind].needs_teacher
                  and (model := self._model_epoch(m.architecture, m.batch_size, m.images)) is not None]
        self.pace = statistics.median(ratios) if ratios else 1.0
        self.calibrated = len(ratios)

    @property
    def where(self) -> str:
        """The device, as the estimates name it ("a CPU worker")."""
        return f"a {DEVICES[self.device]} worker"

    def _model_epoch(self, architecture: str | None, batch_size: int, images: int, online_teacher: int = 0) -> float | None:
        forward = self.flops.get(architecture or "")
        if forward is None:
            return None
        return epoch_seconds(self.prior, forward, batch_size, images, online_teacher)

    def run(self, planned: Planned) -> Estimate | None:
        """The run's training time (start-up aside), or None when its network's size is unknown."""
        config, images = planned.config, planned.images
        method = config.method
        # A method's pre-stage (kdcore.methods.base.Stage) counts as so many more epochs of the same cost.
        epochs = config.epochs + (method.pre_stage.epochs(config.params) if method.pre_stage else 0)
        cached_teacher = method.needs_teacher and config.cache_teacher and not config.augment
        once = 0.0
        if cached_teacher and planned.teacher_flops:  # the teacher's outputs, computed once for the run
            once = images * planned.teacher_flops / self.prior.flops_per_second * self.pace
        same = [m for m in self.measured if (m.architecture, m.batch_size, m.precision) ==
                (config.architecture, config.batch_size, config.precision)]
        own = [m for m in same if m.kind == config.kind]
        for matches, of in ((own, f"{config.kind} run"), (same, "run of other methods")):
            if matches:
                sizes = sorted({m.images for m in matches})
                exact = images in sizes and matches is own
                if images in sizes:
                    epoch = statistics.median(m.epoch_seconds for m in matches if m.images == images)
                    scaled = ""
                else:
                    epoch = _scaled(matches, images)
                    scaled = f", scaled from {' and '.join(f'{size:,}' for size in sizes)} images"
                runs = f"{len(matches)} {of}" if len(matches) == 1 else f"{len(matches)} {of.replace(' run', ' runs', 1)}"
                how = (f"measured: {runs} of {config.architecture} at batch {config.batch_size} on {self.where} "
                       f"here{scaled}")
                return Estimate(epochs * epoch + once, "measured" if exact else "scaled", how)
        online = planned.teacher_flops if method.needs_teacher and not cached_teacher and planned.teacher_flops else 0
        model = self._model_epoch(config.architecture, config.batch_size, images, online or 0)
        if model is None:
            return None
        if self.calibrated:
            how = (f"estimated from {config.architecture}'s size and the pace of {self.calibrated} runs measured "
                   f"on {self.where} here")
            return Estimate(epochs * model * self.pace + once, "estimated", how)
        reference = "a 2-core development CPU" if self.device == "cpu" else "one H100"
        how = (f"a rough estimate: nothing has finished on {self.where} here yet, so {config.architecture}'s "
               f"arithmetic is timed at the pace of {reference}")
        return Estimate(epochs * model + once, "rough", how)

    def total(self, runs: Iterable[Planned]) -> Estimate | None:
        """The runs one after another: their sum, as certain as the least certain of them."""
        found = [self.run(planned) for planned in runs]
        if not found or any(e is None for e in found):
            return None
        order = ("measured", "scaled", "estimated", "rough")
        worst = max(found, key=lambda e: order.index(e.basis))
        return Estimate(sum(e.seconds for e in found), worst.basis, worst.how)


def _scaled(matches: list[Measured], images: int) -> float:
    """An epoch's seconds on ``images``, from paces measured on other sizes: along the line through them (a
    cost per image and one per epoch) where they cover two sizes, else in proportion to the images."""
    sizes = [m.images for m in matches]
    if len(set(sizes)) < 2:
        return statistics.median(m.epoch_seconds / m.images for m in matches) * images
    slope, intercept = statistics.linear_regression(sizes, [m.epoch_seconds for m in matches])
    if slope <= 0:  # noise, not a pace: fall back to the proportion
        return statistics.median(m.epoch_seconds / m.images for m in matches) * images
    return max(0.0, intercept) + slope * images
