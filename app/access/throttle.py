"""A limit on failed attempts per client, so that a token cannot be guessed by trying many.

A guess is a new wrong value: the same stale cookie sent by every poll of every open tab after the token
changed (a server that generates its token at each start) counts once, not once per request, so the
person who then signs in with the new token is not locked out. Only a hash of each value is kept.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque


class FailureLimiter:
    """At most ``limit`` failures per client within ``window_s`` seconds; past that, every attempt
    from that client is refused until its oldest failure leaves the window."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000, clock=time.monotonic):
        self.limit, self.window_s, self.max_clients, self.clock = limit, window_s, max_clients, clock
        self._failures: OrderedDict[str, deque[tuple[float, bytes | None]]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[tuple[float, bytes | None]]:
        failures = self._failures.get(client, deque())
        while failures and failures[0][0] <= now - self.window_s:
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
            return max(1, math.ceil(failures[0][0] + self.window_s - now))

    def failed(self, client: str, attempt: str | None = None) -> None:
        """Count a failure of ``client``; one with the ``attempt`` (the wrong value) it already failed
        with inside the window is no new guess and counts nothing."""
        digest = None if attempt is None else hashlib.sha256(attempt.encode("utf-8", "surrogateescape")).digest()
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if digest is not None and any(seen == digest for _, seen in failures):
                return
            failures.append((now, digest))
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:  # bounded memory under a flood of addresses
                self._failures.popitem(last=False)
