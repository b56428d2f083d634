"""Database engine, start-up schema upgrade, and the session dependency.

SQLite is the default (one file, WAL mode so readers never wait for the worker's writes);
the SQL stays portable so ``KD_DB_URL`` may point at PostgreSQL (driver: psycopg 3, tested by
tests/test_postgres.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi import Request
from sqlalchemy import Engine, event, insert, inspect, literal, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

from app.settings import Settings
from app.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.store.autoincrement import never_reuse_ids
from app.store.migrations import (fill_group_keys, migrate_run_configs, recompute_baseline_keys, record_teacher_checksums,
                                  rename_architectures)
from app.store.queue import ADMISSION_LOCK

BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL + NORMAL is durable across process crashes; only an OS crash may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(db_url: str) -> Engine:
    url = make_url(db_url)
    if url.drivername == "postgresql":
        # A plain postgresql:// URL means psycopg2 to SQLAlchemy; psycopg 3 is the driver tested here.
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() != "sqlite":
        # Named, not left to the server's default: claims and admissions (app.store.queue) rely on READ
        # COMMITTED, where a statement that waited for a row lock then sees the winner's commit.
        return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED")
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        db_url,
        # Worker threads and the web threadpool share the engine; each session stays on one thread.
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade_schema(engine: Engine) -> list[str]:
    """Create missing tables and add missing columns, keeping every existing row.

    Only additive changes happen automatically: a new column gets the model's scalar default
    for existing rows, or NULL. Returns the "table.column" names that were added.
    """
    SQLModel.metadata.create_all(engine)
    inspector = inspect(engine)
    preparer = engine.dialect.identifier_preparer
    added: list[str] = []
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                column_type = column.type.compile(dialect=engine.dialect)
                clause = f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.format_column(column)} {column_type}"
                default = column.default.arg if column.default is not None and column.default.is_scalar else None
                if default is not None:
                    literal_default = literal(default, column.type).compile(
                        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
                    )
                    clause += f" DEFAULT {literal_default}"
                    if not column.nullable:
                        clause += " NOT NULL"
                connection.execute(text(clause))
                added.append(f"{table.name}.{column.name}")
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)
    return added


def ensure_lock_rows(engine: Engine) -> None:
    """Insert the lock rows that transactions UPDATE to serialise (app.store.queue.admission)."""
    with engine.connect() as connection:
        if connection.execute(select(models.Lock.name).where(models.Lock.name == ADMISSION_LOCK)).first():
            return
    try:
        with engine.begin() as connection:
            connection.execute(insert(models.Lock).values(name=ADMISSION_LOCK))
    except IntegrityError:
        pass  # another process starting at the same moment inserted it


def check_writable(engine: Engine) -> None:
    """Write once at start-up (a no-op update of the admission lock row), so that a database the server can
    read but not write (a read-only file, a full disk) stops it at once rather than at the first launch."""
    with engine.begin() as connection:
        connection.execute(update(models.Lock).where(models.Lock.name == ADMISSION_LOCK)
                           .values(taken_at=models.Lock.taken_at))


def init_db(settings: Settings) -> Engine:
    engine = make_engine(settings.db_url)
    upgrade_schema(engine)
    never_reuse_ids(engine)
    ensure_lock_rows(engine)
    check_writable(engine)
    migrate_run_configs(engine)
    fill_group_keys(engine)
    recompute_baseline_keys(engine)
    rename_architectures(engine)
    record_teacher_checksums(engine)
    return engine


def new_session(engine: Engine, settings: Settings | None = None) -> Session:
    # expire_on_commit=False: routes and services return rows after committing them.
    return Session(engine, expire_on_commit=False, info={"settings": settings} if settings else {})


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one short-lived session per request."""
    with new_session(request.app.state.engine, request.app.state.settings) as session:
        yield session
