"""A worker loop's failures: one log line when a problem starts or changes and one when it ends, and a wait
that doubles while it lasts, instead of a traceback every poll.

A full or read-only database (app.store.storage) is logged as its condition and path, with no traceback;
another error gets its traceback once, when it first appears.
"""

from __future__ import annotations

import logging

from app.store.storage import storage_problem

MAX_WAIT_S = 30.0


class Backoff:
    """``failed(exc)`` after a loop's try fails (returns how long to wait), ``succeeded()`` after one works."""

    def __init__(self, log: logging.Logger, who: str, db_url: str | None, first_wait_s: float,
                 max_wait_s: float | None = None):
        self.log, self.who, self.db_url = log, who, db_url
        self.first_wait_s = first_wait_s
        self.max_wait_s = max(MAX_WAIT_S if max_wait_s is None else max_wait_s, first_wait_s)
        self.problem: str | None = None
        self.wait_s = first_wait_s

    def failed(self, exc: BaseException) -> float:
        storage = storage_problem(exc, self.db_url)
        problem = str(storage) if storage is not None else f"{type(exc).__name__}: {exc}"
        if problem != self.problem:
            self.wait_s = self.first_wait_s
            if storage is not None:
                self.log.error("%s: %s; waiting, retrying every %g s at most", self.who, problem, self.max_wait_s)
            else:
                self.log.error("%s: worker loop error; retrying (said once while it lasts)", self.who, exc_info=exc)
            self.problem = problem
        else:
            self.wait_s = min(self.wait_s * 2, self.max_wait_s)
        return self.wait_s

    def succeeded(self) -> None:
        if self.problem is not None:
            self.log.warning("%s: working again after: %s", self.who, self.problem)
            self.problem, self.wait_s = None, self.first_wait_s
