"""The JSON REST API under /api. Routes are thin: they call app.services and shape HTTP responses."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app import auth, services
from app import leaderboard as board
from app.api_responses import (
    ArchitectureListOut, DatasetListOut, EpochListOut, ErrorOut, ExperimentListOut, ExperimentOut,
    LeaderboardGroupListOut, LeaderboardOut, MethodListOut, RunListOut, RunOut,
)
from app.db import get_session
from app.models import MAX_ID, STATUSES
from app.schemas import ExperimentCreate, RunCreate
from app.settings import Settings
from kdcore.data.catalog import list_datasets
from kdcore.architectures import catalog
from kdcore.registry import KINDS, METHODS

RunId = Annotated[int, Path(ge=1, le=MAX_ID)]
ExperimentId = Annotated[int, Path(ge=1, le=MAX_ID)]
SessionDep = Annotated[Session, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False, description="Needed for state-changing calls when KD_API_TOKEN is set")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_token(request: Request,
                  _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """When KD_API_TOKEN is set, state-changing calls need ``Authorization: Bearer <token>`` (or the
    dashboard's sign-in cookie). ``_credentials`` is only there to document the scheme in OpenAPI."""
    auth.require_token(request)


router = APIRouter(prefix="/api", tags=["api"])
writes = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(require_token)])


def _documented_body(model) -> dict:
    # The body is validated once, by the service layer (which also serves the HTML forms), so that one
    # response lists every problem; the model only documents its shape in the OpenAPI schema. JSON
    # bodies are validated strictly: a value of the wrong type is an error, not coerced as a form's is.
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


JsonObject = Annotated[dict[str, Any], Body()]


def _errors(*codes: int) -> dict:
    # Every error is {"detail": message}, except 422 (FastAPI documents that one itself).
    why = {401: "Missing or wrong API token", 404: "No such run or experiment", 409: "The run's state forbids it",
           429: "The queue is full"}
    return {code: {"model": ErrorOut, "description": why[code]} for code in codes}


@writes.post("/runs", status_code=201, summary="Queue a run", response_model=RunOut,
             responses=_errors(401, 429), openapi_extra=_documented_body(RunCreate))
def create_run(body: JsonObject, session: SessionDep) -> dict:
    return services.run_to_dict(services.create_run(session, body, strict=True))


@router.get("/runs", summary="List runs, newest first", response_model=RunListOut)
def list_runs(
    session: SessionDep,
    status: Literal[STATUSES] | None = None,
    kind: Literal[KINDS] | None = None,
    experiment_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict:
    runs, total = services.list_runs(session, status=status, kind=kind, experiment_id=experiment_id,
                                     limit=limit, offset=offset)
    return {"items": [services.run_to_dict(run) for run in runs], "total": total, "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", summary="One run, with its live progress", response_model=RunOut,
            responses=_errors(404))
def get_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.get_run(session, run_id))


@router.get("/runs/{run_id}/epochs", summary="The run's epoch metrics; ?after=N returns only later epochs",
            response_model=EpochListOut, responses=_errors(404))
def get_epochs(run_id: RunId, session: SessionDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    epochs = services.get_epochs(session, run_id, after)
    return {"run_id": run_id, "items": [services.epoch_to_dict(epoch) for epoch in epochs]}


@router.get("/runs/{run_id}/epochs.csv", summary="The run's epoch metrics as CSV", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per epoch, one column per metric and loss term"},
                       **_errors(404)})
def get_epochs_csv(run_id: RunId, session: SessionDep) -> Response:
    run = services.get_run(session, run_id)
    body = services.epochs_csv(run, services.get_epochs(session, run_id))
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="run-{run_id}-epochs.csv"'})


@router.get("/runs/{run_id}/checkpoint", summary="Download the run's checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}},
                             "description": "The checkpoint file (torch.save format)"},
                       **_errors(404)})
def get_checkpoint(run_id: RunId, session: SessionDep) -> FileResponse:
    run = services.get_run(session, run_id)
    path = FilePath(run.checkpoint) if run.checkpoint else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"run {run_id} has no checkpoint")
    return FileResponse(path, media_type="application/octet-stream", filename=f"run-{run_id}-{run.kind}.pt")


@writes.post("/runs/{run_id}/cancel", summary="Cancel a queued run, or stop a running one within seconds",
             response_model=RunOut, responses=_errors(401, 404, 409))
def cancel_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.cancel_run(session, run_id))


@writes.post("/runs/{run_id}/retry", summary="Queue a failed or cancelled run again (resumes from its checkpoint)",
             response_model=RunOut, responses=_errors(401, 404, 409, 429))
def retry_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.retry_run(session, run_id))


@writes.delete("/runs/{run_id}", status_code=204, summary="Delete a run that is not running",
               responses={204: {"description": "Deleted, with its epochs and checkpoint"}, **_errors(401, 404, 409)})
def delete_run(run_id: RunId, session: SessionDep) -> Response:
    services.delete_run(session, run_id)
    return Response(status_code=204)


@writes.post("/experiments", status_code=201, summary="Queue the seed experiment: teacher, student, kd, cosine, fitnet",
             response_model=ExperimentOut, responses=_errors(401, 429),
             openapi_extra=_documented_body(ExperimentCreate))
def create_experiment(body: JsonObject, session: SessionDep) -> dict:
    experiment = services.create_experiment(session, body, strict=True)
    return services.experiment_to_dict(experiment, services.experiment_runs(session, experiment.id))


@router.get("/experiments", summary="List experiments, newest first", response_model=ExperimentListOut)
def list_experiments(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    experiments, total = services.list_experiments(session, limit=limit, offset=offset)
    items = [services.experiment_to_dict(e, services.experiment_runs(session, e.id)) for e in experiments]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/experiments/{experiment_id}", summary="One experiment with its runs", response_model=ExperimentOut,
            responses=_errors(404))
def get_experiment(experiment_id: ExperimentId, session: SessionDep) -> dict:
    experiment = services.get_experiment(session, experiment_id)
    return services.experiment_to_dict(experiment, services.experiment_runs(session, experiment_id))


# A JSONResponse skips FastAPI's check and re-encoding of up to 10,000 rows; the model documents the
# answer, and a test holds the board to it.
@router.get("/leaderboard", summary="Completed runs ranked by final test accuracy (single runs)",
            responses={200: {"model": LeaderboardOut, "description": "Best first; ties: the earlier run first"}})
def leaderboard(session: SessionDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> JSONResponse:
    return JSONResponse({"items": services.leaderboard(session, limit, offset),
                         "total": board.completed_count(session), "limit": limit, "offset": offset})


@router.get("/leaderboard/groups", summary="Configurations ranked by mean final accuracy over their seeds",
            response_model=LeaderboardGroupListOut)
def leaderboard_groups(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                       offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    items, total, ranking = board.group_page(session, limit, offset)
    return {"items": items, "total": total, "runs": ranking.runs, "limit": limit, "offset": offset}


@router.get("/methods", summary="Training methods, with their hyperparameters", response_model=MethodListOut)
def methods() -> dict:
    return {"items": [{"name": m.name, "title": m.title, "description": m.description, "needs_teacher": m.needs_teacher,
                       "teaches": m.teaches, "default_architecture": m.default_architecture,
                       "default_epochs": m.default_epochs, "loss_terms": list(m.loss_terms),
                       "params": m.params.model_json_schema()} for m in METHODS.values()]}


@router.get("/architectures", summary="Networks a run can train, with parameter counts and taps",
            response_model=ArchitectureListOut)
def architectures(num_classes: Annotated[int, Query(ge=2, le=10_000)] = 10) -> dict:
    return {"num_classes": num_classes, "items": [{"name": name, **info} for name, info in catalog(num_classes).items()]}


@router.get("/datasets", summary="Datasets this server can train on, by name", response_model=DatasetListOut)
def datasets(settings: Annotated[Settings, Depends(get_settings)]) -> dict:
    # Server paths are not shown: clients choose datasets by name only.
    items = [{k: v for k, v in info.to_json_dict().items() if k != "path"} for info in list_datasets(settings.data_dir)]
    return {"items": items}
