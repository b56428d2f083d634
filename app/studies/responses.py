"""What the studies API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.runs.responses import BestEpochOut
from app.store.models import STATUSES
from app.web.api import ApiModel, Figure, Fraction, Interval, Timestamp


class DifferenceOut(ApiModel):
    """A group's mean final accuracy minus its baseline student's, over seeds (each seed's runs averaged)."""

    mean: float
    ci95: Interval
    p_value: float | None = Field(description="Two-sided; null when the data cannot give it")
    paired: bool = Field(description="True: paired t-test on per-seed differences (same seeds); else Welch's test")
    n: int = Field(description="Distinct seeds with a result: the pairs when paired")
    baseline_n: int = Field(description="The baseline student's distinct seeds with a result")
    significant: bool = Field(description="p < 0.05")
    baseline_key: str = Field(description="The baseline student's group key")
    baseline_epochs: int | None = Field(description="The baseline student's epochs")


class SeedRepeatOut(ApiModel):
    """A seed that ran more than once in a configuration: its runs repeat one draw and count as one sample."""

    seed: int
    runs: int = Field(description="Completed runs with this seed, averaged into its value")


class ReproducedOut(ApiModel):
    """Our figure over seeds at one epoch choice (kdcore.studies.reproduction)."""

    n: int = Field(description="Distinct seeds with this figure")
    mean: Fraction
    std: float | None
    ci95: Interval
    label: str = Field(description="last epoch, best validation epoch, or best test epoch (optimistic: chosen on "
                       "the test set)")


class PublishedPairOut(ApiModel):
    """What a published result is of: a method, its teacher and student networks (a teacher or a student
    trained alone names one of them), a dataset."""

    method: str
    teacher: str | None
    student: str | None
    dataset: str


class PublishedMatchOut(PublishedPairOut):
    """A published result the configuration reproduces (kdcore.reference), with the verdict."""

    value: float = Field(description="The published top-1 accuracy in percent, as printed")
    accuracy: float = Field(description="The same as a fraction, as ours")
    reported_as: Literal["best epoch", "last epoch", "unstated"]
    runs: int | None = Field(description="Runs the published value averages; null where the source does not say")
    how_reported: str
    params: dict[str, Any] = Field(description="The hyperparameters that make the published variant")
    source: str = Field(description="Repository and file, or paper")
    section: str = Field(description="Section and table of the source")
    note: str
    compared_on: Literal["last", "best", "best_test"] = Field(description="Which of our figures it is compared with")
    compared_label: str | None
    difference: float | None = Field(description="Our mean minus the published value, as a fraction")
    inside: bool | None = Field(description="Whether the published value lies inside our 95 % interval; null at "
                                "n = 1 (no interval)")


class ReproductionOut(ApiModel):
    """Reported vs reproduced: our figures beside every published result the configuration matches."""

    n: int
    validation: bool = Field(description="Whether its runs held out a validation split")
    last: ReproducedOut | None
    best: ReproducedOut | None
    best_test: ReproducedOut | None = Field(description="With a validation split: the best test epoch, beside "
                                            "the validation-selected one")
    published: list[PublishedMatchOut]


class StudyGroupOut(ApiModel):
    """One configuration across its seeds."""

    key: str = Field(description="The configuration's group key (its runs' config without the seed)")
    label: str
    method: str
    title: str
    role: Literal["teacher", "baseline", "method"]
    architecture: str | None
    params: dict[str, Any]
    n: int = Field(description="Distinct seeds with a completed run (repeats of a seed are one sample)")
    mean: Fraction = Field(description="The mean of the seeds' values (each seed's runs averaged)")
    std: float | None = Field(description="Sample standard deviation over the seeds' values (n − 1)")
    ci95: Interval
    best_mean: Fraction
    repeats: list[SeedRepeatOut] = Field(description="Seeds that ran more than once")
    runs: int = Field(description="Member runs in all, whatever their status")
    finished: int
    run_ids: list[int]
    seeds: list[int] = Field(description="Distinct seeds of its runs, whatever their status")
    baseline_key: str | None = Field(description="The baseline student group its runs name, when the study has it")
    baseline_epochs: int | None
    baseline_n: int | None = Field(description="The baseline student's distinct seeds with a result")
    vs_baseline: DifferenceOut | None = Field(description="Difference to the baseline student of the same network, "
                                              "data, recipe and epochs (or the one the study trained for it)")
    reproduction: ReproductionOut | None = Field(description="The published results it reproduces (CIFAR-100 "
                                                 "only), with our figures; null when none matches")


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
    tags: list[str] = Field(description="Its tags, which also tag its runs for filtering")
    note: str | None


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
    tags: list[str]
    note: str | None


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
