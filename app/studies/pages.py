"""The study pages: the list of studies, one study's page, the fragments it refreshes while it runs,
and its cancel and delete buttons. app.main includes this router with the pages, so it shares their sign-in rule."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.runs.annotations import save_form
from app.runs.views import annotations_view
from app.store.db import get_session
from app.store.errors import Conflict, NotFound
from app.studies import service as studies
from app.studies import views as study_view
from app.web.ids import valid_id
from app.web.rendering import go_to, render

SessionDep = Annotated[Session, Depends(get_session)]
router = APIRouter(include_in_schema=False)
# The page's progress card asks again this often while the study has queued or running runs.
POLL_SECONDS = 3


def _not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


def _study(session: Session, study_id: int):
    if not valid_id(study_id):
        raise NotFound(f"study {study_id} does not exist")
    return studies.get_study(session, study_id)


@router.get("/studies", response_class=HTMLResponse, name="studies_page")
def studies_page(request: Request, session: SessionDep,
                 offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> HTMLResponse:
    context = {"title": "Studies", "nav": "studies", **study_view.studies_list_view(session, offset=offset)}
    return render(request, "studies.html", context)


@router.get("/studies/{study_id}", response_class=HTMLResponse, name="study_page")
def study_page(request: Request, study_id: int, session: SessionDep) -> HTMLResponse:
    try:
        study = _study(session, study_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    return _study_page(request, session, study)


def _study_page(request: Request, session: Session, study, refusal: str | None = None, **refused) -> HTMLResponse:
    context = {"title": study.name or f"Study {study.id}", "nav": "studies", "charts": True,
               "poll_seconds": POLL_SECONDS, **study_view.study_view(session, study),
               **_annotations(request, study, **refused)}
    if refusal is not None:
        context["refusal"] = refusal
    return render(request, "study.html", context)


def _annotations(request: Request, study, **refused) -> dict:
    # Its tags link to the configurations they choose (a study's tags tag its runs).
    action = request.app.url_path_for("page_annotate_study", study_id=study.id)
    return annotations_view(study, action, view="groups", **refused)


@router.post("/studies/{study_id}/annotations", response_class=HTMLResponse, name="page_annotate_study")
def annotate_study(request: Request, study_id: int, session: SessionDep, tags: Annotated[str, Form()] = "",
                   note: Annotated[str, Form()] = "") -> Response:
    """Save the tags and the note, as the run page does (app.runs.pages.annotate_run)."""
    try:
        study, refused = save_form(lambda body: studies.annotate_study(session, _study(session, study_id).id, body),
                                   lambda: studies.get_study(session, study_id), tags, note)
    except NotFound as exc:
        return _not_found(request, str(exc))
    if "HX-Request" not in request.headers:
        return _study_page(request, session, study, **refused) if refused else \
            RedirectResponse(request.app.url_path_for("study_page", study_id=study_id), status_code=303)
    return render(request, "_annotations.html", {**_annotations(request, study, **refused), "saved": not refused})


@router.get("/fragments/studies/{study_id}/progress", response_class=HTMLResponse, name="study_progress_fragment")
def study_progress(request: Request, study_id: int, session: SessionDep,
                   done: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> HTMLResponse:
    try:
        study = _study(session, study_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    context = {"poll_seconds": POLL_SECONDS, **study_view.progress_view(study, studies.study_runs(session, study_id))}
    headers = {}
    if done is not None and done != context["progress"]["done"]:
        # A run ended since the page drew its results: tell that section to refresh itself.
        headers["HX-Trigger"] = "study-stale"
    return render(request, "_study_progress.html", context, headers=headers)


@router.get("/fragments/studies/{study_id}/results", response_class=HTMLResponse, name="study_results_fragment")
def study_results(request: Request, study_id: int, session: SessionDep) -> HTMLResponse:
    try:
        study = _study(session, study_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    context = study_view.results_view(session, study, studies.study_runs(session, study_id))
    return render(request, "_study_results.html", context)


@router.post("/studies/{study_id}/cancel", response_class=HTMLResponse, name="page_cancel_study")
def cancel_study(request: Request, study_id: int, session: SessionDep) -> Response:
    """Answer the HTMX button with the refreshed progress card, which says why a cancel was refused;
    a plain form post goes back to the page."""
    refusal = None
    try:
        _study(session, study_id)
        study = studies.cancel_study(session, study_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    except Conflict as exc:
        study, refusal = studies.get_study(session, study_id), f"Not cancelled: {exc}"
    if "HX-Request" not in request.headers:
        if refusal is None:
            return RedirectResponse(request.app.url_path_for("study_page", study_id=study_id), status_code=303)
        return _study_page(request, session, study, refusal)
    context = {"poll_seconds": POLL_SECONDS,
               **study_view.progress_view(study, studies.study_runs(session, study_id), refusal)}
    headers = {} if refusal else {"HX-Trigger": "study-stale"}
    return render(request, "_study_progress.html", context, headers=headers)


@router.post("/studies/{study_id}/delete", response_class=HTMLResponse, name="page_delete_study")
def delete_study(request: Request, study_id: int, session: SessionDep) -> Response:
    """Delete the study with its runs, then go to the list of studies. A refusal (a run is running) is said
    in the progress card, as for cancel."""
    try:
        _study(session, study_id)
        studies.delete_study(session, study_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    except Conflict as exc:
        refusal = f"Not deleted: {exc}"
        study = studies.get_study(session, study_id)
        if "HX-Request" not in request.headers:
            return _study_page(request, session, study, refusal)
        context = {"poll_seconds": POLL_SECONDS,
                   **study_view.progress_view(study, studies.study_runs(session, study_id), refusal)}
        return render(request, "_study_progress.html", context)
    return go_to(request, request.app.url_path_for("studies_page"))
