"""What the experiments API returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.store.models import STATUSES
from app.web.api import ApiModel, Figure, Timestamp


class ExperimentRunOut(ApiModel):
    id: int
    kind: str
    seed: int | None
    status: Literal[STATUSES]
    teacher_run_id: int | None
    final_accuracy: Figure


class ExperimentOut(ApiModel):
    id: int
    dataset: str
    subset: int | None
    overrides: dict[str, Any] = Field(description="The request's fields beyond dataset and subset")
    created_at: Timestamp
    study_id: int | None = Field(description="With two or more seeds, the study of its runs: GET /api/studies/{id} "
                                 "gives each method's mean ± std over the seeds and its difference to the student")
    run_ids: dict[str, int] = Field(description="Run id by kind (with several seeds, the first seed's run)")
    runs: list[ExperimentRunOut] = Field(description="Every run, with its seed")


class ExperimentListOut(ApiModel):
    items: list[ExperimentOut]
    total: int
    limit: int
    offset: int
