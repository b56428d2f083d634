"""What the leaderboard API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.studies.responses import DifferenceOut
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


class LeaderboardOut(ApiModel):
    items: list[LeaderboardRowOut]
    total: int = Field(description="Completed runs with a final accuracy, in all")
    limit: int
    offset: int


class LeaderboardGroupOut(ApiModel):
    """One configuration on the leaderboard: its completed runs across seeds (runs that share a group key)."""

    rank: int = Field(description="Position by mean final accuracy, best first")
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
    n: int = Field(description="Completed runs with a final accuracy")
    mean: Fraction
    std: float | None = Field(description="Sample standard deviation (n − 1); null for a single run")
    ci95: Interval
    best_mean: Fraction
    parameters: int | None
    train_seconds: Figure
    run_ids: list[int]
    seeds: list[int]
    study_ids: list[int] = Field(description="Studies its runs belong to")
    teacher_key: str | None = Field(description="The group key of its teacher's configuration")
    teacher_mean: Fraction
    vs_teacher: float | None = Field(description="Its mean minus the teacher configuration's mean")
    compression: float | None = Field(description="The teacher's parameter count over its own")
    baseline_key: str | None = Field(description="The baseline student's group: of the baseline method, with the "
                                     "same network, data and recipe (the one with most runs)")
    baseline_n: int | None
    baseline_mean: Fraction
    vs_baseline: DifferenceOut | None = Field(description="Its final accuracies minus the baseline student's: a paired "
                                              "t-test when both have the same distinct seeds, else Welch's test")


class LeaderboardGroupListOut(ApiModel):
    items: list[LeaderboardGroupOut]
    total: int = Field(description="Configurations with completed runs, in all")
    runs: int = Field(description="Completed runs with a final accuracy, in all")
    limit: int
    offset: int
