"""The latency API: GET the cached figures (with the key each holds for) and the latest requests, POST a request
to measure again, which a worker takes when it has no run to train (app.executors.latency)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.access.auth import require_token
from app.latency import service
from app.latency.responses import LatencyListOut, LatencyRequestOut
from app.web.api import JsonObject, SessionDep, documented_body, error_responses
from kdcore.data.catalog import list_datasets

router = APIRouter(prefix="/api", tags=["api"])
writes = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(require_token)])


def class_counts(request: Request) -> list[int]:
    """The class counts of this server's datasets: the networks are described (and timed) at those only."""
    return sorted({info.num_classes for info in list_datasets(request.app.state.settings.data_dir) if info.classes})


@router.get("/latency", summary="Measured forward-pass latency per network, with the device and versions it holds for",
            response_model=LatencyListOut)
def latency(session: SessionDep,
            num_classes: Annotated[int, Query(ge=2, le=10_000, description="The class count")] = 10) -> dict:
    return {"num_classes": num_classes, "items": service.figures(session, num_classes),
            "requests": service.recent_requests(session)}


@writes.post("/latency", status_code=202, summary="Measure the networks' latency again (in a worker)",
             response_model=LatencyRequestOut, responses=error_responses(401, 409),
             openapi_extra=documented_body(service.LatencyCreate))
def request_latency(body: JsonObject, session: SessionDep, request: Request) -> dict:
    return service.request_to_dict(service.request_latency(session, body, class_counts(request)))
