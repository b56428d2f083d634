"""The FastAPI application factory: ``uvicorn --factory app.main:create_app`` or ``kd serve``."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError

from app.access import auth, signin
from app.access.access_log import redact_access_log
from app.access.body_limit import BodyLimit
from app.access.cross_site import CrossSiteGuard, HostPolicy
from app.access.gate import AccessGate
from app.access.headers import SecurityHeaders
from app.access.throttle import FailureLimiter
from app.compare import pages as compare_pages
from app.experiments import api as experiments_api
from app.launch import benchmark_pages, benchmarks_api
from app.latency import api as latency_api
from app.latency import pages as latency_pages
from app.launch import pages as launch_pages
from app.leaderboard import api as leaderboard_api
from app.leaderboard import pages as leaderboard_pages
from app.runs import api as runs_api
from app.runs import events as run_events
from app.runs import pages as run_pages
from app.searches import api as searches_api
from app.searches import pages as search_pages
from app.searches.driver import SearchDriver
from app.settings import Settings
from app.store.db import init_db
from app.store.errors import InputError, ServiceError, bounded, field_error
from app.store.storage import storage_problem
from app.studies import api as studies_api
from app.studies import pages as study_pages
from app.teachers import api as teachers_api
from app.teachers.uploads import UPLOAD_PATHS
from app.web import api_docs
from app.web.rendering import render, templates
from kdcore.architectures import catalog

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _validation_response(errors: list[dict]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


async def _on_request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default handler echoes the input, which may be NaN and not JSON-encodable; keep loc/msg/type.
    errors = [field_error(e.get("loc", ()), str(e.get("msg", "")), str(e.get("type", ""))) for e in exc.errors()]
    return _validation_response(bounded(errors))


async def _on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    if isinstance(exc, InputError):
        # Same shape as FastAPI's own body errors.
        prefix = ["body"] if request.url.path.startswith("/api/") else []
        return _validation_response([{**e, "loc": [*prefix, *e["loc"]]} for e in exc.errors])
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)


async def _on_storage_error(request: Request, exc: Exception):
    """A full or read-only disk under the database or a file: 507 or 503 naming the path and the condition
    (JSON for the API, the error page for pages), instead of a 500 with a traceback. Other database and
    file errors stay 500s."""
    problem = storage_problem(exc, request.app.state.settings.db_url)
    if problem is None:
        raise exc
    if request.url.path.startswith("/api/"):
        return JSONResponse(problem.as_json(), status_code=problem.status_code)
    return render(request, "error.html", {"title": "Nothing was saved", "message": str(problem)},
                  status_code=problem.status_code)


# The dashboard's HTML routes, feature by feature.
PAGE_ROUTERS = (run_events.router, study_pages.router, search_pages.router, leaderboard_pages.router,
                launch_pages.router, run_pages.router, compare_pages.router, benchmark_pages.router, latency_pages.router)


def page_router() -> APIRouter:
    """PAGE_ROUTERS out of the OpenAPI schema (/docs and the API fuzz tests are about /api only). Which of
    them need the API token is the gate's decision (app.access.gate), for every route alike."""
    pages = APIRouter(include_in_schema=False)
    for router in PAGE_ROUTERS:
        pages.include_router(router)
    if auth.template_context not in templates.context_processors:
        templates.context_processors.append(auth.template_context)
    return pages


def create_app(settings: Settings | None = None, *, worker_pool=None) -> FastAPI:
    """Build the app. ``worker_pool`` runs inside it when given: the local pool (app.executors.local.pool.WorkerPool)
    or the Ray executor (app.executors.ray.executor.RayExecutor), which share start() and stop()."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        redact_access_log()  # here, after uvicorn has set its loggers up
        # The architecture catalog comes from a subprocess the first time (seconds): describe the networks
        # while the server starts rather than during the first launch page.
        threading.Thread(target=catalog, args=(10,), name="architecture-catalog", daemon=True).start()
        if worker_pool is not None:
            worker_pool.start()
        # Searches go on in every server, whoever trains their trials (app.searches.driver).
        driver = SearchDriver(app.state.engine, settings, settings.poll_s)
        driver.start()
        try:
            yield
        finally:
            driver.stop()
            if worker_pool is not None:
                worker_pool.stop()

    app = FastAPI(
        title="KD dashboard",
        description="Launch, watch and compare knowledge-distillation runs.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by app.web.api_docs instead of from a CDN
    )
    app.state.settings = settings
    # Its workers' devices say how long a run launched here will take (app.launch.timings).
    app.state.worker_pool = worker_pool
    # Failed sign-ins and wrong Bearer tokens or cookies, per client: one limit for every way of guessing.
    app.state.token_limiter = FailureLimiter(limit=10, window_s=60)
    # The last added runs first: headers on every answer (refusals too), then the host and cross-site
    # checks, then the token (so a wrong one counts as a guess whatever the body), then the body's size,
    # all before routing and before a body is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body,
                       uploads={path: (settings.max_upload, "KD_MAX_UPLOAD") for path in UPLOAD_PATHS})
    app.add_middleware(AccessGate, limiter=app.state.token_limiter)
    app.add_middleware(CrossSiteGuard, policy=HostPolicy.for_server(settings.bind_host, settings.allowed_hosts))
    app.add_middleware(SecurityHeaders)
    app.state.engine = init_db(settings)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ServiceError, _on_service_error)
    for storage_error in (DBAPIError, OSError):
        app.add_exception_handler(storage_error, _on_storage_error)
    # In this order, /openapi.json lists the paths as it always has: reads, then writes. Every API route
    # declares the Bearer scheme (the writes' routers carry it already), so that /docs sends the token.
    reads = (runs_api.router, experiments_api.router, leaderboard_api.router, runs_api.catalog, studies_api.router,
             teachers_api.router, benchmarks_api.router, latency_api.router, searches_api.router)
    for router in (runs_api.router, experiments_api.router, leaderboard_api.router, runs_api.catalog,
                   runs_api.writes, experiments_api.writes, studies_api.router, studies_api.writes,
                   teachers_api.router, teachers_api.writes, benchmarks_api.router, benchmarks_api.writes,
                   latency_api.router, latency_api.writes, searches_api.router, searches_api.writes):
        app.include_router(router, dependencies=[Depends(auth.require_token)] if router in reads else None)
    app.include_router(page_router())
    app.include_router(api_docs.router)
    # Public (app.access.auth.PUBLIC_PATHS): how a browser gets (or drops) the token's cookie.
    app.include_router(signin.router)
    app.mount(api_docs.ASSETS_PATH, StaticFiles(directory=api_docs.ASSETS_DIR), name="api_docs_assets")
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
