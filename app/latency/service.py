"""Latency figures as the pages and the API read them, and requests to measure again (the worker measures:
app.executors.latency). Functions take a Session and raise app.store.errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from app.store.errors import Conflict, InputError, field_error, pydantic_errors
from app.store.models import Latency, LatencyRequest
from app.runs.service import iso
from kdcore.architectures import canonical, catalog

# What a request may ask: the budget per figure (blocked_autorange's min_run_time) is small by default.
DEFAULT_MIN_RUN_TIME = 0.5
# The leaderboard's latency axis: one image on one CPU thread, as a deployed student answers one request.
PARETO_TARGET = ("cpu", 1, 1)
TARGET_ORDER = {"cpu": 0, "cuda": 1, "onnxruntime-cpu": 2}


class LatencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    num_classes: int = Field(10, ge=2, le=10_000, description="The class count the networks are built at")
    networks: list[str] = Field(default_factory=list, max_length=200,
                                description="Networks to time (GET /api/architectures); empty: every one")
    min_run_time: float = Field(DEFAULT_MIN_RUN_TIME, gt=0, le=10,
                                description="Seconds of timing per figure (torch.utils.benchmark's min_run_time)")


def request_latency(session: Session, body: dict[str, Any], class_counts: list[int]) -> LatencyRequest:
    """Queue a measurement; 422 for an unknown network or class count, 409 while one is already waiting."""
    try:
        wanted = LatencyCreate.model_validate(body)
    except ValidationError as exc:
        raise InputError(pydantic_errors(exc)) from None
    if wanted.num_classes not in class_counts:
        raise InputError([field_error(("num_classes",), f"no dataset here has {wanted.num_classes} classes; "
                                      f"the datasets' class counts are {', '.join(map(str, class_counts))}")])
    known = catalog(wanted.num_classes)
    names = [canonical(name) for name in wanted.networks]
    errors = [field_error(("networks", i), f"unknown network {name!r}; choose among: {', '.join(known)}")
              for i, name in enumerate(names) if name not in known]
    if errors:
        raise InputError(errors)
    waiting = session.exec(select(LatencyRequest).where(LatencyRequest.status.in_(("queued", "running")))).first()
    if waiting is not None:
        raise Conflict(f"latency request {waiting.id} is {waiting.status} already; wait for it to end")
    request = LatencyRequest(num_classes=wanted.num_classes, networks=list(dict.fromkeys(names)),
                             min_run_time=wanted.min_run_time)
    session.add(request)
    session.commit()
    session.refresh(request)
    return request


def request_to_dict(request: LatencyRequest) -> dict[str, Any]:
    return {"id": request.id, "status": request.status, "num_classes": request.num_classes,
            "networks": list(request.networks), "min_run_time": request.min_run_time,
            "requested_at": iso(request.requested_at), "started_at": iso(request.started_at),
            "finished_at": iso(request.finished_at), "worker": request.worker, "error": request.error}


def figure_to_dict(figure: Latency) -> dict[str, Any]:
    return {"network": figure.network, "num_classes": figure.num_classes, "target": figure.target,
            "batch": figure.batch, "threads": figure.threads, "median_s": figure.median_s, "iqr_s": figure.iqr_s,
            "blocks": figure.blocks, "calls": figure.calls, "unavailable": figure.unavailable,
            "min_run_time": figure.min_run_time, "measured_at": iso(figure.measured_at),
            "key": {"device": figure.device, "device_model": figure.device_model, "torch": figure.torch_version,
                    "onnxruntime": figure.onnxruntime_version}}


def figures(session: Session, num_classes: int) -> list[dict[str, Any]]:
    """Every cached figure at ``num_classes``: by network, target, batch, then the newest first."""
    rows = session.exec(select(Latency).where(Latency.num_classes == num_classes)).all()
    rows = sorted(rows, key=lambda f: (f.network, TARGET_ORDER.get(f.target, 9), f.batch, -f.measured_at.timestamp()))
    return [figure_to_dict(row) for row in rows]


def recent_requests(session: Session, limit: int = 5) -> list[dict[str, Any]]:
    rows = session.exec(select(LatencyRequest).order_by(LatencyRequest.id.desc()).limit(limit)).all()
    return [request_to_dict(row) for row in rows]


def pareto_latencies(session: Session) -> dict[tuple[str, int], dict[str, Any]]:
    """``{(network, class count): figure}`` on the leaderboard's latency axis (PARETO_TARGET), the newest figure
    of each network, with the key it holds for."""
    target, batch, threads = PARETO_TARGET
    rows = session.exec(select(Latency).where(Latency.target == target, Latency.batch == batch,
                                              Latency.threads == threads, Latency.median_s.is_not(None))
                        .order_by(Latency.measured_at)).all()
    return {(row.network, row.num_classes): figure_to_dict(row) for row in rows}
