"""Database tables: runs, their per-epoch metrics, and experiments (a teacher and the runs distilled from it)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

# pruned: a search's trial its pruner stopped early (app.searches); it keeps the epochs it reached.
STATUSES = ("queued", "running", "completed", "failed", "cancelled", "pruned")
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("completed", "failed", "cancelled", "pruned")
# Ids must fit a signed 64-bit column; larger numbers from clients are rejected before any query.
MAX_ID = 2**63 - 1
# 64-bit ids (PostgreSQL's INTEGER has 32). SQLite keeps INTEGER: only an INTEGER PRIMARY KEY is the
# auto-numbered rowid there, and its integers are 64-bit anyway.
ID = BigInteger().with_variant(Integer(), "sqlite")
# Ids are never given again after a delete, so old links and exported CSVs never point at another row:
# SQLite without AUTOINCREMENT hands out the largest rowid again; PostgreSQL's BIGSERIAL sequences never do.
# Tables created before are rebuilt with it at start-up (app.store.autoincrement).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Lock(SQLModel, table=True):
    """Named rows that a transaction UPDATEs first to run one at a time (see app.store.queue.admission)."""

    __tablename__ = "locks"

    name: str = Field(primary_key=True)
    taken_at: datetime | None = None


class DataMigration(SQLModel, table=True):
    """Data migrations that ran to the end (app.store.migrations), so that a start-up runs each once."""

    __tablename__ = "data_migrations"

    name: str = Field(primary_key=True)
    done_at: datetime = Field(default_factory=utcnow)


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    dataset: str
    subset: int | None = Field(default=None, sa_type=ID)
    # The request's overrides, kept so the experiment can be shown and repeated.
    overrides: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Benchmark(SQLModel, table=True):
    """A cifar100-benchmark submission (kdcore.studies.benchmark): its teachers, one per teacher network, and
    its studies, one per teacher network and learning rate (each study names it in benchmark_id)."""

    __tablename__ = "benchmarks"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str | None = None
    dataset: str
    # The request as validated (kdcore.studies.benchmark.BenchmarkSpec).
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # By teacher network, the teacher run its studies distil from (given, or queued by the benchmark).
    teachers: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Its studies in the table's order: [{"study_id", "teacher", "pairs": ["teacher:student", ...]}].
    layout: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Study(SQLModel, table=True):
    """Runs submitted together: configurations (methods × grid × networks) over seeds (kdcore.studies.study)."""

    __tablename__ = "studies"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str | None = None
    dataset: str
    subset: int | None = Field(default=None, sa_type=ID)
    # The request as validated (kdcore.studies.study.StudySpec), kept so the study can be shown and repeated.
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The teacher run its students distil from when the request named one (else the study trains its own).
    teacher_run_id: int | None = Field(default=None, sa_type=ID)
    total_runs: int = 0
    cancel_requested: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # Free-text labels and a note (app.runs.annotations); the tags table indexes the tags for filters.
    # NULL (a study stored before tags existed) reads as none.
    tags: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    note: str | None = None
    # The benchmark that submitted it (app.studies.benchmarks); NULL for a study submitted alone.
    benchmark_id: int | None = Field(default=None, index=True, sa_type=ID)


class Search(SQLModel, table=True):
    """A hyperparameter search (app.searches): Optuna asks for trials, each an ordinary run of the queue; then
    its best configurations are confirmed over seeds by a study. Optuna's state is rebuilt from the trials' runs."""

    __tablename__ = "searches"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str | None = None
    dataset: str
    # The request as validated (app.searches.service), kept so the search can be shown, continued and repeated.
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    teacher_run_id: int | None = Field(default=None, sa_type=ID)
    trials: int = 0
    parallelism: int = 1
    # searching -> confirming -> completed; or cancelled. The driver (app.searches.driver) moves it on.
    phase: str = Field(default="searching", index=True)
    confirmation_study_id: int | None = Field(default=None, sa_type=ID)
    # Confirm now (the page's button): no more trials are asked; the confirmation starts once none is active.
    confirm_requested: bool = False
    cancel_requested: bool = False
    # Why the search could not go on (e.g. its confirmation study was refused); NULL while all is well.
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    # Covers the grouped leaderboard's GROUP BY over completed runs without reading the rows.
    # The next two serve app.leaderboard.board and app.leaderboard.completed.leaderboard_version at 100,000 runs: every
    # configuration ranked by its seeds' values (and each method's best found) in one pass over an index in
    # GROUP BY order, and the latest finish found without a scan. Neither starts with the status: without
    # planner statistics SQLite takes any equality on a leading column for a match of about ten rows, so a
    # status-led index would lure queries over the completed runs (most of them) into reading them all.
    # ix_runs_study_status counts a study's runs by status (lists of studies, their progress) without reading them.
    __table_args__ = (Index("ix_runs_status_group_accuracy", "status", "group_key", "final_accuracy"),
                      Index("ix_runs_kind_group_seed_status_accuracy", "kind", "group_key", "seed", "status",
                            "final_accuracy"),
                      Index("ix_runs_finished_at", "finished_at"),
                      Index("ix_runs_study_status", "study_id", "status"),
                      # Each configuration's dataset, network and epochs (what the board's filters ask of it)
                      # in one pass over an index, never a row: 20 ms for 18,000 configurations at 100,000 runs.
                      Index("ix_runs_group_facts", "group_key", "dataset", "architecture", "epochs"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    kind: str = Field(index=True)
    status: str = Field(default="queued", index=True)
    # RunConfig.to_json_dict(); rebuilt with RunConfig.model_validate in the worker.
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Copies of config fields (a config never changes), so lists need not parse the JSON.
    dataset: str | None = Field(default=None, index=True)
    epochs: int | None = None
    architecture: str | None = Field(default=None, index=True)
    # No foreign key: a finished student keeps naming its teacher even after the teacher is deleted.
    teacher_run_id: int | None = Field(default=None, index=True, sa_type=ID)
    experiment_id: int | None = Field(default=None, foreign_key="experiments.id", index=True, sa_type=ID)
    study_id: int | None = Field(default=None, foreign_key="studies.id", index=True, sa_type=ID)
    # Replicates share a group_key: the same configuration but for the seed (kdcore.studies.study.group_key).
    # baseline_key finds the baseline student that a run is measured against (kdcore.studies.study.baseline_key).
    group_key: str | None = Field(default=None, index=True)
    baseline_key: str | None = Field(default=None, index=True)
    seed: int | None = Field(default=None, sa_type=ID)
    num_classes: int | None = None
    # A search's trial (app.searches): its search and Optuna's trial number; no foreign key, as for teachers.
    search_id: int | None = Field(default=None, index=True, sa_type=ID)
    trial_number: int | None = None
    # The values Optuna asked this trial to try, by "method.param" (kdcore.search.space), so that the search's
    # Optuna state can be rebuilt from the runs after a restart.
    trial_params: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The search's pruner stopped it: the run ends ``pruned`` rather than ``cancelled`` (app.executors.records).
    prune_requested: bool = False

    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    worker: str | None = None
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    # Set when a failed or cancelled run is retried and a checkpoint exists to continue from.
    resume: bool = False
    error: str | None = None

    checkpoint: str | None = None
    parameters: int | None = Field(default=None, sa_type=ID)
    final_accuracy: float | None = Field(default=None, index=True)
    # The best epoch (kdcore.training.selection): of best validation accuracy, or without a validation split the
    # best test epoch (optimistic). best_accuracy is the test accuracy at it (the API's test_accuracy_at_best).
    best_accuracy: float | None = None
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    train_seconds: float | None = None
    # What the trainer said of the completed run (RunResult.notes): a resized dataset, a pack, and each speed
    # path it fell back from ("fallback: ...", kdcore.training.fallback). NULL reads as none.
    notes: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

    # Live progress, written by the worker about once a second.
    # The method's pre-stage the progress is of (kdcore.methods.base.Stage, e.g. "init"); NULL: the main stage.
    progress_stage: str | None = None
    progress_epoch: int | None = None
    progress_epochs: int | None = None
    progress_step: int | None = None
    progress_steps: int | None = None
    progress_at: datetime | None = None
    eta_seconds: float | None = None
    # The first step report of the current attempt (when, and the fraction of the run done then): the ETA is
    # the pace since then, so that start-up (spawning, loading data, caching the teacher) is not taken for it.
    pace_from_at: datetime | None = None
    pace_from_fraction: float | None = None

    # Free-text labels and a note, as for a study (app.runs.annotations); NULL reads as none.
    tags: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    note: str | None = None

    # The teacher registry (app.executors.checksums): the sha256 of a completed teacher's checkpoint file,
    # recorded by the worker as the run completes; a KD run or study is refused a teacher whose file no
    # longer matches it. NULL: not a completed teacher (or one stored before the registry, until start-up).
    checkpoint_sha256: str | None = None
    # Where a teacher came from: NULL, trained here; else imported (app.teachers): the uploaded file's name,
    # format, sha256 and the recipe its source states (a preset name, or null: not stated).
    origin: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Tag(SQLModel, table=True):
    """One tag of a run or of a study, so that filters find the tagged runs through an index rather than by
    reading every run's list (app.runs.annotations writes both, in one transaction, and nothing else does)."""

    __tablename__ = "tags"
    # AUTOINCREMENT: the board's caches know a tag edit by the highest id, which must never come back.
    __table_args__ = (Index("ix_tags_tag_run", "tag", "run_id"), Index("ix_tags_tag_study", "tag", "study_id"),
                      NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    tag: str
    run_id: int | None = Field(default=None, foreign_key="runs.id", index=True, sa_type=ID)
    study_id: int | None = Field(default=None, foreign_key="studies.id", index=True, sa_type=ID)


class Epoch(SQLModel, table=True):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_epoch_run_epoch"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: int = Field(foreign_key="runs.id", sa_type=ID)
    epoch: int
    train_loss: float
    # Unweighted terms named by the method's loss_terms, e.g. {"ce": 1.2, "soft_target": 0.4}.
    train_terms: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_sec: float
    # On the run's validation split (RunConfig.validation); NULL without one.
    val_loss: float | None = None
    val_accuracy: float | None = None


class StageEpoch(SQLModel, table=True):
    """An epoch of a method's pre-stage (kdcore.methods.base.Stage), numbered 1..epochs of its own stage. Kept
    apart from the main stage's epochs, which alone make the run's curves' epochs, its best epoch, studies
    and timings."""

    __tablename__ = "stage_epochs"
    __table_args__ = (UniqueConstraint("run_id", "stage", "epoch", name="uq_stage_epoch_run_stage_epoch"),
                      NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: int = Field(foreign_key="runs.id", index=True, sa_type=ID)
    stage: str
    epoch: int
    epochs: int
    train_loss: float
    train_terms: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_sec: float


class LatencyRequest(SQLModel, table=True):
    """A request to time networks (app.latency): a worker slot takes it when it has no run to train, and
    measures in a process of its own (kdcore.architectures.latency), never in the web process."""

    __tablename__ = "latency_requests"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    status: str = Field(default="queued", index=True)  # queued, running, completed, failed
    num_classes: int = 10
    networks: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    min_run_time: float = 0.5
    requested_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    error: str | None = None


class Latency(SQLModel, table=True):
    """One measured figure: a network's forward pass on one target (cpu, cuda, onnxruntime-cpu) at a batch and
    thread count, with the key it holds for (device, its model, torch and onnxruntime versions). A new
    measurement under the same key replaces the old one: the cache is the latest figure per key."""

    __tablename__ = "latencies"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    request_id: int | None = Field(default=None, index=True, sa_type=ID)
    network: str = Field(index=True)
    num_classes: int
    target: str
    batch: int
    threads: int | None = None
    device: str
    device_model: str
    torch_version: str
    onnxruntime_version: str | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    blocks: int = 0
    calls: int = 0
    unavailable: str | None = None
    min_run_time: float | None = None
    measured_at: datetime = Field(default_factory=utcnow)
