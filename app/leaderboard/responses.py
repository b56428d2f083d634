"""What the leaderboard API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.studies.responses import DifferenceOut, SeedRepeatOut
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
    flops: int | None = Field(None, description="The network's forward FLOPs on one 32×32 image at the run's class "
                              "count (torch's FlopCounterMode: two per multiply-accumulate); None: not in the catalog")
    macs: int | None = Field(None, description="Multiply-accumulates of the same forward pass (flops / 2)")
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
    num_classes: int | None = Field(None, description="The dataset's class count (the network's head)")
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
    flops: int | None = Field(None, description="The network's forward FLOPs on one 32×32 image at the run's class "
                              "count (torch's FlopCounterMode: two per multiply-accumulate); None: not in the catalog")
    macs: int | None = Field(None, description="Multiply-accumulates of the same forward pass (flops / 2)")
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


class LeaderboardGroupListOut(ApiModel):
    items: list[LeaderboardGroupOut]
    total: int = Field(description="Configurations with completed runs (that match the filters), in all")
    runs: int = Field(description="Completed runs with a final accuracy of those configurations, in all (all "
                      "their runs: a study or tag filter chooses configurations, whose figures count every run)")
    limit: int
    offset: int
