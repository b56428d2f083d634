"""The REST API of studies under /api/studies: submit, list, read with statistics, cancel, export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.access.auth import require_token
from app.runs.annotations import AnnotationsPatch
from app.store.models import MAX_ID
from app.studies import service
from app.studies.responses import StudyExportOut, StudyListOut, StudyOut
from app.studies.schemas import StudyCreate
from app.web.api import ErrorOut, JsonObject, SessionDep, documented_body, error_responses

StudyId = Annotated[int, Path(ge=1, le=MAX_ID)]
router = APIRouter(prefix="/api/studies", tags=["studies"])
writes = APIRouter(prefix="/api/studies", tags=["studies"], dependencies=[Depends(require_token)])


def _text(body: str, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _text_doc(media_type: str, description: str) -> dict:
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description},
            **error_responses(404)}


@writes.post("", status_code=201, summary="Queue a study: methods × grid × networks × seeds against one teacher",
             response_model=StudyOut, responses=error_responses(401, 429), openapi_extra=documented_body(StudyCreate))
def create_study(body: JsonObject, session: SessionDep) -> dict:
    study = service.create_study(session, body, strict=True)
    return service.study_to_dict(study, service.study_runs(session, study.id))


@router.get("", summary="List studies, newest first, with their progress", response_model=StudyListOut)
def list_studies(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    rows, total = service.list_studies(session, limit=limit, offset=offset)
    return {"items": [service.study_summary(study, counts) for study, counts in rows], "total": total,
            "limit": limit, "offset": offset}


@router.get("/{study_id}", summary="One study: progress, and each configuration's statistics across its seeds",
            response_model=StudyOut, responses=error_responses(404))
def get_study(study_id: StudyId, session: SessionDep) -> dict:
    study = service.get_study(session, study_id)
    return service.study_to_dict(study, service.study_runs(session, study_id))


@writes.patch("/{study_id}", summary="Change a study's tags or note (its tags also tag its runs for filtering)",
              response_model=StudyOut, responses=error_responses(401, 404),
              openapi_extra=documented_body(AnnotationsPatch))
def annotate_study(study_id: StudyId, body: JsonObject, session: SessionDep) -> dict:
    study = service.annotate_study(session, study_id, body)
    return service.study_to_dict(study, service.study_runs(session, study_id))


@writes.post("/{study_id}/cancel", summary="Cancel the study's queued runs and stop its running ones",
             response_model=StudyOut, responses=error_responses(401, 404, 409))
def cancel_study(study_id: StudyId, session: SessionDep) -> dict:
    study = service.cancel_study(session, study_id)
    return service.study_to_dict(study, service.study_runs(session, study_id))


@writes.delete("/{study_id}", status_code=204, summary="Delete a study with its runs (refused while any is running)",
               responses={204: {"description": "Deleted, with its runs, their epochs and checkpoints"},
                          **error_responses(401), 404: {"model": ErrorOut, "description": "No such study"},
                          409: {"model": ErrorOut, "description": "One of its runs is running (cancel the study "
                                "first), or a run outside it waits to distil from its teacher"}})
def delete_study(study_id: StudyId, session: SessionDep) -> Response:
    service.delete_study(session, study_id)
    return Response(status_code=204)


@router.get("/{study_id}/export.json", summary="The study, its groups, its runs and its paper table",
            response_model=StudyExportOut, responses=error_responses(404))
def export_json(study_id: StudyId, session: SessionDep) -> dict:
    study = service.get_study(session, study_id)
    runs = service.study_runs(session, study_id)
    data = service.study_to_dict(study, runs)
    return {**data, "runs": service.run_rows(runs), "tables": service.paper_tables(data["groups"])}


@router.get("/{study_id}/runs.csv", summary="The study's runs as CSV", response_class=Response,
            responses=_text_doc("text/csv", "One row per run"))
def runs_csv(study_id: StudyId, session: SessionDep) -> Response:
    service.get_study(session, study_id)
    return _text(service.runs_csv(service.study_runs(session, study_id)), "text/csv", f"study-{study_id}-runs.csv")


@router.get("/{study_id}/groups.csv", summary="The study's configurations and their statistics as CSV",
            response_class=Response, responses=_text_doc("text/csv", "One row per configuration"))
def groups_csv(study_id: StudyId, session: SessionDep) -> Response:
    service.get_study(session, study_id)
    groups = service.study_groups(service.study_runs(session, study_id))
    return _text(service.groups_csv(groups), "text/csv", f"study-{study_id}-groups.csv")


@router.get("/{study_id}/reproduction.csv", summary="Reported vs reproduced: each configuration beside the "
            "published results it matches, as CSV", response_class=Response,
            responses=_text_doc("text/csv", "One row per configuration and published result (CIFAR-100 only)"))
def reproduction_csv(study_id: StudyId, session: SessionDep) -> Response:
    service.get_study(session, study_id)
    groups = service.study_groups(service.study_runs(session, study_id))
    return _text(service.reproduction_csv(groups), "text/csv", f"study-{study_id}-reproduction.csv")


@router.get("/{study_id}/table.md", summary="The paper table in Markdown: method, mean ± std over n seeds",
            response_class=Response, responses=_text_doc("text/markdown", "A Markdown table"))
def table_markdown(study_id: StudyId, session: SessionDep) -> Response:
    service.get_study(session, study_id)
    groups = service.study_groups(service.study_runs(session, study_id))
    return _text(service.paper_tables(groups)["markdown"], "text/markdown", f"study-{study_id}.md")


@router.get("/{study_id}/table.tex", summary="The paper table in LaTeX (booktabs)", response_class=Response,
            responses=_text_doc("application/x-tex", "A LaTeX tabular"))
def table_latex(study_id: StudyId, session: SessionDep) -> Response:
    service.get_study(session, study_id)
    groups = service.study_groups(service.study_runs(session, study_id))
    return _text(service.paper_tables(groups)["latex"], "application/x-tex", f"study-{study_id}.tex")
