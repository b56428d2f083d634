"""Disk-full and read-only conditions, recognised in database and file errors and put in words a person can
act on: the condition and the path. The API answers them 507 or 503 (app.main), the workers wait them out
with one log line per change (app.executors.backoff), and ``kd serve`` says them in one line (app.cli).

SQLite says "database or disk is full", "attempt to write a readonly database" or "unable to open database
file" without a path; PostgreSQL gives SQLSTATEs; the file system an errno. Each becomes a StorageProblem
that names the database file (or the server, without its password) or the file.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

NO_SPACE = "no space left on device"
READ_ONLY = "read-only"
CANNOT_OPEN = "the file cannot be opened or its folder is not writable"
IO_ERROR = "disk I/O error"

# 507 Insufficient Storage for a full disk (space can be freed); 503 for the others (the server cannot write).
STATUS = {NO_SPACE: 507}

_OS_ERRORS = {errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE, errno.EROFS: READ_ONLY}
# SQLite's result codes (sqlite3.Error.sqlite_errorname, Python 3.11+), then its messages (older Pythons).
_SQLITE_CODES = {"SQLITE_FULL": NO_SPACE, "SQLITE_READONLY": READ_ONLY, "SQLITE_CANTOPEN": CANNOT_OPEN,
                 "SQLITE_IOERR": IO_ERROR}
_SQLITE_MESSAGES = {"database or disk is full": NO_SPACE, "readonly database": READ_ONLY,
                    "unable to open database file": CANNOT_OPEN, "disk i/o error": IO_ERROR}
# PostgreSQL: disk_full, read_only_sql_transaction, io_error.
_SQLSTATES = {"53100": NO_SPACE, "25006": READ_ONLY, "58030": IO_ERROR}


@dataclass(frozen=True)
class StorageProblem:
    """A write that failed because of where it writes: ``condition`` (NO_SPACE, READ_ONLY, ...) at ``path``."""

    condition: str
    path: str
    subject: str  # "the database" or "a file"
    cause: str = ""  # the driver's own words, when they add something

    @property
    def status_code(self) -> int:
        return STATUS.get(self.condition, 503)

    def __str__(self) -> str:
        return f"cannot write {self.subject}: {self.condition}: {self.path}" + (f" ({self.cause})" if self.cause else "")

    def as_json(self) -> dict:
        return {"detail": str(self), "condition": self.condition, "path": self.path}


def database_path(db_url: str | None) -> str:
    """The SQLite file as an absolute path, or the server's URL without its password."""
    if not db_url:
        return "the database"
    try:
        url = make_url(db_url)
    except ArgumentError:
        return "the database"
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database).resolve()) if url.database and url.database != ":memory:" else ":memory:"
    return url.render_as_string(hide_password=True)


def _chain(exc: BaseException):
    """The exception, the driver's error inside a SQLAlchemy one, and what caused each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _database_condition(error: BaseException) -> str | None:
    code = getattr(error, "sqlite_errorname", None)
    if code:
        # Extended codes name their family first: SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE, ...
        return next((condition for prefix, condition in _SQLITE_CODES.items() if code.startswith(prefix)), None)
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return _SQLSTATES.get(sqlstate)
    if type(error).__module__.startswith("sqlite3"):
        text = str(error).lower()
        return next((condition for words, condition in _SQLITE_MESSAGES.items() if words in text), None)
    return None


def storage_problem(exc: BaseException, db_url: str | None = None) -> StorageProblem | None:
    """What ``exc`` says about the storage it failed to write, or None when it is about something else.
    ``db_url`` names the database a database error is about."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _OS_ERRORS:
            path = str(Path(error.filename).resolve()) if error.filename else "a file"
            return StorageProblem(_OS_ERRORS[error.errno], path, "a file")
        condition = _database_condition(error)
        if condition is not None:
            words = (str(error).strip().splitlines() or [""])[0][:200]
            return StorageProblem(condition, database_path(db_url), "the database",
                                  words if condition not in words else "")
    return None


def database_failure(exc: BaseException, db_url: str | None) -> str:
    """One line for a database that cannot be opened or upgraded at start-up: the storage problem when it is
    one, else the driver's first line, naming the database either way."""
    problem = storage_problem(exc, db_url)
    if problem is not None:
        return str(problem)
    first = next((error for error in _chain(exc) if error is not exc and not hasattr(error, "orig")), exc)
    words = (str(first).strip().splitlines() or [type(first).__name__])[0][:300]
    return f"cannot use the database {database_path(db_url)}: {words}"
