"""The API token (KD_API_TOKEN): with one set, every route but sign-in and the static files needs it.

Programs send ``Authorization: Bearer <token>``. A browser signs in once at /signin and then carries
a cookie holding an HMAC of the token rather than the token itself: the cookie proves the holder
knew the token, but a copy of it does not reveal the token for use elsewhere, and changing the token
signs every browser out. The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (no
other site's form or script can make the browser send it), which is what keeps cross-site form
posts from launching or cancelling runs.

Reads need the token too (app.access.gate refuses them before any route runs), as Jupyter requires its
token for everything: run lists, checkpoints, CSVs and event streams are the user's data. ``--public-read``
(``KD_PUBLIC_READ=1``) opens reads again for a trusted network; writes always need the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.settings import Settings

COOKIE = "kd_session"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # "asks for it once": a month, not only until the browser closes
# Versioned so that a future change of the cookie's meaning signs everyone out instead of misreading it.
_COOKIE_CONTEXT = b"kd-dashboard-session-v1"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# What answers without the token. /static holds the app's own scripts, styles and vendored libraries, no
# user data, and the sign-in page needs them; /signin is how a browser gets in, and /signout only drops
# a cookie. Everything else (pages, the API, downloads, event streams, /docs and /openapi.json, and
# routes added later) is private.
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/signin", "/signout"})


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def required(request: Request) -> bool:
    return _settings(request).api_token is not None


def template_context(request: Request) -> dict:
    """For every page's top bar, which offers sign-in or sign-out when the server has a token."""
    return {"auth": {"required": required(request), "signed_in": has_cookie(request),
                     "public_read": _settings(request).public_read}}


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    # compare_digest on bytes: it refuses non-ASCII str, and a client may send any header or form text.
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def has_bearer(request: Request) -> bool:
    token = _settings(request).api_token
    given = _bearer(request)
    return token is None or (given is not None and token_matches(given, token))


def has_cookie(request: Request) -> bool:
    token = _settings(request).api_token
    given = request.cookies.get(COOKIE)
    return token is None or (given is not None and token_matches(given, cookie_value(token)))


def authorized(request: Request) -> bool:
    """No token configured, or the request carries it (Bearer header) or the sign-in cookie."""
    return has_bearer(request) or has_cookie(request)


def needs_token(settings: Settings, method: str, path: str) -> bool:
    """Whether a request for ``method path`` must carry the token (header or cookie) on this server."""
    if settings.api_token is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return False
    return not (settings.public_read and method in SAFE_METHODS)


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to after signing in: never another site (//host, scheme:, backslashes)."""
    if not target:
        return default
    parts = urlsplit(target)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in target:
        return default
    return path + (f"?{parts.query}" if parts.query else "")


_bearer_scheme = HTTPBearer(auto_error=False, description="Needed for every call when KD_API_TOKEN is set "
                            "(for writes only under --public-read)")


def require_token(request: Request,
                  _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]) -> None:
    """Dependency for the REST API's routes: the Bearer token, or the dashboard's sign-in cookie. The gate
    (app.access.gate) has refused such requests already; this documents the scheme in OpenAPI (so that
    /docs sends the token it is given) and checks again should a route ever be served without the gate."""
    if needs_token(_settings(request), request.method, request.url.path) and not authorized(request):
        raise HTTPException(401, "missing or wrong API token", headers={"WWW-Authenticate": "Bearer"})
