"""One computation per key at a time. A caller asking for a key that is being computed waits for that
computation's result instead of repeating it (seconds of work: describing the networks, scanning an
archive), and a caller of another key never waits on it. Nothing is kept after the computation ends:
callers cache what they want kept, and a failure is computed afresh by the next caller."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the table only, never held while computing
        self._flights: dict[Hashable, Future] = {}

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or the result of the computation of ``key`` already under way (its error too)."""
        with self._lock:
            future = self._flights.get(key)
            owner = future is None
            if owner:
                future = self._flights[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:  # the waiters get it too; the owner's caller below as well
                future.set_exception(exc)
            finally:
                with self._lock:
                    del self._flights[key]
        return future.result()
