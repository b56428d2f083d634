"""Never give a deleted row's id to a new one: SQLite tables created before AUTOINCREMENT are rebuilt with it.

Without AUTOINCREMENT SQLite numbers a new row after the largest rowid in the table, so deleting the newest
run hands its id to the next one and old links and exported CSVs point at a different run. The keyword
cannot be added to a table in place; SQLite's documented way (https://www.sqlite.org/lang_altertable.html,
"other kinds of table schema changes") is used instead: with foreign keys off, create the table anew under
another name, copy every row with its id, drop the old table, rename the new one, create its indexes again.
One transaction covers all the tables; a second start finds nothing to do. PostgreSQL needs none of this:
its BIGSERIAL sequences never hand out a number twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, Table
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

log = logging.getLogger(__name__)
PREFIX = "_rebuilt_"
# Columns holding run ids without a foreign key: a student names its deleted teacher. The new sequence
# starts above them too, so that no new run takes a deleted teacher's id.
RUN_ID_REFERENCES = (("runs", "teacher_run_id"), ("studies", "teacher_run_id"))


def _wanted(table: Table) -> bool:
    return bool(table.dialect_options["sqlite"]["autoincrement"])


def _stored_sql(cursor) -> dict[str, str]:
    return dict(cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())


def _columns(cursor, name: str) -> list[str]:
    return [row[1] for row in cursor.execute(f'PRAGMA table_info("{name}")').fetchall()]


def _rebuild(cursor, table: Table, dialect) -> bool:
    """Rebuild one table as its model declares it, keeping its rows and ids. False if it holds columns the
    model does not know (data this version would drop): it is then left as it is."""
    stored = _columns(cursor, table.name)
    unknown = sorted(set(stored) - set(table.columns.keys()))
    if unknown:
        log.warning("table %s keeps reusing deleted ids: it has columns this version does not know (%s)",
                    table.name, ", ".join(unknown))
        return False
    preparer = dialect.identifier_preparer
    name, temporary = preparer.format_table(table), preparer.quote(PREFIX + table.name)
    create = str(CreateTable(table).compile(dialect=dialect)).strip()
    head = f"CREATE TABLE {name} ("
    if not create.startswith(head):
        raise RuntimeError(f"unexpected DDL for table {table.name}: {create[:80]}")
    cursor.execute(f"CREATE TABLE {temporary} (" + create[len(head):])
    columns = ", ".join(preparer.quote(column) for column in stored)
    cursor.execute(f"INSERT INTO {temporary} ({columns}) SELECT {columns} FROM {name}")
    cursor.execute(f"DROP TABLE {name}")  # its indexes go with it
    cursor.execute(f"ALTER TABLE {temporary} RENAME TO {name}")
    for index in table.indexes:
        cursor.execute(str(CreateIndex(index).compile(dialect=dialect)))
    return True


def _start_above_deleted_teachers(cursor, present: set[str]) -> None:
    highest = [cursor.execute(f"SELECT MAX({column}) FROM {table}").fetchone()[0]
               for table, column in RUN_ID_REFERENCES if table in present]
    highest = max((value for value in highest if value is not None), default=None)
    if highest is None:
        return
    updated = cursor.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'runs'", (highest,))
    if updated.rowcount == 0:
        cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)", (highest,))


def never_reuse_ids(engine: Engine) -> list[str]:
    """Rebuild the SQLite tables whose model asks for AUTOINCREMENT and that were created without it.
    Returns the names of the tables rebuilt (none on PostgreSQL, and on every later start)."""
    if engine.dialect.name != "sqlite":
        return []
    tables = [table for table in SQLModel.metadata.sorted_tables if _wanted(table)]
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        previous = connection.isolation_level
        connection.isolation_level = None  # BEGIN and COMMIT are ours: SQLite ignores the pragma inside one
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys = OFF")
        rebuilt: list[str] = []
        try:
            # IMMEDIATE: a second process starting now waits here, then finds the work done.
            cursor.execute("BEGIN IMMEDIATE")
            stored = _stored_sql(cursor)
            for table in tables:
                sql = stored.get(table.name)
                if sql is not None and "AUTOINCREMENT" not in sql.upper() and _rebuild(cursor, table, engine.dialect):
                    rebuilt.append(table.name)
            if "runs" in rebuilt:
                _start_above_deleted_teachers(cursor, set(stored))
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()
            connection.isolation_level = previous
    finally:
        raw.close()
    if rebuilt:
        log.info("tables %s rebuilt so that deleted ids are never given again", ", ".join(rebuilt))
    return rebuilt
