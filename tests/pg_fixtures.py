"""A throwaway PostgreSQL server for the tests, started from Debian's ``postgresql`` package.

``pg_server`` (session scope) runs initdb into a temp directory and starts ``postgres`` on a free
port of 127.0.0.1 (its Unix socket in the same directory), with a random password; it is stopped
and deleted at the end of the session. ``pg_url`` gives each test a fresh database. Everything is
skipped, with the reason, when the binaries or the psycopg driver are absent or the server cannot
start. As root (CI), initdb and postgres refuse to run, so they run as the ``postgres`` user.
Needs PostgreSQL 13 or later (DROP DATABASE ... WITH (FORCE)).

    from tests.pg_fixtures import pg_server, pg_url  # noqa: F401
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live_server import _free_port

PG_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 30
# Durability is pointless for a throwaway cluster, and without fsync its commits cost almost nothing.
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"


def _pg_bin() -> Path | None:
    """The newest installed server's bin directory (KD_TEST_PG_BIN overrides)."""
    if os.environ.get("KD_TEST_PG_BIN"):
        chosen = Path(os.environ["KD_TEST_PG_BIN"])
        return chosen if (chosen / "initdb").is_file() else None
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").is_file()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str
    _names = itertools.count(1)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self) -> str:
        name = f"kd_test_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE ends the connections that engines of finished tests still hold in their pools.
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _runner() -> tuple[list[str], str | None]:
    """The command prefix that runs the server binaries, and the user that must own their files."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("PostgreSQL tests: running as root and there is no 'postgres' user to run the server as")
    if shutil.which("runuser") is None:
        pytest.skip("PostgreSQL tests: running as root and runuser is absent")
    return ["runuser", "-u", "postgres", "--"], "postgres"


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if result.returncode != 0:
        detail = log.read_text() if log is not None and log.is_file() else result.stderr or result.stdout
        pytest.skip(f"PostgreSQL tests: {what} failed: {detail[-1000:]}")


@pytest.fixture(scope="session")
def pg_server():
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL tests: no server binaries under {os.environ.get('KD_TEST_PG_BIN') or PG_ROOT} "
                    "(apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests: the psycopg driver is not installed (pip install 'psycopg[binary]')")
    prefix, owner = _runner()
    # Not pytest's tmp_path: its parent is private to the test user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="kd-pg-"))
    data, password = root / "data", secrets.token_hex(16)
    (root / "password").write_text(password)
    if owner:
        shutil.chown(root, owner, owner)
        shutil.chown(root / "password", owner, owner)
    user = "kd_test"  # initdb -U names the superuser, whichever system user runs the server
    port = _free_port()
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=scram-sha-256",
              f"--pwfile={root / 'password'}", "-E", "UTF8", "--no-sync", "--no-instructions"], "initdb")
        options = f"-h 127.0.0.1 -p {port} -k {root} {SERVER_OPTIONS}"
        _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options,
              "-w", "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start", root / "server.log")
        yield PgServer("127.0.0.1", port, user, password)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database for one test; dropped after it."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The test once on a SQLite file and once on a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kd.sqlite'}"
    return request.getfixturevalue("pg_url")
