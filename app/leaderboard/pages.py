"""The home page: the leaderboard (by configuration or by run), a configuration opened to its runs, and
the queue card with the latest studies, each a fragment the page refreshes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app.leaderboard import views as view_models
from app.store.errors import NotFound
from app.web.api import SessionDep
from app.web.rendering import not_found, render, render_fragment

router = APIRouter()


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
        return not_found(request, str(exc))
    return render(request, "_leaderboard_group.html", context)


@router.get("/fragments/active", response_class=HTMLResponse, name="active_fragment")
def active_fragment(request: Request, session: SessionDep, done: int | None = None) -> HTMLResponse:
    context = view_models.active_view(session)
    headers = {}
    if done is not None and done != context["done_count"]:
        # A run finished since the page drew its leaderboard: tell that section to refresh itself.
        headers["HX-Trigger"] = "leaderboard-stale"
    return render(request, "_active.html", context, headers=headers)
