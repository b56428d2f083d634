"""The leaderboard's REST API: completed runs one by one, and configurations over their seeds, both
filtered by the query parameters of app.runs.filters and paged by limit and offset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from app.leaderboard import board
from app.leaderboard.completed import single_runs
from app.leaderboard.filters import group_page
from app.leaderboard.reproduction import reproduced
from app.leaderboard.responses import LeaderboardGroupListOut, LeaderboardOut, ReproductionListOut
from app.studies.service import reproduction_csv
from app.runs.filters import FilterDep
from app.web.api import SessionDep

router = APIRouter(prefix="/api", tags=["api"])


# A JSONResponse skips FastAPI's check and re-encoding of up to 10,000 rows; the model documents the
# answer, and a test holds the board to it.
@router.get("/leaderboard", summary="Completed runs ranked by final test accuracy (single runs)",
            responses={200: {"model": LeaderboardOut, "description": "Best first; ties: the earlier run first"}})
def leaderboard(session: SessionDep, filters: FilterDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> JSONResponse:
    return JSONResponse({"items": single_runs(session, limit, offset, filters=filters),
                         "total": board.completed_count(session, filters), "limit": limit, "offset": offset})


@router.get("/leaderboard/groups", summary="Configurations ranked by mean final accuracy over their seeds",
            description="Filters choose configurations: by `study_id` or `tag`, those with a completed run in "
            "that study or so tagged. Each one's n and statistics are those of all its completed runs.",
            response_model=LeaderboardGroupListOut)
def leaderboard_groups(session: SessionDep, filters: FilterDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                       offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> dict:
    found = group_page(session, filters, limit, offset)
    return {"items": found["items"], "total": found["total"], "runs": found["runs"], "limit": limit, "offset": offset}


@router.get("/reproduction", summary="Reported vs reproduced: every configuration beside the published results "
            "it matches", description="CIFAR-100 only: a configuration of a published method, teacher and student "
            "network, trained on the whole of cifar100. Filters as the leaderboard's.",
            response_model=ReproductionListOut)
def reproduction(session: SessionDep, filters: FilterDep) -> dict:
    found = reproduced(session, filters)
    return {"items": found["rows"], "groups": len(found["groups"]), "truncated": found["truncated"]}


@router.get("/reproduction.csv", summary="Reported vs reproduced as CSV", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per configuration and published result"}})
def reproduction_as_csv(session: SessionDep, filters: FilterDep) -> Response:
    body = reproduction_csv(reproduced(session, filters)["groups"])
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="reproduction.csv"'})
