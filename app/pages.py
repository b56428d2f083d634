"""The dashboard's HTML: pages, the HTMX fragments they refresh, and the run page's event stream.

Routes are thin, like app.api: they call app.services and render templates/. The launch form is
built from RunConfig's JSON schema and the method registry, so a new kind or field needs no change here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import plotly
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlmodel import Session

from app import auth, services
from app.db import get_session, new_session
from app.errors import Conflict, InputError, NotFound, QueueFull
from app.models import FINISHED_STATUSES, MAX_ID
from app import page_views as views
from kdcore.data.catalog import list_datasets

ROOT = Path(__file__).resolve().parent.parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
templates = Jinja2Templates(directory=str(ROOT / "templates"))
templates.env.filters.update(views.FILTERS)


@pass_context
def path_for(context, name: str, /, **params: Any) -> str:
    # Paths, not absolute URLs: links keep working behind a proxy that rewrites the host.
    # Starlette's url_path_for walks every route per call (about 0.3 ms): too slow for a 100-row table.
    app = context["request"].app
    formats = _route_formats(app)
    if name in formats and set(params) == formats[name][1]:
        return formats[name][0].format(**{k: quote(str(v), safe="") for k, v in params.items()})
    return str(app.url_path_for(name, **params))


@functools.cache
def _route_formats(app) -> dict[str, tuple[str, set[str]]]:
    prefix = str(app.url_path_for("home")).removesuffix("/")  # wherever app.main included this router
    return {route.name: (prefix + route.path_format, set(route.param_convertors))
            for route in router.routes if isinstance(route, APIRoute)}


templates.env.globals["path_for"] = path_for
templates.env.globals["experiment_titles"] = views.experiment_titles()
SessionDep = Annotated[Session, Depends(get_session)]
# HTML routes stay out of the OpenAPI schema: /docs and the API fuzz tests are about /api only.
# Every state-changing route (any method but GET/HEAD) needs the API token when one is set, including
# routes added later; sign-in itself lives in app.signin, outside this router.
router = APIRouter(include_in_schema=False, dependencies=[Depends(auth.require_signed_in)])
EVENT_POLL_S = 0.5
# Uvicorn waits for open responses before it exits; a stream that ends every so often keeps a
# shutdown short. EventSource reconnects after RETRY_MS and resumes from its Last-Event-ID.
STREAM_MAX_S = 10.0
RETRY_MS = 500


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200, **kw) -> HTMLResponse:
    # The top bar offers sign-in or sign-out when the server has a token.
    context = {"auth": {"required": auth.required(request), "signed_in": auth.has_cookie(request)}, **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code, **kw)


def _not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


def _valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


@router.get("/vendor/plotly.min.js", name="plotly_js")
def plotly_js() -> FileResponse:
    # Served from the installed plotly package, so the repository carries no 4 MB copy and no CDN is needed.
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


# ---------------------------------------------------------------- home / leaderboard

@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep) -> HTMLResponse:
    context = {"title": "Leaderboard", "nav": "home", "charts": True,
               **views.cached_leaderboard_view(session), **views.active_view(session)}
    return render(request, "home.html", context)


@router.get("/fragments/leaderboard", response_class=HTMLResponse, name="leaderboard_fragment")
def leaderboard_fragment(request: Request, session: SessionDep, all: bool = False) -> HTMLResponse:
    return render(request, "_leaderboard.html", views.cached_leaderboard_view(session, show_all=all))


@router.get("/fragments/active", response_class=HTMLResponse, name="active_fragment")
def active_fragment(request: Request, session: SessionDep, done: int | None = None) -> HTMLResponse:
    context = views.active_view(session)
    headers = {}
    if done is not None and done != context["done_count"]:
        # A run finished since the page drew its leaderboard: tell that section to refresh itself.
        headers["HX-Trigger"] = "leaderboard-stale"
    return render(request, "_active.html", context, headers=headers)


# ---------------------------------------------------------------- launch

def _launch_context(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
                    form_error: str | None = None, experiment: tuple[dict, dict, str | None] = ({}, {}, None)) -> dict:
    datasets = list_datasets(request.app.state.settings.data_dir)
    exp_values, exp_errors, exp_error = experiment
    return {
        "title": "Launch a run", "nav": "launch",
        "form": views.launch_form(values, errors, datasets, services.teacher_choices(session)),
        "form_error": form_error,
        "experiment": dict(views.experiment_form(exp_values, exp_errors, datasets), error=exp_error),
    }


@router.get("/launch", response_class=HTMLResponse, name="launch_page")
def launch_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "launch.html", _launch_context(request, session, dict(request.query_params), {}))


@router.get("/fragments/launch-fields", response_class=HTMLResponse, name="launch_fields")
def launch_fields(request: Request, session: SessionDep) -> HTMLResponse:
    # The kind changed: redraw the kind's own fields with its defaults, keeping the teacher choice.
    values = {k: v for k, v in request.query_params.items() if k in ("kind", "teacher_run_id")}
    context = _launch_context(request, session, values, {})
    return render(request, "_kind_fields.html", {"form": context["form"]})


async def _form_values(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.post("/launch", response_class=HTMLResponse, name="launch_submit")
async def launch_submit(request: Request, session: SessionDep) -> Response:
    # Reading the form needs the event loop; the service call and the re-rendered form do not.
    values = await _form_values(request)
    return await anyio.to_thread.run_sync(_submit_run, request, session, values)


def _submit_run(request: Request, session: Session, values: dict[str, str]) -> Response:
    # A rejected form comes back as a normal page (200) with the errors inline: browsers log every
    # 4xx document as a console error, and the REST API already answers 422 for programs.
    try:
        run = services.create_run(session, views.run_payload(values))
    except InputError as exc:
        errors, general = views.errors_by_field(exc.errors, views.launch_field_names())
        context = _launch_context(request, session, values, errors, "; ".join(general) or None)
        return render(request, "launch.html", context)
    except QueueFull as exc:
        return render(request, "launch.html", _launch_context(request, session, values, {}, str(exc)))
    return RedirectResponse(request.app.url_path_for("run_page", run_id=run.id), status_code=303)


@router.post("/launch/experiment", response_class=HTMLResponse, name="launch_experiment")
async def launch_experiment(request: Request, session: SessionDep) -> Response:
    values = await _form_values(request)
    return await anyio.to_thread.run_sync(_submit_experiment, request, session, values)


def _submit_experiment(request: Request, session: Session, values: dict[str, str]) -> Response:
    try:
        experiment = services.create_experiment(session, views.experiment_payload(values))
    except InputError as exc:
        errors, general = views.errors_by_field(exc.errors, views.experiment_field_names())
        context = _launch_context(request, session, {}, {}, experiment=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        context = _launch_context(request, session, {}, {}, experiment=(values, {}, str(exc)))
        return render(request, "launch.html", context)
    return RedirectResponse(request.app.url_path_for("compare_page") + f"?experiment={experiment.id}", status_code=303)


# ---------------------------------------------------------------- run page

@router.get("/runs/{run_id}", response_class=HTMLResponse, name="run_page")
def run_page(request: Request, run_id: int, session: SessionDep) -> HTMLResponse:
    if not _valid_id(run_id):
        return _not_found(request, f"run {run_id} does not exist")
    try:
        run = services.get_run(session, run_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    epochs = services.get_epochs(session, run_id)
    context = {"title": f"Run {run_id}", "nav": "", "charts": True,
               **views.run_view(session, run, epochs)}
    return render(request, "run.html", context)


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse, name="page_cancel_run")
def cancel_run(request: Request, run_id: int, session: SessionDep) -> Response:
    return _run_action(request, session, run_id, services.cancel_run)


@router.post("/runs/{run_id}/retry", response_class=HTMLResponse, name="page_retry_run")
def retry_run(request: Request, run_id: int, session: SessionDep) -> Response:
    response = _run_action(request, session, run_id, services.retry_run)
    if response.status_code == 200:
        response.headers["HX-Refresh"] = "true"  # the page restarts its event stream for the new attempt
    return response


def _run_action(request: Request, session: Session, run_id: int, action) -> Response:
    """Answer an HTMX button with the run's refreshed summary; a plain form post goes back to the page."""
    if not _valid_id(run_id):
        return _not_found(request, f"run {run_id} does not exist")
    message = None
    try:
        run = action(session, run_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    except (Conflict, QueueFull) as exc:
        run, message = services.get_run(session, run_id), str(exc)
    if "HX-Request" not in request.headers:
        return RedirectResponse(request.app.url_path_for("run_page", run_id=run_id), status_code=303)
    context = views.summary_view(session, run)
    context["action_error"] = message
    return render(request, "_run_summary.html", context)


def _sse(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


@router.get("/runs/{run_id}/events", name="run_events")
async def run_events(request: Request, run_id: int, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> Response:
    """Server-sent events for an open run page: new epochs, progress, and the summary when the status changes."""
    if not _valid_id(run_id):
        return Response(status_code=404)
    # EventSource resends the last event id on reconnect: continue after the last epoch it received.
    last_id = request.headers.get("last-event-id", "")
    after = max(after, int(last_id)) if last_id.isdigit() else after
    app = request.app

    def poll(after: int):
        with new_session(app.state.engine, app.state.settings) as session:
            try:
                run = services.get_run(session, run_id)
            except NotFound:
                return None
            # Epochs after the run: a run seen finished has all its epochs stored already.
            epochs = services.get_epochs(session, run_id, after)
            summary = views.summary_view(session, run)
            return run.status, run.cancel_requested, summary, [services.epoch_to_dict(e) for e in epochs]

    async def stream(after: int):
        sent_progress = sent_summary = None
        deadline = time.monotonic() + STREAM_MAX_S
        yield f"retry: {RETRY_MS}\n\n"
        while not await request.is_disconnected() and time.monotonic() < deadline:
            polled = await anyio.to_thread.run_sync(poll, after)
            if polled is None:
                yield _sse("end", "gone")
                return
            status, cancelling, summary, epochs = polled
            chunks = []
            for epoch in epochs:
                chunks.append(_sse("epoch", json.dumps(epoch), epoch["epoch"]))
                after = epoch["epoch"]
            progress = templates.get_template("_progress.html").render(run=summary["run"])
            if progress != sent_progress:
                chunks.append(_sse("progress", progress))
                sent_progress = progress
            # The first summary goes out too: the run may have started between the page load and this stream.
            state = (status, cancelling, summary["run"]["has_checkpoint"])
            if state != sent_summary:
                html = templates.get_template("_run_summary.html").render(request=request, **summary)
                chunks.append(_sse("summary", html))
                sent_summary = state
            if status in FINISHED_STATUSES:
                chunks.append(_sse("end", status))
            if chunks:
                yield "".join(chunks)
            if status in FINISHED_STATUSES:
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(stream(after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------- compare

@router.get("/compare", response_class=HTMLResponse, name="compare_page")
def compare_page(request: Request, session: SessionDep,
                 run: Annotated[list[str], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
                 experiment: str | None = None) -> HTMLResponse:
    run_ids = views.parse_ids(run)
    experiment_id = views.parse_ids([experiment or ""])
    context = {"title": "Compare runs", "nav": "compare", "charts": True,
               **views.compare_view(session, run_ids, experiment_id[0] if experiment_id else None)}
    return render(request, "compare.html", context)

