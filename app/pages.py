"""The dashboard's HTML routes: pages and the HTMX fragments they refresh.

Routes are thin, like app.api: they call app.services, shape the result with app.view_models or
app.forms, and render templates/ through app.rendering. The run page's event stream is app.run_events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import plotly
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlmodel import Session

from app import auth, forms, pages_studies, run_events, services, studies, study_form, study_view, view_models
from app.db import get_session
from app.errors import Conflict, InputError, NotFound, QueueFull
from app.ids import parse_ids, valid_id
from app.rendering import render, render_fragment
from kdcore.data.catalog import list_datasets

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SessionDep = Annotated[Session, Depends(get_session)]
# HTML routes stay out of the OpenAPI schema: /docs and the API fuzz tests are about /api only.
# Every state-changing route (any method but GET/HEAD) needs the API token when one is set, including
# routes added later; sign-in itself lives in app.signin, outside this router.
router = APIRouter(include_in_schema=False, dependencies=[Depends(auth.require_signed_in)])
router.include_router(run_events.router)
router.include_router(pages_studies.router)


def _not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


@router.get("/vendor/plotly.min.js", name="plotly_js")
def plotly_js() -> FileResponse:
    # Served from the installed plotly package, so the repository carries no 4 MB copy and no CDN is needed.
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


# ---------------------------------------------------------------- home / leaderboard

@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep, view: str = "groups", all: bool = False) -> HTMLResponse:
    board, active = view_models.home_view(session, view, show_all=all)
    context = {"title": "Leaderboard", "nav": "home", "charts": True, **board, **active,
               "board_html": _board_html(request, board)}
    return render(request, "home.html", context)


@router.get("/fragments/leaderboard", response_class=HTMLResponse, name="leaderboard_fragment")
def leaderboard_fragment(request: Request, session: SessionDep, view: str = "groups",
                         all: bool = False) -> HTMLResponse:
    return HTMLResponse(_board_html(request, view_models.cached_leaderboard_view(session, show_all=all, view=view)))


def _board_html(request: Request, board: dict) -> Markup:
    # The board changes only when a run completes or is deleted (view_models keeps it until then), and its
    # HTML is a hundred rows: rendered once per change rather than on every page view and refresh.
    if "html" not in board:
        board["html"] = Markup(render_fragment(request, "_leaderboard.html", board))
    return board["html"]


@router.get("/fragments/leaderboard/group/{key}", response_class=HTMLResponse, name="leaderboard_group_fragment")
def leaderboard_group_fragment(request: Request, key: str, session: SessionDep) -> HTMLResponse:
    try:
        context = view_models.group_runs_view(session, key)
    except NotFound as exc:
        return _not_found(request, str(exc))
    return render(request, "_leaderboard_group.html", context)


@router.get("/fragments/active", response_class=HTMLResponse, name="active_fragment")
def active_fragment(request: Request, session: SessionDep, done: int | None = None) -> HTMLResponse:
    context = view_models.active_view(session)
    headers = {}
    if done is not None and done != context["done_count"]:
        # A run finished since the page drew its leaderboard: tell that section to refresh itself.
        headers["HX-Trigger"] = "leaderboard-stale"
    return render(request, "_active.html", context, headers=headers)


# ---------------------------------------------------------------- launch

def _launch_context(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
                    form_error: str | None = None, experiment: tuple[dict, dict, str | None] = ({}, {}, None),
                    study: tuple[dict, dict, str | None] = ({}, {}, None)) -> dict:
    datasets = list_datasets(request.app.state.settings.data_dir)
    teachers = services.teacher_choices(session)
    exp_values, exp_errors, exp_error = experiment
    study_values, study_errors, study_error = study
    return {
        "title": "Launch a run", "nav": "launch",
        "form": forms.launch_form(values, errors, datasets, teachers),
        "form_error": form_error,
        "experiment": dict(forms.experiment_form(exp_values, exp_errors, datasets), error=exp_error),
        "study": dict(study_form.study_form(study_values, study_errors, datasets, teachers,
                                            request.app.state.settings.max_study_runs), error=study_error),
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


@router.get("/fragments/launch-recipe", response_class=HTMLResponse, name="launch_recipe")
def launch_recipe(request: Request, session: SessionDep) -> HTMLResponse:
    # A preset was chosen: redraw the recipe with its values (fields a person then changes win at submit).
    values = {k: v for k, v in request.query_params.items() if k in ("kind", "preset")}
    context = _launch_context(request, session, values, {})
    return render(request, "_recipe_fields.html", {"form": context["form"]})


async def _form_values(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _multi_values(data) -> dict[str, list[str]]:
    # The study form checks several methods and networks under one name.
    return {key: [v for v in data.getlist(key) if isinstance(v, str)] for key in data.keys()}


@router.post("/launch", response_class=HTMLResponse, name="launch_submit")
async def launch_submit(request: Request, session: SessionDep) -> Response:
    # Reading the form needs the event loop; the service call and the re-rendered form do not.
    values = await _form_values(request)
    return await anyio.to_thread.run_sync(_submit_run, request, session, values)


def _submit_run(request: Request, session: Session, values: dict[str, str]) -> Response:
    # A rejected form comes back as a normal page (200) with the errors inline: browsers log every
    # 4xx document as a console error, and the REST API already answers 422 for programs.
    try:
        run = services.create_run(session, forms.run_payload(values))
    except InputError as exc:
        errors, general = forms.errors_by_field(exc.errors, forms.LAUNCH_FIELDS)
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
        experiment = services.create_experiment(session, forms.experiment_payload(values))
    except (InputError, forms.FormError) as exc:
        errors, general = forms.errors_by_field(exc.errors, forms.EXPERIMENT_FORM_FIELDS)
        context = _launch_context(request, session, {}, {}, experiment=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        context = _launch_context(request, session, {}, {}, experiment=(values, {}, str(exc)))
        return render(request, "launch.html", context)
    study_id = services.experiment_study_id(session, experiment.id)
    if study_id is not None:  # over several seeds: the study page compares them
        return RedirectResponse(request.app.url_path_for("study_page", study_id=study_id), status_code=303)
    return RedirectResponse(request.app.url_path_for("compare_page") + f"?experiment={experiment.id}", status_code=303)


@router.post("/launch/study", response_class=HTMLResponse, name="launch_study")
async def launch_study(request: Request, session: SessionDep) -> Response:
    values = _multi_values(await request.form())
    return await anyio.to_thread.run_sync(_submit_study, request, session, values)


def _submit_study(request: Request, session: Session, values: dict[str, list[str]]) -> Response:
    payload = None
    try:
        payload = study_form.study_payload(values)
        study = studies.create_study(session, payload)
    except (InputError, forms.FormError) as exc:
        errors, general = study_form.place_errors(exc.errors, payload)
        context = _launch_context(request, session, {}, {}, study=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        return render(request, "launch.html", _launch_context(request, session, {}, {}, study=(values, {}, str(exc))))
    return RedirectResponse(request.app.url_path_for("study_page", study_id=study.id), status_code=303)


@router.get("/fragments/study-count", response_class=HTMLResponse, name="study_count")
def study_count(request: Request) -> HTMLResponse:
    # The study form changed: how many runs it would train now, and what its grid may sweep.
    values = _multi_values(request.query_params)
    context = {"estimate": study_form.run_estimate(values, request.app.state.settings.max_study_runs),
               "chosen": study_form.chosen_methods(values), "example": study_form.GRID_EXAMPLE}
    return render(request, "_study_count.html", context)


# ---------------------------------------------------------------- run page

@router.get("/runs/{run_id}", response_class=HTMLResponse, name="run_page")
def run_page(request: Request, run_id: int, session: SessionDep) -> HTMLResponse:
    if not valid_id(run_id):
        return _not_found(request, f"run {run_id} does not exist")
    try:
        run = services.get_run(session, run_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
    epochs = services.get_epochs(session, run_id)
    context = {"title": f"Run {run_id}", "nav": "", "charts": True,
               **view_models.run_view(session, run, epochs)}
    return render(request, "run.html", context)


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse, name="page_cancel_run")
def cancel_run(request: Request, run_id: int, session: SessionDep) -> Response:
    return _run_action(request, session, run_id, services.cancel_run, "Not cancelled")


@router.post("/runs/{run_id}/retry", response_class=HTMLResponse, name="page_retry_run")
def retry_run(request: Request, run_id: int, session: SessionDep) -> Response:
    return _run_action(request, session, run_id, services.retry_run, "Not retried", reload_when_done=True)


def _run_action(request: Request, session: Session, run_id: int, action, refused: str,
                reload_when_done: bool = False) -> Response:
    """Answer an HTMX button with the run's refreshed summary, which says beside the buttons why the action
    was refused (queue full, teacher gone, wrong state); a plain form post goes back to the page."""
    if not valid_id(run_id):
        return _not_found(request, f"run {run_id} does not exist")
    refusal = None
    try:
        run = action(session, run_id)
    except NotFound as exc:
        return _not_found(request, str(exc))
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


# ---------------------------------------------------------------- compare

@router.get("/compare", response_class=HTMLResponse, name="compare_page")
def compare_page(request: Request, session: SessionDep,
                 run: Annotated[list[str], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
                 experiment: str | None = None,
                 group: Annotated[list[str], Query()] = [],  # noqa: B006
                 study: str | None = None) -> HTMLResponse:
    run_ids = parse_ids(run)
    experiment_id = parse_ids([experiment or ""])
    study_id = parse_ids([study or ""])
    context = {"title": "Compare runs", "nav": "compare", "charts": True,
               **view_models.compare_view(session, run_ids, experiment_id[0] if experiment_id else None,
                                          study_view.group_keys(group), study_id[0] if study_id else None)}
    return render(request, "compare.html", context)
