"""Sign-in and sign-out for the dashboard when KD_API_TOKEN is set (see app.auth).

Outside app.pages' router on purpose: that router refuses state-changing requests from browsers that
have not signed in, and these two routes are how a browser gets (or drops) the right to make them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import auth
from app.rendering import render

router = APIRouter(include_in_schema=False)


def _page(request: Request, next_path: str, error: str | None = None) -> HTMLResponse:
    return render(request, "signin.html", {"title": "Sign in", "nav": "", "next": next_path, "error": error})


@router.get("/signin", response_class=HTMLResponse, name="signin_page")
def signin_page(request: Request, next: str | None = None) -> Response:
    next_path = auth.safe_next(next)
    if not auth.required(request):
        return RedirectResponse(next_path, status_code=303)  # nothing to sign in to
    return _page(request, next_path)


@router.post("/signin", response_class=HTMLResponse, name="signin_submit")
async def signin_submit(request: Request) -> Response:
    form = await request.form()
    given, next_path = form.get("token"), auth.safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    token = request.app.state.settings.api_token
    if token is None:
        return RedirectResponse(next_path, status_code=303)
    if not isinstance(given, str) or not auth.token_matches(given.strip(), token):
        # A normal page with the error, like the launch form's errors: no cookie is set.
        return _page(request, next_path, "That is not this server's API token.")
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(auth.COOKIE, auth.cookie_value(token), max_age=auth.COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/signout", name="signout")
def signout(request: Request) -> Response:
    response = RedirectResponse(request.app.url_path_for("home"), status_code=303)
    response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
