"""What each /api endpoint returns, as pydantic models, so that /openapi.json (and /docs) describe every
response. app.services builds the dictionaries; FastAPI checks each against its model on the way out,
and ``extra="forbid"`` turns a field added there but not here into a failing test rather than a silent gap.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import STATUSES

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="UTC, ISO 8601")]
# Non-finite numbers (a diverged loss) are reported as null: JSON has no NaN.
Figure = Annotated[float | None, Field(description="null when unknown or not finite")]


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgressOut(_Response):
    """Where a run's training is; for a completed run, its end."""

    epoch: int | None = Field(description="The epoch under way (1-based), or the last one stored")
    epochs: int | None
    step: int | None = Field(description="Step within the epoch; null at an epoch's end")
    steps: int | None
    phase: Literal["training", "evaluating", "done"]
    fraction: float = Field(ge=0, le=1, description="Share of the whole run done")
    eta_seconds: Figure
    updated_at: Timestamp | None


class RunOut(_Response):
    id: int
    kind: str
    title: str = Field(description="The kind's name for people")
    status: Literal[STATUSES]
    dataset: str | None
    architecture: str | None = Field(description="The network it trains (a KD run's student)")
    config: dict[str, Any] = Field(description="The run's full RunConfig, as stored when it was queued")
    teacher_run_id: int | None
    experiment_id: int | None
    study_id: int | None
    num_classes: int | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    worker: str | None = Field(description="The worker slot holding the run while it runs")
    heartbeat_at: Timestamp | None
    cancel_requested: bool
    resume: bool = Field(description="The next attempt continues from the run's checkpoint")
    error: str | None
    has_checkpoint: bool
    checkpoint_url: str | None
    parameters: int | None = Field(description="Deployed parameter count, once completed")
    final_accuracy: Figure
    best_accuracy: Figure
    best_epoch: int | None
    train_seconds: Figure
    progress: ProgressOut | None


class RunListOut(_Response):
    items: list[RunOut]
    total: int = Field(description="How many runs match the filters in all")
    limit: int
    offset: int


class EpochOut(_Response):
    epoch: int
    train_loss: Figure
    train_terms: dict[str, float | None] = Field(description="Unweighted loss terms, named by the kind")
    test_loss: Figure
    test_accuracy: Figure
    seconds: Figure
    images_per_sec: Figure


class EpochListOut(_Response):
    run_id: int
    items: list[EpochOut]


class ExperimentRunOut(_Response):
    id: int
    kind: str
    seed: int | None
    status: Literal[STATUSES]
    teacher_run_id: int | None
    final_accuracy: Figure


class ExperimentOut(_Response):
    id: int
    dataset: str
    subset: int | None
    overrides: dict[str, Any] = Field(description="The request's fields beyond dataset and subset")
    created_at: Timestamp
    study_id: int | None = Field(description="With two or more seeds, the study of its runs: GET /api/studies/{id} "
                                 "gives each method's mean ± std over the seeds and its difference to the student")
    run_ids: dict[str, int] = Field(description="Run id by kind (with several seeds, the first seed's run)")
    runs: list[ExperimentRunOut] = Field(description="Every run, with its seed")


class ExperimentListOut(_Response):
    items: list[ExperimentOut]
    total: int
    limit: int
    offset: int


class LeaderboardRowOut(_Response):
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


class LeaderboardOut(_Response):
    items: list[LeaderboardRowOut]
    total: int = Field(description="Completed runs with a final accuracy, in all")
    limit: int
    offset: int


class DatasetOut(_Response):
    name: str = Field(description="What a run's config names as its dataset")
    source: str = Field(description="synthetic, torchvision or imagefolder")
    classes: list[str]
    ready: bool = Field(description="False: usable only after a download")
    note: str
    num_classes: int
    train_size: int | None = Field(description="Images in the training split, when known (the most a subset may take)")


class DatasetListOut(_Response):
    items: list[DatasetOut]


class MethodOut(_Response):
    name: str = Field(description="What a run's kind names")
    title: str
    description: str
    needs_teacher: bool
    teaches: bool = Field(description="Its runs can be distilled from")
    default_architecture: str
    default_epochs: int
    loss_terms: list[str] = Field(description="The unweighted train-loss terms its epochs report")
    params: dict[str, Any] = Field(description="JSON schema of its hyperparameters (a run's params)")


class MethodListOut(_Response):
    items: list[MethodOut]


class ArchitectureOut(_Response):
    name: str
    description: str
    parameters: int = Field(description="Trainable parameters at the list's class count")
    taps: dict[str, list[int]] = Field(description="Named feature outputs and their shapes without the batch, "
                                       "for 32×32 inputs")


class ArchitectureListOut(_Response):
    num_classes: int
    items: list[ArchitectureOut]


Fraction = Annotated[float | None, Field(description="Accuracy as a fraction; null without completed runs")]
Interval = Annotated[list[float] | None, Field(description="[low, high], 95 % Student t; null below two values")]


class DifferenceOut(_Response):
    """A group's mean final accuracy minus its baseline student's."""

    mean: float
    ci95: Interval
    p_value: float | None = Field(description="Two-sided; null when the data cannot give it")
    paired: bool = Field(description="True: paired t-test on per-seed differences (same seeds); else Welch's test")
    n: int = Field(description="Pairs when paired; else this group's completed runs")
    baseline_n: int
    significant: bool = Field(description="p < 0.05")


class StudyGroupOut(_Response):
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


class StudyProgressOut(_Response):
    total: int
    done: int = Field(description="Runs that ended: completed, failed or cancelled")
    completed: int
    failed: int
    cancelled: int
    running: int
    queued: int
    fraction: float
    eta_seconds: Figure


class StudyOut(_Response):
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


class StudySummaryOut(_Response):
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


class StudyListOut(_Response):
    items: list[StudySummaryOut]
    total: int
    limit: int
    offset: int


class StudyRunOut(_Response):
    run_id: int
    method: str
    architecture: str | None
    seed: int | None
    params: dict[str, Any]
    status: Literal[STATUSES]
    final_accuracy: Figure
    best_accuracy: Figure
    best_epoch: int | None
    train_seconds: Figure
    teacher_run_id: int | None
    group: str | None


class StudyExportOut(StudyOut):
    runs: list[StudyRunOut]
    tables: dict[str, str] = Field(description="The paper table as markdown and latex")


class ErrorOut(_Response):
    detail: str


class LeaderboardGroupOut(_Response):
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


class LeaderboardGroupListOut(_Response):
    items: list[LeaderboardGroupOut]
    total: int = Field(description="Configurations with completed runs, in all")
    runs: int = Field(description="Completed runs with a final accuracy, in all")
    limit: int
    offset: int
