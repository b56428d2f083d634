"""The dashboard's Jinja environment: its filters and globals, ``path_for``, ``render`` and the not-found
page. What every page's context holds besides its own (the top bar's sign-in state) comes from context
processors that the application registers (app.main), so that this module knows no feature above it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from app.web.formatting import fmt_duration, fmt_params, fmt_pct, fmt_value, fmt_when
from kdcore.registry import EXPERIMENT_KINDS, METHODS

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR), context_processors=[])
templates.env.filters.update(pct=fmt_pct, params=fmt_params, duration=fmt_duration, value=fmt_value, when=fmt_when)


@pass_context
def path_for(context, name: str, /, **params: Any) -> str:
    # Paths, not absolute URLs: links keep working behind a proxy that rewrites the host.
    # Starlette's url_path_for walks every route per call (about 0.3 ms): too slow for a 100-row table.
    app = context["request"].app
    formats = _route_formats(app)
    if name in formats and set(params) == formats[name][1]:
        return formats[name][0].format(**{k: quote(str(v), safe="") for k, v in params.items()})
    return str(app.url_path_for(name, **params))


@functools.cache
def _route_formats(app) -> dict[str, tuple[str, set[str]]]:
    # The first route of a name wins, as in url_path_for.
    formats: dict[str, tuple[str, set[str]]] = {}
    for prefix, route in _api_routes(app.routes, ""):
        formats.setdefault(route.name, (prefix + route.path_format, set(route.param_convertors)))
    return formats


def _api_routes(routes, prefix: str):
    """Every APIRoute with the prefix it was included under. FastAPI keeps an included router as one
    entry that holds it (``original_router``, ``include_context.prefix``); a router it cannot see into
    leaves its routes to url_path_for."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix, route
        elif hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            yield from _api_routes(route.original_router.routes, prefix + getattr(context, "prefix", ""))


templates.env.globals["path_for"] = path_for
templates.env.globals["experiment_titles"] = [METHODS[kind].title for kind in EXPERIMENT_KINDS]


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200, **kw) -> HTMLResponse:
    # Starlette adds what templates.context_processors give for the request.
    return templates.TemplateResponse(request, name, context, status_code=status_code, **kw)


def go_to(request: Request, path: str) -> Response:
    """Leave the page for ``path`` after a button's action (a delete: the page shown is gone): htmx follows
    HX-Redirect with a full page load; a plain form post follows the 303."""
    if "HX-Request" in request.headers:
        return Response(headers={"HX-Redirect": path})
    return RedirectResponse(path, status_code=303)


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


def render_fragment(request: Request, name: str, context: dict[str, Any]) -> str:
    """A template's HTML as a string, for a part of a page that is kept and reused (app.runs.pages' leaderboard)."""
    return templates.get_template(name).render({**context, "request": request})
