"""The run page's live updates: a server-sent event stream of new epochs, progress, and the summary
whenever the run's state changes. app.main includes this router with the pages, so it follows their sign-in rule."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from app.runs import service as services
from app.runs.views import summary_view
from app.store.db import new_session
from app.store.errors import NotFound
from app.store.models import FINISHED_STATUSES
from app.web.ids import valid_id
from app.web.rendering import templates

router = APIRouter(include_in_schema=False)
EVENT_POLL_S = 0.5
# The largest epoch position a stream accepts, from ?after= or Last-Event-ID (SQLite integers are 64-bit).
MAX_POSITION = 2**62
# Uvicorn waits for open responses before it exits; a stream that ends every so often keeps a
# shutdown short. EventSource reconnects after RETRY_MS and resumes from its Last-Event-ID.
STREAM_MAX_S = 10.0
RETRY_MS = 500


def _sse(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


@router.get("/runs/{run_id}/events", name="run_events")
async def run_events(request: Request, run_id: int, after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
                     last_event_id: Annotated[int | None, Header(ge=0, le=MAX_POSITION)] = None) -> Response:
    """Server-sent events for an open run page: new epochs, progress, and the summary when the status changes."""
    if not valid_id(run_id):
        return Response(status_code=404)
    # EventSource resends the last event id on reconnect: continue after the last epoch it received.
    after = max(after, last_event_id or 0)
    app = request.app

    def poll(after: int):
        with new_session(app.state.engine, app.state.settings) as session:
            try:
                run = services.get_run(session, run_id)
            except NotFound:
                return None
            # Epochs after the run: a run seen finished has all its epochs stored already.
            epochs = services.get_epochs(session, run_id, after)
            summary = summary_view(session, run)
            return run.status, run.cancel_requested, summary, [services.epoch_to_dict(e) for e in epochs]

    async def stream(after: int):
        sent_progress = sent_summary = None
        deadline = time.monotonic() + STREAM_MAX_S
        yield f"retry: {RETRY_MS}\n\n"
        while not await request.is_disconnected() and time.monotonic() < deadline:
            polled = await anyio.to_thread.run_sync(poll, after)
            if polled is None:
                yield _sse("end", "gone")
                return
            status, cancelling, summary, epochs = polled
            chunks = []
            for epoch in epochs:
                chunks.append(_sse("epoch", json.dumps(epoch), epoch["epoch"]))
                after = epoch["epoch"]
            progress = templates.get_template("_progress.html").render(run=summary["run"])
            if progress != sent_progress:
                chunks.append(_sse("progress", progress))
                sent_progress = progress
            # The first summary goes out too: the run may have started between the page load and this stream.
            state = (status, cancelling, summary["run"]["has_checkpoint"])
            if state != sent_summary:
                html = templates.get_template("_run_summary.html").render(request=request, **summary)
                chunks.append(_sse("summary", html))
                sent_summary = state
            if status in FINISHED_STATUSES:
                chunks.append(_sse("end", status))
            if chunks:
                yield "".join(chunks)
            if status in FINISHED_STATUSES:
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(stream(after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
