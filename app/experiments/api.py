"""The REST API of the tutorial experiment under /api/experiments: queue one, list them, read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.access.auth import require_token
from app.experiments import service
from app.experiments.responses import ExperimentListOut, ExperimentOut
from app.experiments.schemas import ExperimentCreate
from app.store.models import MAX_ID
from app.web.api import JsonObject, SessionDep, documented_body, error_responses

ExperimentId = Annotated[int, Path(ge=1, le=MAX_ID)]
router = APIRouter(prefix="/api", tags=["api"])
writes = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(require_token)])


@writes.post("/experiments", status_code=201, summary="Queue the tutorial experiment: teacher, student, kd, cosine, fitnet",
             response_model=ExperimentOut, responses=error_responses(401, 429),
             openapi_extra=documented_body(ExperimentCreate))
def create_experiment(body: JsonObject, session: SessionDep) -> dict:
    experiment = service.create_experiment(session, body, strict=True)
    return service.experiment_to_dict(experiment, service.experiment_runs(session, experiment.id))


@router.get("/experiments", summary="List experiments, newest first", response_model=ExperimentListOut)
def list_experiments(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    experiments, total = service.list_experiments(session, limit=limit, offset=offset)
    items = [service.experiment_to_dict(e, service.experiment_runs(session, e.id)) for e in experiments]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/experiments/{experiment_id}", summary="One experiment with its runs", response_model=ExperimentOut,
            responses=error_responses(404))
def get_experiment(experiment_id: ExperimentId, session: SessionDep) -> dict:
    experiment = service.get_experiment(session, experiment_id)
    return service.experiment_to_dict(experiment, service.experiment_runs(session, experiment_id))
