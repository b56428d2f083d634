"""A configuration's figures across its seeds: the one function behind the leaderboard, the study pages,
the compare page, the exports and ``kd sweep``'s summary, so that they agree to the last digit.

A seed is one sample however often it ran: runs of one configuration with the same seed repeat one
draw (on a CPU bit for bit), so they are averaged into that seed's value before anything is counted. n
is the number of distinct seeds, the mean, std and interval are over the seeds' values, and the
difference to the baseline student pairs them by seed (kdcore.studies.stats). Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

from kdcore.registry import METHODS
from kdcore.studies.reproduction import reproduction
from kdcore.studies.stats import difference, summarize
from kdcore.studies.study import Role, group_label, varying_params


@dataclass
class Outcome:
    """One run's result as the statistics need it, from the database or from ``kd sweep``.

    ``baseline``: the group key of the baseline student it is compared with (kdcore.studies.study.baseline_key,
    or own_baselines for a run of an experiment or study that trained its own)."""

    group: str
    kind: str
    role: Role
    architecture: str | None
    params: dict[str, Any]
    seed: int | None
    status: str = "completed"
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    run_id: int | None = None
    baseline: str | None = None
    epochs: int | None = None
    # What matching a published result needs (kdcore.studies.reproduction); None where unknown.
    dataset: str | None = None
    subset: int | None = None
    validation: float | None = None
    teacher_architecture: str | None = None
    # The best test epoch's accuracy of a run with a validation split (whose best_accuracy is the test
    # accuracy at its best validation epoch); None where the epochs were not read.
    best_test_accuracy: float | None = None

    @property
    def sample(self) -> Hashable:
        # A run whose seed is unknown can repeat no other: it is a sample of its own.
        return self.seed if self.seed is not None else ("run", self.run_id)


@dataclass(frozen=True)
class Seeds:
    """A configuration's completed runs as samples: by seed, the mean final and best accuracy of its runs
    (and the best test epoch's, where known) and how many ran; with the configuration's group key and
    epochs (what a difference to it names)."""

    finals: dict[Hashable, float]
    bests: dict[Hashable, float]
    runs: dict[Hashable, int]
    group: str | None = None
    epochs: int | None = None
    best_tests: dict[Hashable, float] = field(default_factory=dict)

    @property
    def repeats(self) -> list[dict[str, int]]:
        """The seeds that ran more than once, with their run counts (what pages say beside n)."""
        return [{"seed": seed, "runs": count} for seed, count in sorted(
            ((s, c) for s, c in self.runs.items() if c > 1 and isinstance(s, int)))]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def per_seed(outcomes: Sequence[Outcome]) -> Seeds:
    """Each seed's value: the mean over its completed runs (in any order: fsum rounds once)."""
    finals: dict[Hashable, list[float]] = {}
    bests: dict[Hashable, list[float]] = {}
    best_tests: dict[Hashable, list[float]] = {}
    first = outcomes[0] if outcomes else None
    for outcome in outcomes:
        if outcome.status != "completed" or not _usable(outcome.final_accuracy):
            continue
        finals.setdefault(outcome.sample, []).append(outcome.final_accuracy)
        if _usable(outcome.best_accuracy):
            bests.setdefault(outcome.sample, []).append(outcome.best_accuracy)
        if _usable(outcome.best_test_accuracy):
            best_tests.setdefault(outcome.sample, []).append(outcome.best_test_accuracy)
    return Seeds({s: _mean(v) for s, v in finals.items()}, {s: _mean(v) for s, v in bests.items()},
                 {s: len(v) for s, v in finals.items()}, first.group if first else None,
                 first.epochs if first else None, {s: _mean(v) for s, v in best_tests.items()})


def group_figures(outcomes: Sequence[Outcome] | Seeds, baseline: Sequence[Outcome] | Seeds = ()) -> dict[str, Any]:
    """What every page, export and summary shows of one configuration: ``n`` distinct seeds with a result,
    ``mean``, ``std``, ``ci95`` and ``best_mean`` over their values, the seeds that ran more than once
    (``repeats``), and ``vs_baseline``, the difference to the baseline student's ``baseline`` outcomes
    (paired by seed when both have the same seeds, else Welch's test) with that baseline's key, epochs and
    n; None without a baseline result. Either side may be given as its per_seed already (a leaderboard
    compares many configurations with one student)."""
    mine = outcomes if isinstance(outcomes, Seeds) else per_seed(outcomes)
    figures = {**summarize(list(mine.finals.values())).to_json_dict(),
               "best_mean": summarize(list(mine.bests.values())).mean, "repeats": mine.repeats, "vs_baseline": None}
    theirs = baseline if isinstance(baseline, Seeds) else per_seed(baseline) if baseline else None
    diff = difference(mine.finals, theirs.finals) if theirs is not None else None
    if diff is not None:
        figures["vs_baseline"] = {**diff.to_json_dict(), "baseline_key": theirs.group,
                                  "baseline_epochs": theirs.epochs}
    return figures


@dataclass
class Group:
    key: str
    kind: str
    role: Role
    architecture: str | None
    params: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def baseline(self) -> str | None:
        """The baseline its first run was launched with (runs come oldest first): a group keeps the
        baseline it was born with when runs launched elsewhere join it."""
        return self.outcomes[0].baseline if self.outcomes and self.role != "baseline" else None


def groups_of(outcomes: Iterable[Outcome]) -> list[Group]:
    groups: dict[str, Group] = {}
    for outcome in outcomes:
        group = groups.get(outcome.group)
        if group is None:
            group = groups[outcome.group] = Group(outcome.group, outcome.kind, outcome.role, outcome.architecture,
                                                  outcome.params)
        group.outcomes.append(outcome)
    return list(groups.values())


def summarize_groups(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """One entry per configuration, best mean first: group_figures over its runs, against the baseline
    student group its runs name when that group is among ``outcomes`` (oldest first)."""
    groups = groups_of(outcomes)
    by_key = {group.key: group for group in groups}
    summaries = []
    for group in groups:
        baseline = by_key.get(group.baseline) if group.baseline != group.key else None
        if baseline is not None and baseline.role != "baseline":
            baseline = None
        mine = per_seed(group.outcomes)
        figures = group_figures(mine, baseline.outcomes if baseline else ())
        baseline_figures = group_figures(baseline.outcomes) if baseline else None
        first = group.outcomes[0]
        summaries.append({
            "key": group.key, "method": group.kind, "title": METHODS[group.kind].title if group.kind in METHODS
            else group.kind, "role": group.role, "architecture": group.architecture, "params": group.params,
            **figures,
            "runs": len(group.outcomes), "run_ids": [o.run_id for o in group.outcomes if o.run_id is not None],
            "seeds": sorted({o.seed for o in group.outcomes if o.seed is not None}),
            "finished": sum(o.status in ("completed", "failed", "cancelled") for o in group.outcomes),
            "baseline_key": baseline.key if baseline else None,
            "baseline_epochs": baseline.outcomes[0].epochs if baseline else None,
            "baseline_n": baseline_figures["n"] if baseline_figures else None,
            "reproduction": reproduction(group.kind, group.architecture, first.teacher_architecture, first.dataset,
                                         group.params, mine, subset=first.subset, validation=first.validation),
        })
    summaries.sort(key=lambda g: (g["mean"] is None, -(g["mean"] or 0.0)))
    return summaries


def labelled_groups(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """summarize_groups, each group with the label tables show (the hyperparameters that vary, and the
    network when the study trains several)."""
    groups = summarize_groups(outcomes)
    varying = varying_params(groups)
    networks_vary = len({g["architecture"] for g in groups if g["role"] != "teacher"}) > 1
    for group in groups:
        group["label"] = group_label(group, varying, networks_vary)
    return groups
