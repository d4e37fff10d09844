"""Where the benchmark runs: a fresh PostgreSQL database, or SQLite in a temporary folder.

PostgreSQL is used when RETENTION_BENCH_PG_URL is set or the local server answers at
DEFAULT_PG_URL. The server URL names an existing database to connect to (for CREATE
DATABASE); the benchmark creates `rt_bench_<hex>` and drops it afterwards WITH (FORCE).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

PG_URL_ENV = "RETENTION_BENCH_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 3
CHOICES = ("auto", "postgresql", "sqlite")


class BenchError(Exception):
    """The benchmark cannot run, or a variant gave a wrong result."""


@dataclass(frozen=True)
class Database:
    """One throwaway product database for the benchmark."""

    kind: str  # "postgresql" or "sqlite"
    url: str  # with any password: never print it, print `label`
    label: str  # the URL with the password masked
    version: str


def safe(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def _admin_engine(url: str | sa.URL) -> sa.Engine:
    """One statement at a time, no pool: CREATE and DROP DATABASE need AUTOCOMMIT."""
    return sa.create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def _probe(url: str) -> str | None:
    """None when the server at `url` answers; otherwise why not (first line, no secrets)."""
    try:
        engine = _admin_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL or missing driver: "not usable"
        return type(exc).__name__
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable", reported
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    finally:
        engine.dispose()
    return None


@contextmanager
def postgres_database(server_url: str) -> Iterator[Database]:
    """A new, empty database on the server at `server_url`, dropped on exit."""
    name = f"rt_bench_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server_url)
    try:
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        url = sa.make_url(server_url).set(database=name)
        try:
            yield Database(
                kind="postgresql",
                url=url.render_as_string(hide_password=False),
                label=safe(url),
                version=f"PostgreSQL {version.split()[0]}",
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        admin.dispose()


@contextmanager
def sqlite_database() -> Iterator[Database]:
    """A SQLite file in a temporary folder, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="rt_bench_") as folder:
        url = f"sqlite:///{Path(folder) / 'flexkids.db'}"
        yield Database(
            kind="sqlite", url=url, label=url, version=f"SQLite {sqlite3.sqlite_version}"
        )


@contextmanager
def bench_database(choice: str = "auto") -> Iterator[Database]:
    """PostgreSQL when asked for or available (see the module docstring), else SQLite."""
    if choice not in CHOICES:
        raise BenchError(f"unknown database {choice!r}; use one of {', '.join(CHOICES)}")
    if choice != "sqlite":
        configured = os.environ.get(PG_URL_ENV)
        server = configured or DEFAULT_PG_URL
        why = _probe(server)
        if why is None:
            with postgres_database(server) as db:
                yield db
            return
        if configured or choice == "postgresql":
            raise BenchError(
                f"PostgreSQL at {safe(server)} does not answer ({why}); start the server, "
                f"set {PG_URL_ENV} to one that answers, or run with --db sqlite"
            )
        print(
            f"no PostgreSQL at {safe(server)} ({why}); using SQLite instead",
            file=sys.stderr,
        )
    with sqlite_database() as db:
        yield db
