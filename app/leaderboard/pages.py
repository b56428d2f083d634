"""The home page: the leaderboard (by configuration or by run, filtered and paged), a configuration opened to
its runs, and the queue card with the latest studies, each a fragment the page refreshes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app.leaderboard import views as view_models
from app.leaderboard.reproduction import reproduced
from app.leaderboard.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, BoardPage
from app.runs.filters import FilterDep
from app.store.errors import NotFound
from app.web.api import SessionDep
from app.web.rendering import not_found, render, render_fragment

router = APIRouter()
Offset = Annotated[int, Query(ge=0, le=2**62)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep, filters: FilterDep, view: str = "groups", offset: Offset = 0,
         limit: PageSize = DEFAULT_PAGE_SIZE) -> HTMLResponse:
    board, active = view_models.home_view(session, BoardPage(view, filters, offset, limit))
    context = {"title": "Leaderboard", "nav": "home", "charts": True, **board, **active,
               "board_html": _board_html(request, board)}
    return render(request, "home.html", context)


@router.get("/reproduction", response_class=HTMLResponse, name="reproduction_page")
def reproduction_page(request: Request, session: SessionDep, filters: FilterDep) -> HTMLResponse:
    found = reproduced(session, filters)
    context = {"title": "Reported vs reproduced", "nav": "reproduction", **found,
               "compare_link": lambda row: f"/compare?group={row['group']}",
               "csv_url": "/api/reproduction.csv" + (f"?{request.url.query}" if request.url.query else "")}
    return render(request, "reproduction.html", context)


@router.get("/fragments/leaderboard", response_class=HTMLResponse, name="leaderboard_fragment")
def leaderboard_fragment(request: Request, session: SessionDep, filters: FilterDep, view: str = "groups",
                         offset: Offset = 0, limit: PageSize = DEFAULT_PAGE_SIZE) -> HTMLResponse:
    page = BoardPage(view, filters, offset, limit)
    response = HTMLResponse(_board_html(request, view_models.cached_leaderboard_view(session, page)))
    if request.headers.get("HX-Trigger") not in (None, "leaderboard"):
        # A filter, a page or a view chosen (not the board refreshing itself): the address says what is shown,
        # so that it can be passed on, reloaded, and gone back to.
        query = page.query()
        response.headers["HX-Push-Url"] = request.app.url_path_for("home") + (f"?{query}" if query else "")
    return response


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
