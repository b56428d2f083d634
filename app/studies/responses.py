"""What the studies API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.runs.responses import BestEpochOut
from app.store.models import STATUSES
from app.web.api import ApiModel, Figure, Fraction, Interval, Timestamp


class DifferenceOut(ApiModel):
    """A group's mean final accuracy minus its baseline student's."""

    mean: float
    ci95: Interval
    p_value: float | None = Field(description="Two-sided; null when the data cannot give it")
    paired: bool = Field(description="True: paired t-test on per-seed differences (same seeds); else Welch's test")
    n: int = Field(description="Pairs when paired; else this group's completed runs")
    baseline_n: int
    significant: bool = Field(description="p < 0.05")


class StudyGroupOut(ApiModel):
    """One configuration across its seeds."""

    key: str = Field(description="The configuration's group key (its runs' config without the seed)")
    label: str
    method: str
    title: str
    role: Literal["teacher", "baseline", "method"]
    architecture: str | None
    params: dict[str, Any]
    n: int = Field(description="Completed runs with a final accuracy")
    mean: Fraction
    std: float | None = Field(description="Sample standard deviation (n − 1)")
    ci95: Interval
    best_mean: Fraction
    runs: int = Field(description="Member runs in all, whatever their status")
    finished: int
    run_ids: list[int]
    seeds: list[int]
    baseline_key: str | None
    vs_baseline: DifferenceOut | None = Field(description="Difference to the baseline student on the same network")


class StudyProgressOut(ApiModel):
    total: int
    done: int = Field(description="Runs that ended: completed, failed or cancelled")
    completed: int
    failed: int
    cancelled: int
    running: int
    queued: int
    fraction: float
    eta_seconds: Figure


class StudyOut(ApiModel):
    id: int
    name: str | None
    status: Literal["queued", "running", "completed", "cancelled"]
    dataset: str
    subset: int | None
    spec: dict[str, Any] = Field(description="The request as validated")
    teacher_run_id: int | None = Field(description="The teacher run named by the request, if any")
    created_at: Timestamp
    cancel_requested: bool
    progress: StudyProgressOut
    run_ids: list[int]
    groups: list[StudyGroupOut] = Field(description="Best mean first")


class StudySummaryOut(ApiModel):
    id: int
    name: str | None
    status: Literal["queued", "running", "completed", "cancelled"]
    dataset: str
    subset: int | None
    methods: list[str]
    seeds: list[int]
    created_at: Timestamp
    total: int
    done: int
    completed: int
    running: int
    queued: int
    failed: int
    cancelled: int


class StudyListOut(ApiModel):
    items: list[StudySummaryOut]
    total: int
    limit: int
    offset: int


class StudyRunOut(BestEpochOut):
    run_id: int
    method: str
    architecture: str | None
    seed: int | None
    params: dict[str, Any]
    status: Literal[STATUSES]
    final_accuracy: Figure
    train_seconds: Figure
    teacher_run_id: int | None
    group: str | None


class StudyExportOut(StudyOut):
    runs: list[StudyRunOut]
    tables: dict[str, str] = Field(description="The paper table as markdown and latex")
