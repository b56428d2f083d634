"""The FastAPI application factory: ``uvicorn --factory app.main:create_app`` or ``kd serve``."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app import api, api_studies
from app.db import init_db
from app.errors import InputError, ServiceError, field_error
from app.security import CrossSiteGuard, HostPolicy
from app.settings import Settings
from app.throttle import FailureLimiter
from kdcore.architectures import catalog

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _validation_response(errors: list[dict]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


async def _on_request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default handler echoes the input, which may be NaN and not JSON-encodable; keep loc/msg/type.
    return _validation_response([field_error(e.get("loc", ()), str(e.get("msg", "")), str(e.get("type", "")))
                                 for e in exc.errors()])


async def _on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    if isinstance(exc, InputError):
        # Same shape as FastAPI's own body errors.
        prefix = ["body"] if request.url.path.startswith("/api/") else []
        return _validation_response([{**e, "loc": [*prefix, *e["loc"]]} for e in exc.errors])
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)


def create_app(settings: Settings | None = None, *, worker_pool=None) -> FastAPI:
    """Build the app. ``worker_pool`` runs inside it when given: the local pool (app.worker.pool.WorkerPool)
    or the Ray executor (app.ray_executor.executor.RayExecutor), which share start() and stop()."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The architecture catalog comes from a subprocess the first time (seconds): describe the networks
        # while the server starts rather than during the first launch page.
        threading.Thread(target=catalog, args=(10,), name="architecture-catalog", daemon=True).start()
        if worker_pool is not None:
            worker_pool.start()
        try:
            yield
        finally:
            if worker_pool is not None:
                worker_pool.stop()

    app = FastAPI(
        title="KD dashboard",
        description="Launch, watch and compare knowledge-distillation runs.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.signin_limiter = FailureLimiter(limit=10, window_s=60)
    app.add_middleware(CrossSiteGuard, policy=HostPolicy.for_server(settings.bind_host, settings.allowed_hosts))
    app.state.engine = init_db(settings)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.include_router(api.router)
    app.include_router(api.writes)
    app.include_router(api_studies.router)
    app.include_router(api_studies.writes)
    # The dashboard's HTML routes live in app.pages when present; an error inside it must still surface.
    if importlib.util.find_spec("app.pages") is not None:
        app.include_router(importlib.import_module("app.pages").router)
        app.include_router(importlib.import_module("app.signin").router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
