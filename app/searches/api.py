"""The REST API of searches under /api/searches: submit, list, read (trials, progress, charts' data, the
confirmation's groups and verdict), confirm now, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from app.access.auth import require_token
from app.searches import service
from app.searches.views import search_summary, search_view
from app.store.models import MAX_ID
from app.searches.responses import SearchCreate, SearchListOut, SearchOut
from app.web.api import JsonObject, SessionDep, documented_body, error_responses

SearchId = Annotated[int, Path(ge=1, le=MAX_ID)]
router = APIRouter(prefix="/api/searches", tags=["searches"])
writes = APIRouter(prefix="/api/searches", tags=["searches"], dependencies=[Depends(require_token)])


@writes.post("", status_code=201, responses=error_responses(401, 429), response_model=SearchOut,
             openapi_extra=documented_body(SearchCreate),
             summary="Start a search: Optuna asks for trials (each a queued run), prunes on validation accuracy, "
                     "then a study confirms the top configurations over seeds")
def create_search(body: JsonObject, session: SessionDep) -> dict[str, Any]:
    search = service.create_search(session, body)
    return search_view(session, search, with_charts=False)


@router.get("", summary="List searches, newest first", response_model=SearchListOut)
def list_searches(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict[str, Any]:
    rows, total = service.list_searches(session, limit=limit, offset=offset)
    return {"items": [search_summary(search) for search in rows], "total": total, "limit": limit, "offset": offset}


@router.get("/{search_id}", responses=error_responses(404), response_model=SearchOut,
            summary="One search: its trials (number, params, status, last_epoch, val_accuracy), progress with an "
                    "ETA, and its confirmation study's groups with whether the winner held up")
def get_search(search_id: SearchId, session: SessionDep,
               charts: Annotated[bool, Query(description="Also the charts' data")] = False) -> dict[str, Any]:
    return search_view(session, service.get_search(session, search_id), with_charts=charts)


@writes.post("/{search_id}/confirm", responses=error_responses(401, 404, 409), response_model=SearchOut,
             summary="Confirm now: ask for no more trials; the confirmation starts once none is running")
def confirm_search(search_id: SearchId, session: SessionDep) -> dict[str, Any]:
    return search_view(session, service.request_confirmation(session, search_id), with_charts=False)


@writes.post("/{search_id}/cancel", responses=error_responses(401, 404, 409), response_model=SearchOut,
             summary="Cancel the search: its queued trials are cancelled and its running ones stopped")
def cancel_search(search_id: SearchId, session: SessionDep) -> dict[str, Any]:
    return search_view(session, service.cancel_search(session, search_id), with_charts=False)
