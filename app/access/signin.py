"""Sign-in and sign-out for the dashboard when KD_API_TOKEN is set (see app.access.auth).

Public (app.access.auth.PUBLIC_PATHS): the token gate refuses everything else to a browser that has not
signed in, and these two routes are how a browser gets (or drops) the right.
``GET /signin?token=…`` signs in too: it is the URL that ``kd serve`` prints with a generated token.
Failed attempts are limited per client address (app.access.throttle), together with wrong tokens
and cookies sent to any other route (app.access.gate).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.access import auth
from app.access.gate import client_address
from app.web.rendering import render

router = APIRouter(include_in_schema=False)


def _page(request: Request, next_path: str, error: str | None = None, status_code: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    return render(request, "signin.html", {"title": "Sign in", "nav": "", "next": next_path, "error": error},
                  status_code=status_code, headers=headers)


def _sign_in(request: Request, given: object, next_path: str) -> Response:
    """Check a token typed into the form or carried by the sign-in URL that ``kd serve`` prints."""
    token = request.app.state.settings.api_token
    if token is None:
        return RedirectResponse(next_path, status_code=303)  # nothing to sign in to
    limiter = request.app.state.token_limiter
    wait = limiter.retry_after(client_address(request))
    if wait is not None:  # refused even when right: otherwise guessing would just go on more slowly
        return _page(request, next_path, f"Too many failed attempts with a wrong token; try again in {wait} s.",
                     status_code=429, headers={"Retry-After": str(wait)})
    if not isinstance(given, str) or not auth.token_matches(given.strip(), token):
        limiter.failed(client_address(request), given if isinstance(given, str) else None)
        # A normal page with the error, like the launch form's errors: no cookie is set.
        return _page(request, next_path, "That is not this server's API token.")
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(auth.COOKIE, auth.cookie_value(token), max_age=auth.COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/signin", response_class=HTMLResponse, name="signin_page")
def signin_page(request: Request, next: str | None = None, token: str | None = None) -> Response:
    next_path = auth.safe_next(next)
    if token is not None:
        return _sign_in(request, token, next_path)
    if not auth.required(request):
        return RedirectResponse(next_path, status_code=303)  # nothing to sign in to
    return _page(request, next_path)


@router.post("/signin", response_class=HTMLResponse, name="signin_submit")
async def signin_submit(request: Request) -> Response:
    form = await request.form()
    next_value = form.get("next")
    return _sign_in(request, form.get("token"), auth.safe_next(next_value if isinstance(next_value, str) else None))


@router.post("/signout", name="signout")
def signout(request: Request) -> Response:
    response = RedirectResponse(request.app.url_path_for("home"), status_code=303)
    response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
