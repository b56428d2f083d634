"""Security headers on every answer: no other site may frame the dashboard, and its pages run only its own scripts.

Framing is refused because the launch form pre-fills from its query string: a foreign page that framed it
nearly transparent launched a run with one click (clickjacking), and the framed POST is same-origin, so the
cross-site guard (app.access.cross_site) cannot tell. ``frame-ancestors 'none'`` refuses it, and
``X-Frame-Options: DENY`` does the same in browsers that predate it.

The policy allows no inline script and no ``eval``: every script is a file under /static (no handler
attributes, no ``hx-on``; htmx's own ``eval`` is turned off in templates/base.html, and chart specs travel
as ``<script type="application/json">``, which is data, not script). Styles are the one concession:

- ``style-src-attr 'unsafe-inline'``: the templates size progress bars and colour legend swatches with
  ``style`` attributes, and Swagger UI's React sets them too. A style attribute cannot run script; it
  could only restyle markup that an attacker had already injected, which autoescaping prevents.
- ``style-src 'self'`` plus the hash of the empty string: Plotly (and ReDoc's styled-components) append
  an *empty* ``<style>`` element at run time and fill it through the CSSOM (``insertRule``), which the
  policy does not govern. The hash admits exactly an empty element; a ``<style>`` with content stays
  refused. (htmx's indicator ``<style>`` has content, so templates/base.html turns it off.)

Images may be ``data:`` and ``blob:`` URLs: Plotly's modebar icons are data URLs, and its "download plot as
PNG" draws the chart through a blob URL. Nothing else may come from another host.

/redoc (app.web.api_docs) needs two more, neither of which lets anything in from elsewhere: the hash of
the one stylesheet ReDoc's bundle writes into a ``<style>`` (perfect-scrollbar's, fixed text), and workers
from ``blob:`` URLs, from which ReDoc runs its search (only a script already running here can make one).
ReDoc's sidebar also shows Redocly's logo from their CDN; ``img-src`` refuses it, and ReDoc then leaves
the logo out. A new fastapi-offline whose ReDoc writes other styles fails tests/browser/test_api_docs.py.
"""

from __future__ import annotations

EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # sha256 of b""
REDOC_SCROLLBAR_STYLE_HASH = "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    f"style-src 'self' {EMPTY_STYLE_HASH} {REDOC_SCROLLBAR_STYLE_HASH}",
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
)
_NAMES = {name for name, _ in HEADERS}


class SecurityHeaders:
    """ASGI middleware: HEADERS on every HTTP response, pages, API, static files and errors alike."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _NAMES]
                message = {**message, "headers": [*kept, *HEADERS]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
