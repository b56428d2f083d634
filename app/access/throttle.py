"""A limit on failed sign-in attempts per client, so that a token cannot be guessed by trying many."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque


class FailureLimiter:
    """At most ``limit`` failures per client within ``window_s`` seconds; past that, every attempt
    from that client is refused until its oldest failure leaves the window."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000, clock=time.monotonic):
        self.limit, self.window_s, self.max_clients, self.clock = limit, window_s, max_clients, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None if it may try now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if not failures:
                self._failures.pop(client, None)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            failures.append(now)
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:  # bounded memory under a flood of addresses
                self._failures.popitem(last=False)
