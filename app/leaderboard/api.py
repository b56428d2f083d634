"""The leaderboard's REST API: completed runs one by one, and configurations over their seeds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.leaderboard import board
from app.leaderboard.completed import single_runs
from app.leaderboard.responses import LeaderboardGroupListOut, LeaderboardOut
from app.web.api import SessionDep

router = APIRouter(prefix="/api", tags=["api"])


# A JSONResponse skips FastAPI's check and re-encoding of up to 10,000 rows; the model documents the
# answer, and a test holds the board to it.
@router.get("/leaderboard", summary="Completed runs ranked by final test accuracy (single runs)",
            responses={200: {"model": LeaderboardOut, "description": "Best first; ties: the earlier run first"}})
def leaderboard(session: SessionDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> JSONResponse:
    return JSONResponse({"items": single_runs(session, limit, offset),
                         "total": board.completed_count(session), "limit": limit, "offset": offset})


@router.get("/leaderboard/groups", summary="Configurations ranked by mean final accuracy over their seeds",
            response_model=LeaderboardGroupListOut)
def leaderboard_groups(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                       offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    items, total, ranking = board.group_page(session, limit, offset)
    return {"items": items, "total": total, "runs": ranking.runs, "limit": limit, "offset": offset}
