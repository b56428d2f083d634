"""The run page and its buttons (cancel, retry, delete); its live updates are app.runs.events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.runs import service as services
from app.runs import export as exports
from app.runs import views as view_models
from app.runs.export_view import export_view
from app.runs.annotations import save_form
from app.store.errors import Conflict, NotFound, QueueFull, ServiceError
from app.web.api import SessionDep
from app.web.ids import valid_id
from app.web.rendering import go_to, not_found, render
from kdcore.deploy.files import FORMATS

router = APIRouter()


@router.get("/runs/{run_id}", response_class=HTMLResponse, name="run_page")
def run_page(request: Request, run_id: int, session: SessionDep) -> HTMLResponse:
    run, missing = _found(request, session, run_id)
    return missing or _run_page(request, session, run)


def _found(request: Request, session: Session, run_id: int) -> tuple:
    """(the run, None), or (None, the not-found page to answer instead)."""
    if not valid_id(run_id):
        return None, not_found(request, f"run {run_id} does not exist")
    try:
        return services.get_run(session, run_id), None
    except NotFound as exc:
        return None, not_found(request, str(exc))


def _run_page(request: Request, session: Session, run, **refused) -> HTMLResponse:
    epochs = services.get_epochs(session, run.id)
    action = request.app.url_path_for("page_annotate_run", run_id=run.id)
    context = {"title": f"Run {run.id}", "nav": "", "charts": True, **view_models.run_view(session, run, epochs),
               **view_models.run_annotations_view(session, run, action, **refused), **export_view(run)}
    return render(request, "run.html", context)


@router.post("/runs/{run_id}/annotations", response_class=HTMLResponse, name="page_annotate_run")
def annotate_run(request: Request, run_id: int, session: SessionDep, tags: Annotated[str, Form()] = "",
                 note: Annotated[str, Form()] = "") -> Response:
    """Save the tags (one comma-separated line) and the note: htmx gets the card back, saying so or what it
    refused beside the field with the input kept; a plain form post goes back to the page."""
    if not valid_id(run_id):
        return not_found(request, f"run {run_id} does not exist")
    try:
        run, refused = save_form(lambda body: services.annotate_run(session, run_id, body),
                                 lambda: services.get_run(session, run_id), tags, note)
    except NotFound as exc:
        return not_found(request, str(exc))
    if "HX-Request" not in request.headers:
        return _run_page(request, session, run, **refused) if refused else \
            RedirectResponse(request.app.url_path_for("run_page", run_id=run_id), status_code=303)
    action = request.app.url_path_for("page_annotate_run", run_id=run_id)
    return render(request, "_annotations.html",
                  {**view_models.run_annotations_view(session, run, action, **refused), "saved": not refused})


@router.post("/runs/{run_id}/export", response_class=HTMLResponse, name="page_export_run")
def export_run(request: Request, run_id: int, session: SessionDep, format: Annotated[str, Form()] = "onnx") -> Response:
    """Make (or find) the run's export in ``format`` and answer the Deploy card with its card and snippets, or
    with why it was refused; a plain form post goes back to the page."""
    run, missing = _found(request, session, run_id)
    if missing:
        return missing
    card = error = None
    if format not in FORMATS:
        error = f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}"
    else:
        try:
            card = exports.export_run(session, run, format, request.app.state.settings.data_dir)
        except ServiceError as exc:
            error = str(exc)
    if "HX-Request" not in request.headers:
        return RedirectResponse(request.app.url_path_for("run_page", run_id=run_id), status_code=303)
    return render(request, "_export.html", export_view(run, format, card, error))


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse, name="page_cancel_run")
def cancel_run(request: Request, run_id: int, session: SessionDep) -> Response:
    return _run_action(request, session, run_id, services.cancel_run, "Not cancelled")


@router.post("/runs/{run_id}/retry", response_class=HTMLResponse, name="page_retry_run")
def retry_run(request: Request, run_id: int, session: SessionDep) -> Response:
    return _run_action(request, session, run_id, services.retry_run, "Not retried", reload_when_done=True)


@router.post("/runs/{run_id}/delete", response_class=HTMLResponse, name="page_delete_run")
def delete_run(request: Request, run_id: int, session: SessionDep) -> Response:
    """Delete the run, then go where it was listed: its study's page, else the leaderboard. A refusal (it is
    running, or the teacher of active runs) is said beside the buttons, as for cancel and retry."""
    if not valid_id(run_id):
        return not_found(request, f"run {run_id} does not exist")
    try:
        run = services.get_run(session, run_id)
        services.delete_run(session, run_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    except Conflict as exc:
        if "HX-Request" not in request.headers:
            return RedirectResponse(request.app.url_path_for("run_page", run_id=run_id), status_code=303)
        return render(request, "_run_summary.html",
                      view_models.summary_view(session, services.get_run(session, run_id), f"Not deleted: {exc}"))
    return go_to(request, request.app.url_path_for("study_page", study_id=run.study_id) if run.study_id
                 else request.app.url_path_for("home"))


def _run_action(request: Request, session: Session, run_id: int, action, refused: str,
                reload_when_done: bool = False) -> Response:
    """Answer an HTMX button with the run's refreshed summary, which says beside the buttons why the action
    was refused (queue full, teacher gone, wrong state); a plain form post goes back to the page."""
    if not valid_id(run_id):
        return not_found(request, f"run {run_id} does not exist")
    refusal = None
    try:
        run = action(session, run_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    except (Conflict, QueueFull) as exc:
        run, refusal = services.get_run(session, run_id), f"{refused}: {exc}"
    if "HX-Request" not in request.headers:
        return RedirectResponse(request.app.url_path_for("run_page", run_id=run_id), status_code=303)
    response = render(request, "_run_summary.html", view_models.summary_view(session, run, refusal))
    if reload_when_done and refusal is None:
        # A retried run is queued again: reloading opens the page's event stream for the new attempt.
        # A refusal must not reload, or its message would vanish with the old page.
        response.headers["HX-Refresh"] = "true"
    return response
