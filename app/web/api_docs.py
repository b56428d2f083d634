"""/docs (Swagger UI) and /redoc (ReDoc) from files served by this server, never from a CDN.

The viewers' scripts and styles come from the fastapi-offline package, which ships them; the pages are our
own, because FastAPI's (and fastapi-offline's) start the viewer with an inline ``<script>``, which the
Content-Security-Policy (app.access.headers) refuses. static/api-docs.js starts it instead.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.web.rendering import render

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
# Mounted inside /static, so the pages' assets are public like the dashboard's own (app.access.auth).
ASSETS_PATH = "/static/api-docs"
VIEWERS = {"swagger": ("swagger-ui-bundle.js", "Swagger UI"), "redoc": ("redoc.standalone.js", "ReDoc")}

router = APIRouter(include_in_schema=False)


def _page(request: Request, viewer: str) -> HTMLResponse:
    script, name = VIEWERS[viewer]
    return render(request, "api_docs.html", {
        "title": f"{request.app.title} API · {name}", "viewer": viewer, "assets": ASSETS_PATH, "script": script,
        "openapi_url": request.app.openapi_url, "swagger_parameters": request.app.swagger_ui_parameters or {},
    })


@router.get("/docs", response_class=HTMLResponse, name="api_docs_swagger")
def swagger(request: Request) -> HTMLResponse:
    return _page(request, "swagger")


@router.get("/redoc", response_class=HTMLResponse, name="api_docs_redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(request, "redoc")
