"""Many watchers of one run: its event streams share one database poll (app.runs.broadcast), and each
stream still gets every message from its own position, in order."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from page_fixtures import (  # noqa: F401  (client and db are fixtures)
    STUDENT_KIND,
    add_epoch,
    add_run,
    client,
    db,
    read_events,
    read_until,
    session_of,
)

import app.runs.events as run_events
from app.runs import service as services
from app.runs.broadcast import RunBroadcasts, Seen
from app.store.models import Run


@pytest.fixture
def polls(monkeypatch) -> list[float]:
    """When each poll of a run's epochs happened (every stream poll reads them)."""
    times: list[float] = []
    get_epochs = services.get_epochs

    def counted(*args, **kwargs):
        times.append(time.monotonic())
        return get_epochs(*args, **kwargs)

    monkeypatch.setattr(services, "get_epochs", counted)
    return times


def watch_together(client, urls: list[str], ended: list[float] | None = None):
    """Open every stream at once, as that many browser tabs would, and read each to its end (its time in
    ``ended``): the threads, and a list that gets each stream's events."""
    results: list = [None] * len(urls)

    def watch(i: int) -> None:
        with client.stream("GET", urls[i]) as response:
            results[i] = read_events(response.iter_lines())
        if ended is not None:
            ended.append(time.monotonic())

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    return threads, results


def run_alone(coroutine):
    """``asyncio.run`` in a thread of its own: a session's Playwright (the browser tests) keeps an event loop
    running in the main thread, where asyncio.run refuses to start another."""
    outcome = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # handed back to the test
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def epochs_of(events) -> list[tuple[int, str | None]]:
    return [(json.loads(data)["epoch"], event_id) for event, data, event_id in events if event == "epoch"]


def test_twelve_streams_of_a_running_run_share_one_poll_and_each_gets_every_message(client, db, polls, monkeypatch):
    monkeypatch.setattr(run_events, "STREAM_MAX_S", 3.0)  # each stream ends after 1.5 to 3 s
    run = add_run(db, STUDENT_KIND, status="running", epochs=3)  # epoch 1 stored, training epoch 2
    ended: list[float] = []
    threads, results = watch_together(client, [f"/runs/{run.id}/events?after=0"] * 12, ended)
    time.sleep(0.6)
    with session_of(client) as worker_db:  # the worker stores epoch 2 and moves on
        stored = worker_db.get(Run, run.id)
        add_epoch(worker_db, stored, 2, accuracy=0.6)
        stored.progress_epoch, stored.progress_step = 3, 1
        worker_db.add(stored)
        worker_db.commit()
    for thread in threads:
        thread.join(10)
    # One poll per interval for all twelve (the old per-stream polling made 48 here).
    assert 2 <= len(polls) <= 3.0 / run_events.EVENT_POLL_S + 2, len(polls)
    first = results[0]
    for events in results:
        assert epochs_of(events) == [(1, "1"), (2, "2")]
        assert [data for event, data, _ in events if event == "epoch"] == \
            [data for event, data, _ in first if event == "epoch"]
        kinds = [event for event, _, _ in events]
        assert kinds.count("summary") == 1 and kinds[0] == "epoch" and "end" not in kinds
        progress = [data for event, data, _ in events if event == "progress"]
        assert "epoch 3/3" in progress[-1] and "step 1/10" in progress[-1]
    assert max(ended) - min(ended) > 0.2  # streams opened together do not all reconnect together
    # The last stream gone, the poll stops.
    time.sleep(3 * run_events.EVENT_POLL_S)
    count = len(polls)
    time.sleep(3 * run_events.EVENT_POLL_S)
    assert len(polls) == count
    assert RunBroadcasts.of(client.app).watched() == []


def test_a_stream_that_joins_further_back_gets_the_epochs_the_others_already_had(client, db, monkeypatch):
    monkeypatch.setattr(run_events, "STREAM_MAX_S", 2.0)
    run = add_run(db, STUDENT_KIND, status="running", epochs=5)
    with session_of(client) as worker_db:
        add_epoch(worker_db, worker_db.get(Run, run.id), 2)
    threads, ahead = watch_together(client, [f"/runs/{run.id}/events?after=2"])
    time.sleep(0.6)  # its poll is running: the next stream joins it
    assert RunBroadcasts.of(client.app).watched() == [run.id]
    more, behind = watch_together(client, [f"/runs/{run.id}/events?after=0", f"/runs/{run.id}/events?after=1"])
    for thread in threads + more:
        thread.join(10)
    assert epochs_of(ahead[0]) == []
    assert epochs_of(behind[0]) == [(1, "1"), (2, "2")] and epochs_of(behind[1]) == [(2, "2")]
    assert all([event for event, _, _ in events].count("summary") == 1 for events in ahead + behind)


def test_closing_the_last_page_early_stops_the_poll(client, db, polls):
    run = add_run(db, STUDENT_KIND, status="running", epochs=3)
    with client.stream("GET", f"/runs/{run.id}/events") as response:
        read_until(response.iter_lines(), "summary")
        assert RunBroadcasts.of(client.app).watched() == [run.id]
    time.sleep(2 * run_events.EVENT_POLL_S)  # long before the stream's own end (STREAM_MAX_S)
    count = len(polls)
    time.sleep(3 * run_events.EVENT_POLL_S)
    assert len(polls) == count and RunBroadcasts.of(client.app).watched() == []


def test_a_finished_run_ends_every_stream_and_its_retry_is_watched_afresh(client, db):
    run = add_run(db, STUDENT_KIND, status="failed", epochs=3, error="boom")
    threads, first = watch_together(client, [f"/runs/{run.id}/events"] * 3)
    for thread in threads:
        thread.join(10)
    assert all(events[-1][:2] == ("end", "failed") for events in first)
    with session_of(client) as session:
        stored = session.get(Run, run.id)
        stored.status = "queued"
        session.add(stored)
        session.commit()
    with client.stream("GET", f"/runs/{run.id}/events") as response:
        assert 'data-status="queued"' in read_until(response.iter_lines(), "summary")  # not the failed run's last look


def test_a_subscriber_that_does_not_read_holds_back_no_one():
    """The feed publishes its latest look and never waits on a stream: a slow browser skips to the newest
    progress and still gets every epoch after its own position."""
    looks = iter(range(1, 1000))

    def poll(since: int, previous) -> Seen:
        n = next(looks)
        return Seen(epochs=((n, f"epoch {n}"),), view=f"progress {n}", final=False)

    async def scenario():
        feeds = RunBroadcasts()
        async with feeds.watch(7, 0, poll, interval=0.01) as slow, feeds.watch(7, 0, poll, interval=0.01) as fast:
            assert slow is fast
            version = None
            for _ in range(5):
                snapshot = await asyncio.wait_for(fast.next(version, 0), 1)
                version = snapshot.version
            late = await asyncio.wait_for(slow.next(None, 2), 1)
            assert late.view == f"progress {late.epochs[-1][0]}" and late.version >= version
            assert [n for n, _ in late.epochs_after(2)] == list(range(3, late.epochs[-1][0] + 1))
        assert feeds.watched() == []

    run_alone(scenario())


def test_a_poll_that_fails_ends_the_streams_once_and_is_logged(caplog):
    calls = []

    def poll(since: int, previous) -> Seen:
        calls.append(since)
        raise OSError("disk I/O error")

    async def scenario():
        feeds = RunBroadcasts()
        async with feeds.watch(7, 0, poll, interval=0.01) as one, feeds.watch(7, 0, poll, interval=0.01) as two:
            assert (await asyncio.wait_for(one.next(None, 0), 1)).broken
            assert (await asyncio.wait_for(two.next(None, 0), 1)).broken
            assert feeds.watched() == []  # a stream that reconnects starts a new feed
        return len(calls)

    assert run_alone(scenario()) == 1
    assert ["disk I/O error" in r.getMessage() + str(r.exc_info) for r in caplog.records].count(True) == 1
