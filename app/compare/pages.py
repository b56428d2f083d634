"""The compare page: runs, an experiment, a study's configurations or groups of replicates, overlaid."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.compare import views as view_models
from app.studies import views as study_view
from app.web.api import SessionDep
from app.web.ids import parse_ids
from app.web.rendering import render

router = APIRouter()


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
