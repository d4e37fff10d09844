"""How a database is reached: its URL checked before any connection, and client-side bounds.

`checked_url` refuses, without touching the network, a URL the worker cannot use: text that
does not parse, a database kind or driver it does not support (`postgresql+nosuch://`, a
driver that is not installed), a port outside 1..65535, a missing database name (a server
would otherwise pick a default database, SQLite an empty one in memory) and query options
the driver does not know (they would fail at connect time as a TypeError or be silently
ignored). Every message shows the URL with its passwords masked (`connectors.masking`).

`client_options` gives every connection client-side bounds, so that a server that accepts the
connection but never answers, or a network partition in the middle of a query, fails that
connection instead of hanging a run forever (the server-side lock and statement timeouts of
`connectors.session` need a server that answers):

- PostgreSQL (psycopg): `connect_timeout` (`connect_seconds`: the lock timeout, at most
  `CONNECT_TIMEOUT_SECONDS`) bounds connecting, start-up and authentication;
  TCP keepalives find a peer that is gone while a query runs (probes after
  `KEEPALIVE_IDLE_SECONDS` idle, every `KEEPALIVE_INTERVAL_SECONDS`, given up after
  `KEEPALIVE_COUNT`); `tcp_user_timeout` bounds how long sent data may stay unacknowledged.
- MariaDB/MySQL (pymysql): `connect_timeout` for the TCP connection, `read_timeout` and
  `write_timeout` for every read and write of the socket (the server's greeting included).
- SQLite: `timeout`, the driver's wait for a lock held by another connection.

The read bound is `read_seconds(timeouts)`: the statement timeout plus the lock timeout plus
a margin, so the server's own timeout (which names its cause) always comes first and the
client's only when the server does not answer at all. An option the URL sets itself
(`?connect_timeout=5`) is kept.

Not covered: a PostgreSQL server process that hangs after the connection is made while its
host's network stack still answers (libpq has no read timeout; keepalives are answered by the
kernel); the server's own statement timeout, or a restart, ends such a wait.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from connectors.base import ConnectorError, Timeouts
from connectors.masking import safe_url

CONNECT_TIMEOUT_SECONDS = 10  # connecting, unless the URL says otherwise
CLIENT_MARGIN_SECONDS = 5  # past the server's own timeouts, before the client gives up
KEEPALIVE_IDLE_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3

_EXAMPLES = (
    "postgresql+psycopg://user:password@host:5432/db, "
    "mysql+pymysql://user:password@host:3306/db or sqlite:////path/to/file.db"
)
# Database kind → drivers the worker is built and tested with (the first is the default).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "postgresql": ("psycopg",),
    "mysql": ("pymysql",),
    "mariadb": ("pymysql",),
    "sqlite": ("pysqlite",),
}
# A kind written without `+driver`: SQLAlchemy's default driver for it.
_DEFAULT_DRIVER = {
    "postgresql": "psycopg",
    "mysql": "mysqldb",
    "mariadb": "mysqldb",
    "sqlite": "pysqlite",
}
_MODULES = {"psycopg": "psycopg", "pymysql": "pymysql", "pysqlite": "sqlite3"}
# SQLAlchemy's MySQL dialects turn these into pymysql's `ssl` argument.
_MYSQL_SSL = {"ssl_ca", "ssl_key", "ssl_cert", "ssl_capath", "ssl_cipher", "ssl_check_hostname"}
# Rich values a query string cannot give (SQLAlchemy says so), and what the URL's parts give.
_MYSQL_NOT_IN_QUERY = {"self", "conv", "cursorclass", "ssl", "user", "password", "passwd"}
# What SQLAlchemy's pysqlite dialect reads from the query string (more with uri=true).
_SQLITE = {"timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements"}
_SQLITE_URI = _SQLITE | {"uri", "mode", "cache", "immutable", "nolock", "vfs", "psow"}


class BadDatabaseUrl(ConnectorError):
    """A database URL the worker cannot use; the message says why and what to write."""


def checked_url(url: str | sa.URL) -> sa.URL:
    """`url` parsed and checked offline (see the module docstring); BadDatabaseUrl if not.

    Never connects; imports the driver module once to know it is installed.
    """
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        # `from None`: the parser's message may repeat a part of the URL, password included.
        raise BadDatabaseUrl(
            f"the database URL is not valid ({_problem(url)}); expected e.g. {_EXAMPLES}"
        ) from None
    shown = safe_url(parsed)
    # From the URL's text: SQLAlchemy would load a dialect (and fail) to name a default.
    backend, _, driver = parsed.drivername.partition("+")
    driver = driver or _DEFAULT_DRIVER.get(backend, "")
    drivers = SUPPORTED.get(backend)
    if drivers is None:
        kinds = ", ".join(sorted(SUPPORTED))
        raise BadDatabaseUrl(
            f"the database URL {shown} names the database kind {backend!r}, which the worker "
            f"does not support; use one of {kinds}, e.g. {_EXAMPLES}"
        )
    if driver not in drivers:
        named = f"names the driver {driver!r}" if "+" in parsed.drivername else "names no driver"
        raise BadDatabaseUrl(
            f"the database URL {shown} {named}, and the worker supports only "
            f"{', '.join(drivers)} for {backend}; write {backend}+{drivers[0]}://…"
        )
    try:
        importlib.import_module(_MODULES[driver])
    except ImportError:
        raise BadDatabaseUrl(
            f"the database URL {shown} needs the driver {driver}, which is not installed; "
            "install retention-worker with its drivers"
        ) from None
    _check_parts(parsed, shown, backend)
    unknown = sorted(set(parsed.query) - _known_options(parsed, driver))
    if unknown:
        raise BadDatabaseUrl(
            f"the database URL {shown} has the query option(s) {', '.join(unknown)}, which the "
            f"{driver} driver does not know; remove them or check their spelling"
        )
    return parsed


def _problem(url: str | sa.URL) -> str:
    text = str(url)
    if "://" not in text:
        return "no `kind+driver://` at its start"
    if text.startswith("://"):
        return "no database kind before `://`"
    return (
        "its parts cannot be told apart: a port that is not a number, or a raw `@`, `:` or "
        "`/` in the password (%-escape it)"
    )


def _check_parts(url: sa.URL, shown: str, backend: str) -> None:
    try:
        port = url.port
    except ValueError:  # pragma: no cover  (make_url already refuses it)
        port = None
    if port is not None and not 1 <= port <= 65535:
        raise BadDatabaseUrl(
            f"the database URL {shown} has the port {port}; a port is a number from 1 to 65535"
        )
    database = (url.database or "").strip()
    if backend == "sqlite":
        if database in ("", ":memory:"):
            raise BadDatabaseUrl(
                f"the database URL {shown} names no SQLite file (an empty database in memory); "
                "write sqlite:////absolute/path/file.db or sqlite:///relative/path/file.db"
            )
    elif not database:
        raise BadDatabaseUrl(
            f"the database URL {shown} names no database (the server would choose one); "
            f"add it after the host: {backend}+…://user:password@host:port/DATABASE"
        )


def _known_options(url: sa.URL, driver: str) -> frozenset[str]:
    if driver in ("psycopg", "pymysql"):
        return _driver_options(driver)
    uri = str(url.query.get("uri", "")).lower() in ("true", "1")
    return frozenset(_SQLITE_URI if uri else _SQLITE)


@functools.cache
def _driver_options(driver: str) -> frozenset[str]:
    """The connection options `driver` knows (asked once per process: libpq's defaults list
    for psycopg, the connection's signature for pymysql; every run checks its URL)."""
    if driver == "psycopg":
        from psycopg import pq

        return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())
    from pymysql.connections import Connection  # type: ignore[import-untyped]

    names = set(inspect.signature(Connection.__init__).parameters)
    return frozenset((names - _MYSQL_NOT_IN_QUERY) | _MYSQL_SSL)


def connect_seconds(timeouts: Timeouts) -> int:
    """Whole seconds to connect: the lock timeout (the longest the worker waits for another
    party), at most `CONNECT_TIMEOUT_SECONDS`, at least 1 (libpq counts at least 2)."""
    return max(1, min(CONNECT_TIMEOUT_SECONDS, math.ceil(timeouts.lock_seconds)))


def read_seconds(timeouts: Timeouts) -> int:
    """Whole seconds a client waits for any answer: the statement timeout plus the lock
    timeout plus a margin (the lock timeout, at most `CLIENT_MARGIN_SECONDS`)."""
    margin = min(CLIENT_MARGIN_SECONDS, timeouts.lock_seconds)
    return math.ceil(timeouts.statement_seconds + timeouts.lock_seconds + margin)


def client_options(url: sa.URL, timeouts: Timeouts) -> dict[str, Any]:
    """The `connect_args` bounding a connection to `url` on the client side (see the module
    docstring); an option the URL's query sets is left to the URL."""
    backend = url.get_backend_name()
    read = read_seconds(timeouts)
    wanted: dict[str, Any]
    if backend == "postgresql":
        wanted = {
            "connect_timeout": connect_seconds(timeouts),
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
            "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
            "keepalives_count": KEEPALIVE_COUNT,
            "tcp_user_timeout": read * 1000,  # milliseconds
        }
    elif backend in ("mysql", "mariadb"):
        wanted = {
            "connect_timeout": connect_seconds(timeouts),
            "read_timeout": read,
            "write_timeout": read,
        }
    elif backend == "sqlite":
        wanted = {"timeout": timeouts.lock_seconds}
    else:
        wanted = {}
    return {k: v for k, v in wanted.items() if k not in url.query}


def engine_options(
    url: sa.URL, timeouts: Timeouts, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`options` for `sqlalchemy.create_engine` with `client_options` merged into their
    `connect_args` (a value the caller gives wins)."""
    merged = dict(options or {})
    merged["connect_args"] = {**client_options(url, timeouts), **merged.get("connect_args", {})}
    return merged
