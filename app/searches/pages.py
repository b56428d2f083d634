"""The search pages: the list of searches, one search's page (both phases), the fragment it refreshes while
the search goes on, its confirm-now and cancel buttons, and the launch page's search form's submission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.searches import service
from app.searches.form import search_payload
from app.searches.views import confirmation_results, search_summary, search_view
from app.store.db import get_session
from app.store.errors import Conflict, InputError, NotFound
from app.web.ids import valid_id
from app.web.rendering import go_to, not_found, render

SessionDep = Annotated[Session, Depends(get_session)]
router = APIRouter(include_in_schema=False)
# The page's live part asks again this often while the search searches or confirms.
POLL_SECONDS = 3
LIVE_PHASES = ("searching", "confirming")


def _search(session: Session, search_id: int):
    if not valid_id(search_id):
        raise NotFound(f"search {search_id} does not exist")
    return service.get_search(session, search_id)


def _context(session: Session, search, refusal: str | None = None) -> dict:
    data = search_view(session, search)
    return {"search": data, "live": search.phase in LIVE_PHASES, "poll_seconds": POLL_SECONDS, "refusal": refusal,
            **confirmation_results(session, search)}


@router.get("/searches", response_class=HTMLResponse, name="searches_page")
def searches_page(request: Request, session: SessionDep,
                  offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> HTMLResponse:
    rows, total = service.list_searches(session, offset=offset)
    return render(request, "searches.html", {"title": "Searches", "nav": "studies",
                                             "searches": [search_summary(s) for s in rows], "total": total})


@router.get("/searches/{search_id}", response_class=HTMLResponse, name="search_page")
def search_page(request: Request, search_id: int, session: SessionDep) -> HTMLResponse:
    try:
        search = _search(session, search_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    return render(request, "search.html", {"title": search.name or f"Search {search.id}", "nav": "studies",
                                           "charts": True, **_context(session, search)})


@router.get("/fragments/searches/{search_id}", response_class=HTMLResponse, name="search_fragment")
def search_fragment(request: Request, search_id: int, session: SessionDep) -> HTMLResponse:
    try:
        search = _search(session, search_id)
    except NotFound as exc:
        return not_found(request, str(exc))
    return render(request, "_search_live.html", _context(session, search))


def _act(request: Request, session: Session, search_id: int, action) -> Response:
    try:
        search = _search(session, search_id)
        action(session, search.id)
    except NotFound as exc:
        return not_found(request, str(exc))
    except Conflict as exc:
        search = service.get_search(session, search_id)
        return render(request, "_search_live.html", _context(session, search, f"Refused: {exc}"))
    return go_to(request, request.app.url_path_for("search_page", search_id=search_id))


@router.post("/searches/{search_id}/confirm", response_class=HTMLResponse, name="page_confirm_search")
def confirm_search(request: Request, search_id: int, session: SessionDep) -> Response:
    return _act(request, session, search_id, service.request_confirmation)


@router.post("/searches/{search_id}/cancel", response_class=HTMLResponse, name="page_cancel_search")
def cancel_search(request: Request, search_id: int, session: SessionDep) -> Response:
    return _act(request, session, search_id, service.cancel_search)


@router.post("/searches", response_class=HTMLResponse, name="page_create_search")
async def create_search(request: Request, session: SessionDep) -> Response:
    """The launch page's search form: on success to the new search's page; else the form's errors in place."""
    form = await request.form()
    try:
        search = service.create_search(session, search_payload(form))
    except InputError as exc:
        return render(request, "_search_errors.html", {"errors": exc.errors}, status_code=422)
    return go_to(request, request.app.url_path_for("search_page", search_id=search.id))
