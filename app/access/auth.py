"""The API token (KD_API_TOKEN) for the REST API and the dashboard's state-changing routes.

Programs send ``Authorization: Bearer <token>``. A browser signs in once at /signin and then carries
a cookie holding an HMAC of the token rather than the token itself: the cookie proves the holder
knew the token, but a copy of it does not reveal the token for use elsewhere, and changing the token
signs every browser out. The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (no
other site's form or script can make the browser send it), which is what keeps cross-site form
posts from launching or cancelling runs. Reads stay open, as they do in the REST API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.settings import Settings

COOKIE = "kd_session"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # "asks for it once": a month, not only until the browser closes
# Versioned so that a future change of the cookie's meaning signs everyone out instead of misreading it.
_COOKIE_CONTEXT = b"kd-dashboard-session-v1"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def required(request: Request) -> bool:
    return _settings(request).api_token is not None


def template_context(request: Request) -> dict:
    """For every page's top bar, which offers sign-in or sign-out when the server has a token."""
    return {"auth": {"required": required(request), "signed_in": has_cookie(request)}}


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


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to after signing in: never another site (//host, scheme:, backslashes)."""
    if not target:
        return default
    parts = urlsplit(target)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in target:
        return default
    return path + (f"?{parts.query}" if parts.query else "")


def _return_to(request: Request) -> str:
    # After signing in, go back to the page the user was on, not to the POST route that was refused.
    # Only the path of these headers is used, so a forged one cannot send the user to another site.
    current = request.headers.get("hx-current-url") or request.headers.get("referer")
    if current:
        parts = urlsplit(current)
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""), request.url.path)
    return request.url.path


def require_signed_in(request: Request) -> None:
    """Dependency for the dashboard's routes: state-changing requests need the cookie or the Bearer token.

    A plain form post is redirected to the sign-in page; an htmx request gets a 401 whose HX-Redirect
    makes htmx load the sign-in page (a redirect would be followed inside the XHR and swapped in).
    """
    if request.method in SAFE_METHODS or authorized(request):
        return
    location = str(request.app.url_path_for("signin_page")) + "?next=" + quote(_return_to(request), safe="/")
    if "hx-request" in request.headers:
        raise HTTPException(401, "sign in first", headers={"HX-Redirect": location})
    raise HTTPException(303, "sign in first", headers={"Location": location})


_bearer_scheme = HTTPBearer(auto_error=False, description="Needed for state-changing calls when KD_API_TOKEN is set")


def require_token(request: Request,
                  _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]) -> None:
    """Dependency for the REST API's writes: the Bearer token, or the dashboard's sign-in cookie.
    ``_credentials`` is only there to document the scheme in OpenAPI."""
    if not authorized(request):
        raise HTTPException(401, "missing or wrong API token", headers={"WWW-Authenticate": "Bearer"})
