"""Bounded request bodies.

FastAPI reads and parses a route's whole body before the route runs: a 100 MB JSON body was parsed,
holding up the server. This ASGI middleware answers 413 to a body larger than KD_MAX_BODY by its
Content-Length, without reading a byte of it. A body sent without a length (chunked) is counted as it
arrives and refused once it passes the limit. The token is checked before this, by app.access.gate, which
also counts a wrong one as a guess.
"""

from __future__ import annotations

import json

from fastapi import HTTPException


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; FastAPI and Starlette let an
    HTTPException from reading the body through, so the app answers 413 itself."""

    def __init__(self, limit: int, setting: str = "KD_MAX_BODY"):
        super().__init__(413, f"the request body is larger than {limit:,} bytes ({setting})",
                         headers={"Connection": "close"})


def _declared_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length itself
    return None


async def _answer(send, exc: HTTPException) -> None:
    body = json.dumps({"detail": exc.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items())]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: the body's size, checked before the app reads the body. ``uploads``: paths whose
    bodies carry a file (a teacher checkpoint) and their own limit, by exact path."""

    def __init__(self, app, max_bytes: int, uploads: dict[str, tuple[int, str]] | None = None):
        self.app, self.max_bytes, self.uploads = app, max_bytes, uploads or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = self.uploads.get(scope["path"], (self.max_bytes, "KD_MAX_BODY"))
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _answer(send, BodyTooLarge(limit, setting))
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            # A route that reads its body outside FastAPI's and Starlette's handling (a stream) lets it out.
            if started:
                raise
            await _answer(send, exc)
