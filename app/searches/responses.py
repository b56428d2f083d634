"""What the search API answers and what POST /api/searches takes, as pydantic models that document them."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field, create_model

from app.store.models import MAX_ID, STATUSES
from app.studies.responses import StudyGroupOut, StudyProgressOut
from app.studies.schemas import optional_run_field
from app.web.api import ApiModel, Figure, Timestamp
from kdcore.search.optuna_setup import PRUNERS, SAMPLERS
from kdcore.studies.study import RECIPE_FIELDS

Phase = Literal["searching", "confirming", "completed", "cancelled", "failed"]


SearchCreate = create_model(
    "SearchCreate",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    __doc__="A search: Optuna's trials (each a queued run) over a space of the methods' declared hyperparameters, "
    "pruned on validation accuracy, then its top configurations confirmed over seeds by a study.",
    methods=(list[str], Field(description="Methods to search, e.g. [\"kd\"]; with several the method is a choice")),
    teacher_run_id=(Optional[int], Field(None, ge=1, le=MAX_ID, description="The teacher run the trials distil from")),
    space=(list[str], Field(description="METHOD.PARAM=LOW:HIGH, log:LOW:HIGH or A,B,C, one item per hyperparameter")),
    trials=(int, Field(20, ge=1, le=1000, description="The trial budget")),
    parallelism=(int, Field(2, ge=1, le=64, description="Trials queued or running at once")),
    sampler=(Literal[SAMPLERS], Field("tpe")),  # type: ignore[valid-type]
    pruner=(Literal[PRUNERS], Field("hyperband", description="On per-epoch validation accuracy")),  # type: ignore[valid-type]
    top_k=(int, Field(3, ge=1, le=20, description="Configurations the confirmation re-runs")),
    seeds=(int, Field(5, ge=2, le=50, description="Fresh seeds of the confirmation")),
    seed=(int, Field(0, ge=0, description="The trials' seed and the sampler's")),
    max_runs=(Optional[int], Field(None, ge=1, description="Refuse a search that would queue more runs")),
    max_hours=(Optional[float], Field(None, gt=0, description="Refuse a search estimated to take longer")),
    name=(Optional[str], Field(None, max_length=200)),
    **{name: optional_run_field(name) for name in ("dataset", "subset", "epochs", "architecture", *RECIPE_FIELDS)},
)


class TrialOut(ApiModel):
    number: int
    run_id: int
    params: dict[str, Any] = Field(description="The values Optuna asked for, by METHOD.PARAM")
    status: Literal[STATUSES]  # type: ignore[valid-type]
    last_epoch: int | None = Field(description="The last epoch it stored (where a pruned trial stopped)")
    val_accuracy: Figure = Field(description="Its objective: validation accuracy at its best validation epoch")
    seconds: Figure
    active: bool
    started_at: Timestamp | None
    finished_at: Timestamp | None


class SearchProgressOut(ApiModel):
    asked: int
    budget: int
    done: int
    completed: int
    pruned: int
    failed: int
    cancelled: int
    running: int
    queued: int
    fraction: float
    eta_seconds: Figure = Field(description="Of the phase under way")


class VerdictOut(ApiModel):
    status: Literal["held_up", "inside_noise", "worse", "unknown"]
    group: str | None
    text: str


class ConfirmationOut(ApiModel):
    study_id: int
    deleted: bool
    status: str | None = None
    progress: StudyProgressOut | None = None
    groups: list[StudyGroupOut]
    verdict: VerdictOut | None


class SearchSummaryOut(ApiModel):
    id: int
    name: str | None
    phase: Phase
    dataset: str
    methods: list[str]
    space: list[str]
    sampler: str
    pruner: str
    trials_budget: int
    parallelism: int
    top_k: int
    seeds: int
    teacher_run_id: int | None
    estimate: dict[str, Any] | None = Field(description="kdcore.search.cost's estimate, said before it started")
    max_runs: int | None
    max_hours: float | None
    confirmation_study_id: int | None
    cancel_requested: bool
    confirm_requested: bool
    error: str | None
    created_at: Timestamp
    finished_at: Timestamp | None


class SearchOut(SearchSummaryOut):
    trials: list[TrialOut]
    best: TrialOut | None = Field(description="The completed trial of the highest validation accuracy")
    confirmation: ConfirmationOut | None
    progress: SearchProgressOut
    charts: dict[str, Any] | None = Field(None, description="The page's chart specs (?charts=true)")


class SearchListOut(ApiModel):
    items: list[SearchSummaryOut]
    total: int
    limit: int
    offset: int
