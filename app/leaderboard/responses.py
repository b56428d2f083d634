"""What the leaderboard API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.studies.responses import DifferenceOut, PublishedPairOut, ReproductionOut, SeedRepeatOut
from app.web.api import ApiModel, Figure, Fraction, Interval


class LeaderboardRowOut(ApiModel):
    rank: int
    run_id: int
    kind: str
    title: str
    architecture: str | None
    dataset: str | None
    experiment_id: int | None
    teacher_run_id: int | None
    parameters: int | None
    final_accuracy: Figure
    best_accuracy: Figure
    best_epoch: int | None
    epochs: int | None
    train_seconds: Figure
    seed: int | None = Field(description="The run's random seed")
    study_id: int | None = Field(description="The study that launched it, if one did")
    tags: list[str] = Field(description="Its own tags (its study's tags also match a tag filter)")
    params: dict[str, Any] = Field(description="The method's hyperparameters (the run's config params)")


class LeaderboardOut(ApiModel):
    items: list[LeaderboardRowOut]
    total: int = Field(description="Completed runs with a final accuracy (that match the filters), in all")
    limit: int
    offset: int


class LeaderboardGroupOut(ApiModel):
    """One configuration on the leaderboard: its completed runs across seeds (runs that share a group key)."""

    rank: int = Field(description="Position by mean final accuracy among the configurations listed (after any "
                      "filters), best first")
    key: str = Field(description="The group key (\"run-<id>\" for a run whose configuration has none); "
                     "/fragments/leaderboard/group/{key} lists its runs")
    kind: str
    title: str
    label: str = Field(description="The method and the hyperparameters that differ among the groups listed")
    role: Literal["teacher", "baseline", "method"]
    architecture: str | None
    dataset: str | None
    subset: int | None
    epochs: int | None
    params: dict[str, Any] = Field(description="The method's hyperparameters")
    n: int = Field(description="Distinct seeds with a completed run: repeats of a seed are one sample")
    mean: Fraction = Field(description="The mean of the seeds' values (each seed's runs averaged)")
    std: float | None = Field(description="Sample standard deviation over the seeds (n − 1); null for one seed")
    ci95: Interval
    best_mean: Fraction
    repeats: list[SeedRepeatOut] = Field(description="Seeds that ran more than once")
    parameters: int | None
    train_seconds: Figure
    run_ids: list[int]
    seeds: list[int]
    study_ids: list[int] = Field(description="Studies its runs belong to")
    teacher_key: str | None = Field(description="The group key of its teacher's configuration")
    teacher_mean: Fraction
    vs_teacher: float | None = Field(description="Its mean minus the teacher configuration's mean")
    compression: float | None = Field(description="The teacher's parameter count over its own")
    baseline_key: str | None = Field(description="The baseline student's group its runs name: of the baseline method, "
                                     "with the same network, data, recipe and epochs, or the one trained by the "
                                     "experiment or study that launched them; null when it has no completed run")
    baseline_n: int | None = Field(description="The baseline student's distinct seeds")
    baseline_mean: Fraction
    baseline_epochs: int | None
    vs_baseline: DifferenceOut | None = Field(description="Its seeds' values minus the baseline student's: a paired "
                                              "t-test when both have the same seeds, else Welch's test")
    missing_baseline: dict[str, Any] | None = Field(description="When no baseline student has completed: its "
                                                    "configuration, to launch (POST /api/runs)")
    reproduction: ReproductionOut | None = Field(description="The published results it reproduces (CIFAR-100 "
                                                 "only), with our figures; null when none matches")


class LeaderboardGroupListOut(ApiModel):
    items: list[LeaderboardGroupOut]
    total: int = Field(description="Configurations with completed runs (that match the filters), in all")
    runs: int = Field(description="Completed runs with a final accuracy of those configurations, in all (all "
                      "their runs: a study or tag filter chooses configurations, whose figures count every run)")
    limit: int
    offset: int


class ReproductionRowOut(PublishedPairOut):
    """A configuration beside one published result it matches (kdcore.studies.reproduction.reproduction_rows)."""

    group: str = Field(description="The configuration's group key")
    label: str | None
    n: int = Field(description="Distinct seeds with a completed run")
    published: float = Field(description="The published top-1 accuracy in percent, as printed")
    reported_as: str = Field(description="How the published value was read: its epoch and runs")
    published_runs: int | None
    source: str
    section: str
    compared_on: str | None = Field(description="Which of our figures it is compared with")
    our_mean: Fraction
    our_std: float | None
    our_ci95_low: float | None
    our_ci95_high: float | None
    inside: bool | None = Field(description="Whether the published value lies inside our 95 % interval; null at "
                                "n = 1")
    difference: float | None = Field(description="Our mean minus the published value, as a fraction")
    last_mean: Fraction
    last_std: float | None
    best_mean: Fraction
    best_std: float | None
    best_label: str | None
    best_test_mean: Fraction
    best_test_std: float | None
    params: dict[str, Any]
    note: str


class ReproductionListOut(ApiModel):
    items: list[ReproductionRowOut] = Field(description="Best mean first, then each configuration's results")
    groups: int = Field(description="Configurations that reproduce a published result")
    truncated: bool = Field(description="More configurations could match than were described")
