"""The REST API of runs under /api: queue, list, read, cancel, retry and delete runs, their epochs and
checkpoints; and what a run can be made of (methods, networks, datasets). Routes are thin: they call
app.runs.service and shape HTTP responses."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse

from app.access.auth import require_token
from app.runs import export, service
from app.runs.annotations import AnnotationsPatch
from app.runs.filters import FilterDep
from app.runs.responses import (ArchitectureListOut, DatasetListOut, EpochListOut, ExportCardOut, MethodListOut,
                                RunListOut, RunOut)
from app.runs.schemas import RunCreate
from app.settings import Settings
from app.store.models import MAX_ID, STATUSES
from app.web.api import JsonObject, SessionDep, documented_body, error_responses
from kdcore.architectures import ALIASES
from kdcore.architectures import catalog as architecture_catalog
from kdcore.data.catalog import list_datasets
from kdcore.deploy.files import FORMATS
from kdcore.registry import METHODS, failed_method_plugins

RunId = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


router = APIRouter(prefix="/api", tags=["api"])
writes = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(require_token)])
# What a run can be made of: methods, networks and datasets.
catalog = APIRouter(prefix="/api", tags=["api"])


@writes.post("/runs", status_code=201, summary="Queue a run", response_model=RunOut,
             responses=error_responses(401, 429), openapi_extra=documented_body(RunCreate))
def create_run(body: JsonObject, session: SessionDep) -> dict:
    return service.run_to_dict(service.create_run(session, body, strict=True))


@router.get("/runs", summary="List runs, newest first", response_model=RunListOut)
def list_runs(
    session: SessionDep,
    filters: FilterDep,
    status: Literal[STATUSES] | None = None,
    experiment_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict:
    runs, total = service.list_runs(session, status=status, experiment_id=experiment_id, filters=filters,
                                     limit=limit, offset=offset)
    return {"items": [service.run_to_dict(run) for run in runs], "total": total, "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", summary="One run, with its live progress", response_model=RunOut,
            responses=error_responses(404))
def get_run(run_id: RunId, session: SessionDep) -> dict:
    return service.run_to_dict(service.get_run(session, run_id))


@router.get("/runs/{run_id}/epochs", summary="The run's epoch metrics; ?after=N returns only later epochs",
            response_model=EpochListOut, responses=error_responses(404))
def get_epochs(run_id: RunId, session: SessionDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    epochs = service.get_epochs(session, run_id, after)
    return {"run_id": run_id, "items": [service.epoch_to_dict(epoch) for epoch in epochs]}


@router.get("/runs/{run_id}/epochs.csv", summary="The run's epoch metrics as CSV", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per epoch, one column per metric and loss term"},
                       **error_responses(404)})
def get_epochs_csv(run_id: RunId, session: SessionDep) -> Response:
    run = service.get_run(session, run_id)
    body = service.epochs_csv(run, service.get_epochs(session, run_id), service.get_stage_epochs(session, run_id))
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="run-{run_id}-epochs.csv"'})


@router.get("/runs/{run_id}/checkpoint", summary="Download the run's checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}},
                             "description": "The checkpoint file (torch.save format)"},
                       **error_responses(404)})
def get_checkpoint(run_id: RunId, session: SessionDep) -> FileResponse:
    run = service.get_run(session, run_id)
    path = FilePath(run.checkpoint) if run.checkpoint else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"run {run_id} has no checkpoint")
    return FileResponse(path, media_type="application/octet-stream", filename=f"run-{run_id}-{run.kind}.pt")


ExportFormat = Annotated[Literal[FORMATS], Query(description="weights: the shipped network's state dict (model.pt); "
                       "onnx: an ONNX graph with a dynamic batch dimension, checked with onnxruntime (model.onnx); "
                       "pt2: a torch.export program (model.pt2)")]
_EXPORT_ERRORS = error_responses(404, 409, 503)


def _exported(session, run_id: int, format: str, settings: Settings) -> tuple:
    """The run and its export's card; a refused export is a 422 at ``format``, in FastAPI's own shape."""
    run = service.get_run(session, run_id)
    try:
        return run, export.export_run(session, run, format, settings.data_dir)
    except export.ExportRefused as exc:
        raise RequestValidationError([{"loc": ("query", "format"), "type": "export_refused", "msg": str(exc)}]) from None


@router.get("/runs/{run_id}/export", summary="Download a deployable export of a completed run: a zip of the model "
            "file and card.json (made in a subprocess the first time, seconds; kept in the run's folder)",
            response_class=FileResponse,
            responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "RUN-FORMAT/model.* and RUN-FORMAT/card.json"}, **_EXPORT_ERRORS})
def get_export(run_id: RunId, session: SessionDep, settings: Annotated[Settings, Depends(get_settings)],
               format: ExportFormat = "onnx") -> FileResponse:
    run, _ = _exported(session, run_id, format, settings)
    return FileResponse(export.export_zip(run, format), media_type="application/zip",
                        filename=f"run-{run_id}-{run.kind}-{format}.zip")


@router.get("/runs/{run_id}/export/card", summary="The card of a completed run's export (made first if need be)",
            response_model=ExportCardOut, responses=_EXPORT_ERRORS)
def get_export_card(run_id: RunId, session: SessionDep, settings: Annotated[Settings, Depends(get_settings)],
                    format: ExportFormat = "onnx") -> dict:
    return _exported(session, run_id, format, settings)[1]


@writes.patch("/runs/{run_id}", summary="Change a run's tags or note", response_model=RunOut,
              responses=error_responses(401, 404), openapi_extra=documented_body(AnnotationsPatch))
def annotate_run(run_id: RunId, body: JsonObject, session: SessionDep) -> dict:
    return service.run_to_dict(service.annotate_run(session, run_id, body))


@writes.post("/runs/{run_id}/cancel", summary="Cancel a queued run, or stop a running one within seconds",
             response_model=RunOut, responses=error_responses(401, 404, 409))
def cancel_run(run_id: RunId, session: SessionDep) -> dict:
    return service.run_to_dict(service.cancel_run(session, run_id))


@writes.post("/runs/{run_id}/retry", summary="Queue a failed or cancelled run again (resumes from its checkpoint)",
             response_model=RunOut, responses=error_responses(401, 404, 409, 429))
def retry_run(run_id: RunId, session: SessionDep) -> dict:
    return service.run_to_dict(service.retry_run(session, run_id))


@writes.delete("/runs/{run_id}", status_code=204, summary="Delete a run that is not running",
               responses={204: {"description": "Deleted, with its epochs and checkpoint"},
                          **error_responses(401, 404, 409)})
def delete_run(run_id: RunId, session: SessionDep) -> Response:
    service.delete_run(session, run_id)
    return Response(status_code=204)


@catalog.get("/methods", summary="Training methods, with their hyperparameters", response_model=MethodListOut)
def methods() -> dict:
    return {"items": [{"name": m.name, "title": m.title, "description": m.description, "needs_teacher": m.needs_teacher,
                       "teaches": m.teaches, "default_architecture": m.default_architecture,
                       "default_epochs": m.default_epochs, "loss_terms": list(m.loss_terms),
                       "reported": list(m.reported), "views": list(m.views),
                       "params": m.params.model_json_schema()} for m in METHODS.values()],
            "failed_plugins": [{"name": f.name, "value": f.value, "reason": f.reason} for f in failed_method_plugins()]}


@catalog.get("/architectures", summary="Networks a run can train, with parameter counts and taps",
            response_model=ArchitectureListOut)
def architectures(settings: Annotated[Settings, Depends(get_settings)],
                  num_classes: Annotated[int, Query(ge=2, le=10_000, description="The class count of a dataset "
                                                    "here (GET /api/datasets)")] = 10) -> dict:
    # Each class count is described once, in a subprocess of seconds: only those a run here can have.
    counts = sorted({info.num_classes for info in list_datasets(settings.data_dir) if info.classes})
    if num_classes not in counts:
        raise RequestValidationError([{"loc": ("query", "num_classes"), "type": "num_classes",
                                       "msg": f"no dataset here has {num_classes} classes; the datasets' class "
                                              f"counts are {', '.join(map(str, counts))}"}])
    items = [{"name": name, "aliases": [old for old, new in ALIASES.items() if new == name], **info}
             for name, info in architecture_catalog(num_classes).items()]
    return {"num_classes": num_classes, "items": items}


@catalog.get("/datasets", summary="Datasets this server can train on, by name", response_model=DatasetListOut)
def datasets(settings: Annotated[Settings, Depends(get_settings)]) -> dict:
    # Server paths are not shown: clients choose datasets by name only.
    items = [{k: v for k, v in info.to_json_dict().items() if k != "path"} for info in list_datasets(settings.data_dir)]
    return {"items": items}
