"""A study's time left: its unfinished runs played forward on the worker slots it has been trained on.

A run's expected duration is the mean wall time (claimed to finished) of the study's completed runs of the
same configuration (group key), else of the same method and network; without one, the total that running
runs of that configuration (else method and network) are on pace for. A running run counts what its own
pace says is left (app.executors.records); before its first step timing, its expected duration less the
time it has run. The queued runs then start as the workers take them (the oldest ready run first; a
student waits for its teacher), on as many slots as the study's runs have used at once.

So the estimate changes with time, not with the moments runs start and end: a run that starts takes the
slot the simulation had given it, and a slot idle for a moment between two runs is not a slot lost. It
does not know of other work in the queue ahead of the study's runs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime

from app.store.models import ACTIVE_STATUSES, Run


def _wall_seconds(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def _own_left(run: Run, now: datetime) -> float | None:
    """What a running run's pace says is left (None before its first step timing)."""
    if run.eta_seconds is None or run.progress_at is None:
        return None
    return max(0.0, run.eta_seconds - (now - run.progress_at).total_seconds())


def _slots(runs: Iterable[Run], now: datetime) -> int:
    """The most of these runs that ever trained at once (an end before a start at the same moment)."""
    events = []
    for run in runs:
        end = now if run.status == "running" else run.finished_at
        if run.started_at is None or end is None or run.status == "queued":
            continue  # never claimed, or put back in the queue: no attempt of it holds a slot
        events += [(run.started_at, 1), (max(end, run.started_at), -1)]
    most = current = 0
    for _, change in sorted(events):
        current += change
        most = max(most, current)
    return max(most, sum(run.status == "running" for run in runs))


class Durations:
    """Expected wall seconds of a run, from the study's runs of its configuration, else method and network."""

    def __init__(self, runs: list[Run], now: datetime):
        self._done: dict[tuple, list[float]] = {}
        self._on_pace: dict[tuple, list[float]] = {}
        for run in runs:
            if run.status == "completed":
                seconds = _wall_seconds(run)
                found = self._done
            elif run.status == "running" and run.started_at is not None and (left := _own_left(run, now)) is not None:
                seconds = (now - run.started_at).total_seconds() + left
                found = self._on_pace
            else:
                continue
            if seconds is not None:
                for key in self._keys(run):
                    found.setdefault(key, []).append(seconds)

    @staticmethod
    def _keys(run: Run) -> tuple[tuple, tuple]:
        return ("group", run.group_key or f"run {run.id}"), ("network", run.kind, run.architecture)

    def of(self, run: Run) -> float | None:
        for key in self._keys(run):
            for found in (self._done, self._on_pace):
                if key in found:
                    return sum(found[key]) / len(found[key])
        return None


def seconds_left(runs: list[Run], now: datetime) -> float | None:
    """Seconds until the study's last active run ends; None when nothing is left to wait for, when none of
    its runs has started yet (the workers' number is unknown), or when a run's duration cannot be told."""
    active = [run for run in runs if run.status in ACTIVE_STATUSES]
    slots = _slots(runs, now)
    if not active or slots == 0:
        return None
    durations = Durations(runs, now)
    ends: dict[int, float] = {}
    free: list[float] = []
    for run in active:
        if run.status != "running":
            continue
        left = _own_left(run, now)
        if left is None:
            expected = durations.of(run)
            if expected is None:
                return None
            left = max(0.0, expected - (now - run.started_at).total_seconds()) if run.started_at else expected
        ends[run.id] = left
        free.append(left)
    free += [0.0] * max(0, slots - len(free))
    heapq.heapify(free)
    waiting = sorted((run for run in active if run.status == "queued"), key=lambda run: run.id)
    for run in waiting:
        if durations.of(run) is None:
            return None
    while waiting:
        at = heapq.heappop(free)
        # The oldest run whose teacher (when one of the active runs here) has ended by then.
        ready = next((run for run in waiting if ends.get(run.teacher_run_id, 0.0) <= at), None)
        if ready is None:
            heapq.heappush(free, min(ends[run.teacher_run_id] for run in waiting))
            continue
        waiting.remove(ready)
        ends[ready.id] = at + durations.of(ready)
        heapq.heappush(free, ends[ready.id])
    return max(ends.values(), default=0.0)
