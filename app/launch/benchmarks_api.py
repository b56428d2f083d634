"""The REST API of benchmarks under /api/benchmarks: what one costs before anything trains, submit it (its
teachers and studies queued at once), list them, and read one with the paper's table."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlmodel import Session

from app.access.auth import require_token
from app.launch.benchmark_cost import benchmark_cost
from app.launch.benchmark_responses import BenchmarkCostOut, BenchmarkListOut, BenchmarkOut, CreatedBenchmarkOut
from app.store.models import MAX_ID
from app.studies import benchmarks
from app.web.api import JsonObject, SessionDep, documented_body, error_responses
from kdcore.data.catalog import list_datasets
from kdcore.studies.benchmark import BenchmarkSpec

BenchmarkId = Annotated[int, Path(ge=1, le=MAX_ID)]
router = APIRouter(prefix="/api/benchmarks", tags=["benchmarks"])
writes = APIRouter(prefix="/api/benchmarks", tags=["benchmarks"], dependencies=[Depends(require_token)])
BODY = documented_body(BenchmarkSpec)


def cost_of(request: Request, session: Session, spec: BenchmarkSpec) -> dict[str, Any]:
    settings = request.app.state.settings
    return benchmark_cost(session, spec, list_datasets(settings.data_dir), settings.max_study_runs,
                          getattr(request.app.state, "worker_pool", None))


@writes.post("/cost", summary="What a benchmark would cost: its runs and GPU-hours; nothing is stored",
             responses=error_responses(401), response_model=BenchmarkCostOut, openapi_extra=BODY)
def benchmark_cost_route(body: JsonObject, request: Request, session: SessionDep) -> dict:
    return cost_of(request, session, benchmarks.checked_spec(session, body))


@writes.post("", status_code=201, summary="Queue the cifar100-benchmark preset: a teacher per teacher network and "
             "a study per teacher network and learning rate", responses=error_responses(401, 429),
             openapi_extra=BODY, response_model=CreatedBenchmarkOut)
def create_benchmark(body: JsonObject, request: Request, session: SessionDep) -> dict:
    cost = cost_of(request, session, benchmarks.checked_spec(session, body))
    benchmark = benchmarks.create_benchmark(session, body)
    return {**benchmarks.benchmark_to_dict(session, benchmark), "cost": cost}


@router.get("", summary="List benchmarks, newest first", response_model=BenchmarkListOut)
def list_benchmarks(session: SessionDep) -> dict:
    return {"items": [{"id": b.id, "name": b.name, "dataset": b.dataset, "spec": b.spec, "teachers": b.teachers,
                       "study_ids": [entry["study_id"] for entry in b.layout]}
                      for b in benchmarks.list_benchmarks(session)]}


@router.get("/{benchmark_id}", summary="One benchmark: its studies' progress and the paper's table, the published "
            "values beside ours", responses=error_responses(404), response_model=BenchmarkOut)
def get_benchmark(benchmark_id: BenchmarkId, session: SessionDep) -> dict:
    return benchmarks.benchmark_to_dict(session, benchmarks.get_benchmark(session, benchmark_id))


@router.get("/{benchmark_id}/table.md", summary="The benchmark's table in Markdown", response_class=Response,
            responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}},
                             "description": "A Markdown table"}, **error_responses(404)})
def table_markdown(benchmark_id: BenchmarkId, session: SessionDep) -> Response:
    data = benchmarks.benchmark_to_dict(session, benchmarks.get_benchmark(session, benchmark_id))
    return Response(data["markdown"], media_type="text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="benchmark-{benchmark_id}.md"'})
