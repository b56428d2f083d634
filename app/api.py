"""The JSON REST API under /api. Routes are thin: they call app.services and shape HTTP responses."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app import auth, services
from app.db import get_session
from app.models import MAX_ID, STATUSES
from app.schemas import ExperimentCreate, RunCreate
from app.settings import Settings
from kdcore.data.catalog import list_datasets
from kdcore.registry import KINDS

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


@writes.post("/runs", status_code=201, summary="Queue a run", openapi_extra=_documented_body(RunCreate))
def create_run(body: JsonObject, session: SessionDep) -> dict:
    return services.run_to_dict(services.create_run(session, body, strict=True))


@router.get("/runs", summary="List runs, newest first")
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


@router.get("/runs/{run_id}", summary="One run, with its live progress")
def get_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.get_run(session, run_id))


@router.get("/runs/{run_id}/epochs", summary="The run's epoch metrics; ?after=N returns only later epochs")
def get_epochs(run_id: RunId, session: SessionDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    epochs = services.get_epochs(session, run_id, after)
    return {"run_id": run_id, "items": [services.epoch_to_dict(epoch) for epoch in epochs]}


@router.get("/runs/{run_id}/epochs.csv", summary="The run's epoch metrics as CSV", response_class=Response)
def get_epochs_csv(run_id: RunId, session: SessionDep) -> Response:
    run = services.get_run(session, run_id)
    body = services.epochs_csv(run, services.get_epochs(session, run_id))
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="run-{run_id}-epochs.csv"'})


@router.get("/runs/{run_id}/checkpoint", summary="Download the run's checkpoint", response_class=FileResponse)
def get_checkpoint(run_id: RunId, session: SessionDep) -> FileResponse:
    run = services.get_run(session, run_id)
    path = FilePath(run.checkpoint) if run.checkpoint else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"run {run_id} has no checkpoint")
    return FileResponse(path, media_type="application/octet-stream", filename=f"run-{run_id}-{run.kind}.pt")


@writes.post("/runs/{run_id}/cancel", summary="Cancel a queued run, or stop a running one within seconds")
def cancel_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.cancel_run(session, run_id))


@writes.post("/runs/{run_id}/retry", summary="Queue a failed or cancelled run again (resumes from its checkpoint)")
def retry_run(run_id: RunId, session: SessionDep) -> dict:
    return services.run_to_dict(services.retry_run(session, run_id))


@writes.delete("/runs/{run_id}", status_code=204, summary="Delete a run that is not running")
def delete_run(run_id: RunId, session: SessionDep) -> Response:
    services.delete_run(session, run_id)
    return Response(status_code=204)


@writes.post("/experiments", status_code=201, summary="Queue the seed experiment: teacher, student, kd, cosine, fitnet",
             openapi_extra=_documented_body(ExperimentCreate))
def create_experiment(body: JsonObject, session: SessionDep) -> dict:
    experiment = services.create_experiment(session, body, strict=True)
    return services.experiment_to_dict(experiment, services.experiment_runs(session, experiment.id))


@router.get("/experiments", summary="List experiments, newest first")
def list_experiments(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    experiments, total = services.list_experiments(session, limit=limit, offset=offset)
    items = [services.experiment_to_dict(e, services.experiment_runs(session, e.id)) for e in experiments]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/experiments/{experiment_id}", summary="One experiment with its runs")
def get_experiment(experiment_id: ExperimentId, session: SessionDep) -> dict:
    experiment = services.get_experiment(session, experiment_id)
    return services.experiment_to_dict(experiment, services.experiment_runs(session, experiment_id))


@router.get("/leaderboard", summary="Completed runs ranked by final test accuracy")
def leaderboard(session: SessionDep, limit: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> JSONResponse:
    return JSONResponse({"items": services.leaderboard(session, limit)})


@router.get("/datasets", summary="Datasets this server can train on, by name")
def datasets(settings: Annotated[Settings, Depends(get_settings)]) -> dict:
    # Server paths are not shown: clients choose datasets by name only.
    items = [{k: v for k, v in info.to_json_dict().items() if k != "path"} for info in list_datasets(settings.data_dir)]
    return {"items": items}
