"""The benchmark's pages: the launch page's benchmark form submitted (POST /launch/benchmark), its cost redrawn as
the form changes (before anything trains), and a benchmark's page laying out the paper's table with the
published values beside ours."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.launch import benchmark_form
from app.launch.benchmark_cost import form_cost
from app.launch.pages import _launch_context, _multi_values
from app.runs.form import FormError
from app.store.errors import InputError, QueueFull
from app.studies import benchmarks
from app.web.api import SessionDep
from app.web.rendering import render
from kdcore.studies.benchmark_table import ours_text, published_text, sources

router = APIRouter()


@router.get("/fragments/benchmark-cost", response_class=HTMLResponse, name="benchmark_cost")
def benchmark_cost_fragment(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "_benchmark_cost.html", {"cost": form_cost(request, session,
                                                                      _multi_values(request.query_params))})


@router.post("/launch/benchmark", response_class=HTMLResponse, name="launch_benchmark")
async def launch_benchmark(request: Request, session: SessionDep) -> Response:
    values = _multi_values(await request.form())
    return await anyio.to_thread.run_sync(_submit_benchmark, request, session, values)


def _submit_benchmark(request: Request, session: Session, values: dict[str, list[str]]) -> Response:
    payload = None
    try:
        payload = benchmark_form.benchmark_payload(values)
        benchmark = benchmarks.create_benchmark(session, payload)
    except (InputError, FormError) as exc:
        errors, general = benchmark_form.place_errors(exc.errors, payload)
        context = _launch_context(request, session, {}, {}, benchmark=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        return render(request, "launch.html", _launch_context(request, session, {}, {},
                                                              benchmark=(values, {}, str(exc))))
    return RedirectResponse(request.app.url_path_for("benchmark_page", benchmark_id=benchmark.id), status_code=303)


@router.get("/benchmarks/{benchmark_id}", response_class=HTMLResponse, name="benchmark_page")
def benchmark_page(request: Request, benchmark_id: int, session: SessionDep) -> HTMLResponse:
    data = benchmarks.benchmark_to_dict(session, benchmarks.get_benchmark(session, benchmark_id))
    table = data["table"]
    cited = sources(table)
    rows = [{"title": row["title"], "method": row["method"],
             "cells": [{"ours": ours_text(cell), "published": published_text(cell, table, cited), "cell": cell}
                       for cell in row["cells"]]} for row in table["rows"]]
    return render(request, "benchmark.html", {"title": f"Benchmark #{benchmark_id}", "nav": "studies",
                                              "benchmark": data, "rows": rows, "sources": cited})
