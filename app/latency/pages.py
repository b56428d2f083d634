"""The networks page: each network's parameters, FLOPs and MACs (the catalog) beside its measured latency (the
cache, with the device and versions each figure holds for), and the button that asks a worker to measure again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.latency import service
from app.latency.api import class_counts
from app.store.errors import Conflict, InputError
from app.web.api import SessionDep
from app.web.rendering import render
from kdcore.architectures import catalog

router = APIRouter()
# The figures a row shows, in this order: (target, batch, all threads?) -> heading.
COLUMNS = ((("cpu", 1), "CPU · 1 image · 1 thread"), (("cpu", 256), "CPU · 256 · all threads"),
           (("cuda", 1), "GPU · 1 image"), (("cuda", 1024), "GPU · 1024"),
           (("onnxruntime-cpu", 1), "onnxruntime · 1 image · 1 thread"))


def networks_view(session, counts: list[int], num_classes: int, error: str | None = None) -> dict:
    figures = service.figures(session, num_classes)
    rows = []
    for name, info in catalog(num_classes).items():
        mine = [f for f in figures if f["network"] == name]
        cells = [next((f for f in mine if (f["target"], f["batch"]) == column), None) for column, _ in COLUMNS]
        rows.append({"name": name, "parameters": info["parameters"], "macs": info.get("macs"),
                     "flops": info.get("flops"), "cells": cells})
    keys = {tuple(f["key"].values()): f["key"] for f in figures}
    return {"title": "Networks", "nav": "networks", "rows": rows, "columns": [label for _, label in COLUMNS],
            "keys": list(keys.values()), "requests": service.recent_requests(session), "num_classes": num_classes,
            "class_counts": counts, "error": error, "default_min_run_time": service.DEFAULT_MIN_RUN_TIME}


@router.get("/networks", response_class=HTMLResponse, name="networks_page")
def networks_page(request: Request, session: SessionDep,
                  num_classes: Annotated[int, Query(ge=2, le=10_000)] = 10) -> HTMLResponse:
    counts = class_counts(request)
    chosen = num_classes if num_classes in counts else (counts[0] if counts else 10)
    return render(request, "networks.html", networks_view(session, counts, chosen))


@router.post("/networks/latency", response_class=HTMLResponse, name="page_request_latency")
def request_latency(request: Request, session: SessionDep, num_classes: Annotated[int, Form()] = 10) -> Response:
    counts = class_counts(request)
    try:
        service.request_latency(session, {"num_classes": num_classes}, counts)
    except (Conflict, InputError) as exc:
        chosen = num_classes if num_classes in counts else (counts[0] if counts else 10)
        return render(request, "networks.html", networks_view(session, counts, chosen, f"Not requested: {exc}"),
                      status_code=exc.status_code)
    return RedirectResponse(request.app.url_path_for("networks_page") + f"?num_classes={num_classes}", status_code=303)
