"""Where the benchmark runs: fresh PostgreSQL databases, dropped afterwards.

The server is RETENTION_BENCH_PG_URL, else DEFAULT_PG_URL. Its URL names an existing
database to connect to (for CREATE DATABASE); the benchmark creates `rt_bench_<hex>`
databases (the product database, and a state database per worker tick) and drops each
afterwards WITH (FORCE), also when it fails.
"""

from __future__ import annotations

import sqlite3
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


def probe(url: str) -> str | None:
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
    """A SQLite file in a temporary folder, removed on exit (`python -m bench.idle --db sqlite`)."""
    with tempfile.TemporaryDirectory(prefix="rt_bench_") as folder:
        url = f"sqlite:///{Path(folder) / 'flexkids.db'}"
        yield Database(
            kind="sqlite", url=url, label=url, version=f"SQLite {sqlite3.sqlite_version}"
        )
