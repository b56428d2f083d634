"""One database poll per watched run, shared by all of that run's event streams (app.runs.events).

A run's feed starts with its first stream and stops when its last stream leaves, or when a look sees the
run over. Each look is published as a snapshot: the run's epochs after the lowest position any stream
asked for, and a view of the rest (progress, summary). The feed never waits on a stream: each stream
takes the newest snapshot when it is ready for one and keeps its own position, so a slow browser skips
to the newest progress, still gets every epoch after its position, and holds back no one.

Feeds live in one server process and its event loop (asyncio); a second process polls for its own streams."""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """What one look at a run found: its epochs after the position asked for, each (epoch number, its
    message), ascending; the ``view`` the streams send besides epochs; ``final``: nothing more will change."""
    epochs: tuple[tuple[int, str], ...]
    view: Any
    final: bool


# poll(since, the previous look's view or None) -> Seen; blocking (a database read), run in a thread.
Poll = Callable[[int, Any], Seen]


@dataclass(frozen=True)
class Snapshot:
    """A published look. ``epochs`` holds every epoch after ``floor``; ``broken``: the look failed (logged
    once by the feed), so streams end and their browsers reconnect to a fresh feed."""
    version: int
    floor: int
    epochs: tuple[tuple[int, str], ...] = ()
    view: Any = None
    final: bool = False
    broken: bool = False
    _numbers: tuple[int, ...] = field(default=(), repr=False)

    def epochs_after(self, after: int) -> tuple[tuple[int, str], ...]:
        return self.epochs[bisect.bisect_right(self._numbers, after):]


class RunFeed:
    """The one poll of a run for every stream of it in this event loop (made by RunBroadcasts.watch)."""

    def __init__(self, poll: Poll, interval: float, on_final: Callable[[RunFeed], None]):
        self._poll, self._interval, self._on_final = poll, interval, on_final
        self.latest: Snapshot | None = None
        self.subscribers = 0
        self._floor: int | None = None
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def want(self, after: int) -> None:
        """A stream needs the epochs after ``after``: look again at once if the feed started further on."""
        if self._floor is None or after < self._floor:
            self._floor = after
            self._wake.set()

    async def next(self, seen_version: int | None, after: int) -> Snapshot:
        """The newest snapshot other than ``seen_version`` that holds every epoch after ``after``."""
        while True:
            changed, snapshot = self._changed, self.latest
            if snapshot is not None and snapshot.version != seen_version and (snapshot.floor <= after or snapshot.broken):
                return snapshot
            await changed.wait()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="run-feed")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _publish(self, snapshot: Snapshot) -> None:
        # A fresh event per snapshot: a stream that checked the previous one waits on the event it saw.
        self.latest, changed, self._changed = snapshot, self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        version = 0
        while True:
            self._wake.clear()
            floor, latest = self._floor, self.latest
            refill = latest is None or floor < latest.floor
            kept = () if refill else latest.epochs
            since = floor if refill or not kept else kept[-1][0]
            version += 1
            try:
                seen = await anyio.to_thread.run_sync(self._poll, since, latest and latest.view)
            except Exception:
                log.exception("event stream poll failed; its streams end and reconnect")
                self._on_final(self)
                self._publish(Snapshot(version, floor, broken=True))
                return
            epochs = kept + seen.epochs
            snapshot = Snapshot(version, floor, epochs, seen.view, seen.final, _numbers=tuple(n for n, _ in epochs))
            # Over, and every stream's position covered: no stream can join this feed any more.
            done = seen.final and self._floor == floor
            if done:
                self._on_final(self)
            self._publish(snapshot)
            if done:
                return
            with anyio.move_on_after(self._interval):
                await self._wake.wait()


class RunBroadcasts:
    """The feeds of the runs watched in this process, one per run and event loop."""

    def __init__(self) -> None:
        self._feeds: dict[tuple[asyncio.AbstractEventLoop, int], RunFeed] = {}

    @classmethod
    def of(cls, app) -> RunBroadcasts:
        """The application's broadcasts, made with its first stream."""
        broadcasts = getattr(app.state, "run_broadcasts", None)
        if broadcasts is None:
            broadcasts = app.state.run_broadcasts = cls()
        return broadcasts

    def watched(self) -> list[int]:
        return sorted(run_id for _, run_id in self._feeds)

    @asynccontextmanager
    async def watch(self, run_id: int, after: int, poll: Poll, *, interval: float) -> AsyncIterator[RunFeed]:
        """The run's feed, from its position ``after``, for as long as the block runs. The first stream's
        ``poll`` serves every stream that joins it (the same run, the same database)."""
        key = (asyncio.get_running_loop(), run_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = RunFeed(poll, interval, on_final=lambda ended: self._drop(key, ended))
            feed.start()
        feed.subscribers += 1
        feed.want(after)
        try:
            yield feed
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0:
                self._drop(key, feed)
                feed.stop()

    def _drop(self, key, feed: RunFeed) -> None:
        if self._feeds.get(key) is feed:
            del self._feeds[key]
