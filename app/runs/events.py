"""The run page's live updates: a server-sent event stream of new epochs, progress, and the summary
whenever the run's state changes. app.main includes this router with the pages, so it follows their sign-in rule."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from app.runs import service as services
from app.runs.broadcast import RunBroadcasts, Seen
from app.runs.views import summary_view
from app.store.db import new_session
from app.store.errors import NotFound
from app.store.models import FINISHED_STATUSES
from app.web.ids import valid_id
from app.web.rendering import templates

router = APIRouter(include_in_schema=False)
# One look at a watched run per interval, however many streams watch it (app.runs.broadcast).
EVENT_POLL_S = 0.5
# The largest epoch position a stream accepts, from ?after= or Last-Event-ID (SQLite integers are 64-bit).
MAX_POSITION = 2**62
# Uvicorn waits for open responses before it exits: a stream ends every so often (after half to all of
# STREAM_MAX_S), so that a bare `uvicorn --factory app.main:create_app` stops within it (`kd serve` closes
# streams after its own GRACEFUL_SHUTDOWN_S). Each reconnect is a whole request: with hundreds of pages open,
# 10 s cost the server more than their messages. EventSource reconnects after RETRY_MS from its Last-Event-ID.
STREAM_MAX_S = 30.0
RETRY_MS = 500


def _sse(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class LiveView:
    """What a stream sends of a run besides its epochs, as messages ready to send (formatted once for
    every stream); ``status`` None: the run is gone."""
    status: str | None
    progress: str = ""
    summary: str = ""
    # (status, cancelling, has a checkpoint): the summary card is drawn again, and sent, when it changes.
    state: tuple | None = None


def _poll(request: Request, run_id: int, since: int, previous: LiveView | None) -> Seen:
    """One look at the run for every stream of it (app.runs.broadcast): its epochs after ``since`` and its view."""
    with new_session(request.app.state.engine, request.app.state.settings) as session:
        try:
            run = services.get_run(session, run_id)
        except NotFound:
            return Seen((), LiveView(None), final=True)
        # Epochs after the run: a run seen finished has all its epochs stored already.
        epochs = services.get_epochs(session, run_id, since)
        summary = summary_view(session, run)
    state = (run.status, run.cancel_requested, summary["run"]["has_checkpoint"])
    # The summary's links need only the application: the first stream's request serves every stream.
    card = previous.summary if previous is not None and previous.state == state else \
        _sse("summary", templates.get_template("_run_summary.html").render(request=request, **summary))
    progress = _sse("progress", templates.get_template("_progress.html").render(run=summary["run"]))
    return Seen(tuple((e.epoch, _sse("epoch", json.dumps(services.epoch_to_dict(e)), e.epoch)) for e in epochs),
                LiveView(run.status, progress, card, state), final=run.status in FINISHED_STATUSES)


@router.get("/runs/{run_id}/events", name="run_events")
async def run_events(request: Request, run_id: int, after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
                     last_event_id: Annotated[int | None, Header(ge=0, le=MAX_POSITION)] = None) -> Response:
    """Server-sent events for an open run page: new epochs, progress, and the summary when the status changes."""
    if not valid_id(run_id):
        return Response(status_code=404)
    # EventSource resends the last event id on reconnect: continue after the last epoch it received.
    after = max(after, last_event_id or 0)
    broadcasts = RunBroadcasts.of(request.app)

    async def stream(after: int):
        sent_progress = sent_state = version = None
        # Streams opened together (a restart, a crowd of pages) end at different times, so that their
        # reconnects spread out instead of arriving all at once.
        deadline = time.monotonic() + STREAM_MAX_S * random.uniform(0.5, 1.0)
        yield f"retry: {RETRY_MS}\n\n"
        async with broadcasts.watch(run_id, after, partial(_poll, request, run_id), interval=EVENT_POLL_S) as feed:
            # No disconnect check of our own: Starlette listens for one beside the stream and cancels it.
            while True:
                snapshot = None
                with anyio.move_on_after(deadline - time.monotonic()):
                    snapshot = await feed.next(version, after)
                if snapshot is None or snapshot.broken:
                    return  # the stream's time is up, or the look failed: the browser reconnects
                version, view = snapshot.version, snapshot.view
                if view.status is None:
                    yield _sse("end", "gone")
                    return
                epochs = snapshot.epochs_after(after)
                chunks = [message for _, message in epochs]
                after = epochs[-1][0] if epochs else after
                if view.progress != sent_progress:
                    chunks.append(view.progress)
                    sent_progress = view.progress
                # The first summary goes out too: the run may have started between the page load and this stream.
                if view.state != sent_state:
                    chunks.append(view.summary)
                    sent_state = view.state
                if snapshot.final:
                    chunks.append(_sse("end", view.status))
                if chunks:
                    yield "".join(chunks)
                if snapshot.final:
                    return

    return StreamingResponse(stream(after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
