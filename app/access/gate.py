"""The token gate: with KD_API_TOKEN set, a request that needs it (app.access.auth.needs_token) and lacks
it is answered here, before routing and before its body is read, so no route can forget the check.

Wrong credentials, a Bearer header or a cookie, count toward the same per-client failure limit as sign-in
(app.access.throttle): past it, the client gets 429 with Retry-After, even with the right token, until its
oldest failure is a minute old. A missing credential is not a guess and counts nothing, nor does a wrong
one the client already sent (the stale cookie of every open tab after the token changed). The client is the
connection's address, or the X-Forwarded-For address only from proxies named with --forwarded-allow-ips.

Who is refused gets what it can act on: a browser page or form post a redirect to the sign-in page that
comes back to where it was; an htmx request a 401 whose HX-Redirect makes htmx go there (a redirect would
be followed inside the XHR and swapped in); the API, event streams and other programs a 401 JSON.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.access import auth
from app.access.throttle import FailureLimiter

SIGNIN_PATH = "/signin"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _return_to(request: Request) -> str:
    """The page to come back to after signing in: the one asked for, or for a refused write (a POST from a
    page) the page it came from. Only a path is kept, so a forged header cannot lead to another site."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method in auth.SAFE_METHODS:
        return auth.safe_next(here)
    current = request.headers.get("hx-current-url") or request.headers.get("referer")
    if current:
        parts = urlsplit(current)
        return auth.safe_next(parts.path + (f"?{parts.query}" if parts.query else ""), request.url.path)
    return request.url.path


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return (path.startswith("/api/") or path == "/openapi.json"
            or "text/event-stream" in request.headers.get("accept", ""))


def refusal(request: Request) -> Response:
    """The answer to a request that needs the token and does not carry it."""
    location = SIGNIN_PATH + "?next=" + quote(_return_to(request), safe="/")
    if "hx-request" in request.headers:
        return JSONResponse({"detail": "sign in first"}, status_code=401, headers={"HX-Redirect": location})
    if _wants_json(request):
        return JSONResponse({"detail": "missing or wrong API token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return RedirectResponse(location, status_code=303)


def too_many(wait: int) -> Response:
    return Response(json.dumps({"detail": f"too many failed attempts with a wrong API token; try again in {wait} s"}),
                    status_code=429, media_type="application/json", headers={"Retry-After": str(wait)})


def _presented(request: Request) -> str | None:
    """The credentials the request carries (its Authorization header and sign-in cookie), or None."""
    header, cookie = request.headers.get("authorization"), request.cookies.get(auth.COOKIE)
    return None if header is None and cookie is None else f"{header}\n{cookie}"


class AccessGate:
    """ASGI middleware: the token check for every route, with guessing limited per client."""

    def __init__(self, app, limiter: FailureLimiter):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        settings = scope["app"].state.settings
        if not auth.needs_token(settings, scope.get("method", "GET"), request.url.path):
            return await self.app(scope, receive, send)
        client = client_address(request)
        wait = self.limiter.retry_after(client)
        if wait is None and auth.authorized(request):
            return await self.app(scope, receive, send)
        presented = _presented(request)
        if wait is None and presented is not None:
            self.limiter.failed(client, presented)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        response = too_many(wait) if wait is not None else refusal(request)
        return await response(scope, receive, send)
