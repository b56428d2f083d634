"""What a search will cost, said before it starts, and the budget it is refused beyond. Counted in runs and in
run-epochs (an upper bound: pruning only shortens trials), and in hours when an epoch's time is known (the
caller measures one, or knows it from earlier runs of the recipe). Torch-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Estimate:
    trials: int
    trial_epochs: int  # every trial at its full length: the most the search can take
    confirmation_runs: int
    confirmation_epochs: int
    seconds_per_epoch: float | None = None

    @property
    def runs(self) -> int:
        return self.trials + self.confirmation_runs

    @property
    def epochs(self) -> int:
        return self.trial_epochs + self.confirmation_epochs

    @property
    def hours(self) -> float | None:
        return None if self.seconds_per_epoch is None else self.epochs * self.seconds_per_epoch / 3600

    def to_json_dict(self) -> dict:
        return {**asdict(self), "runs": self.runs, "epochs": self.epochs, "hours": self.hours}

    def text(self) -> str:
        hours = "" if self.hours is None else f", about {self.hours:.2f} device-hours at {self.seconds_per_epoch:.1f} s " \
            "an epoch"
        return (f"at most {self.runs} runs ({self.trials} trials + {self.confirmation_runs} confirmation runs) and "
                f"{self.epochs} run-epochs{hours}")


def estimate(trials: int, epochs: int, top_k: int, seeds: int, confirm_epochs: int, references: int = 2,
             seconds_per_epoch: float | None = None) -> Estimate:
    """``trials`` of ``epochs`` each, then (top_k + references) configurations × ``seeds`` at ``confirm_epochs``
    (references: the baseline student and plain KD)."""
    confirmation = (top_k + references) * seeds
    return Estimate(trials, trials * epochs, confirmation, confirmation * confirm_epochs, seconds_per_epoch)


def budget_error(cost: Estimate, max_runs: int | None, max_hours: float | None) -> str | None:
    """Why the search is refused (None: it fits the budget)."""
    if max_runs is not None and cost.runs > max_runs:
        return f"the search would take {cost.text()}, over the limit of {max_runs} runs"
    if max_hours is not None and cost.hours is not None and cost.hours > max_hours:
        return f"the search would take {cost.text()}, over the limit of {max_hours:g} hours"
    return None
