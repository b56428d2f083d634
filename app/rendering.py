"""The dashboard's Jinja environment: its filters and globals, ``path_for``, and ``render``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from app import auth
from app.formatting import fmt_duration, fmt_params, fmt_pct, fmt_value, fmt_when
from kdcore.registry import EXPERIMENT_KINDS, METHODS

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
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
    # app.routes holds each route with the prefix it was included under; the first of a name wins, as in url_path_for.
    formats: dict[str, tuple[str, set[str]]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            formats.setdefault(route.name, (route.path_format, set(route.param_convertors)))
    return formats


templates.env.globals["path_for"] = path_for
templates.env.globals["experiment_titles"] = [METHODS[kind].title for kind in EXPERIMENT_KINDS]


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200, **kw) -> HTMLResponse:
    # The top bar offers sign-in or sign-out when the server has a token.
    context = {"auth": {"required": auth.required(request), "signed_in": auth.has_cookie(request)}, **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code, **kw)


def render_fragment(request: Request, name: str, context: dict[str, Any]) -> str:
    """A template's HTML as a string, for a part of a page that is kept and reused (app.pages' leaderboard)."""
    return templates.get_template(name).render({**context, "request": request})
