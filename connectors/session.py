"""Every pooled product session is pinned before first use: time zone, SQL mode, timeouts.

A listener on the engine's `connect` event runs on each new DBAPI connection, after the
driver's own start-up (a URL's `?options=-c TimeZone=…` on PostgreSQL, `init_command` on
MariaDB), so neither those nor a server default or `SET GLOBAL` can change the cutoff
comparison or a value written:

- PostgreSQL: `TimeZone = 'UTC'`, `lock_timeout`, `statement_timeout`, `jit = off` (from
  PostgreSQL 11: compiling a selection cost more than running it); `±infinity` dates
  and timestamps are read as the Python minimum and maximum instead of failing the read,
  and dates Python cannot hold (BC, after the year 9999) as PostgreSQL's text for them
  (`0044-03-15 BC`, `12000-06-01`).
- MariaDB/MySQL: `time_zone = '+00:00'` (TIMESTAMP columns are read and written in UTC),
  strict SQL mode (STRICT_ALL_TABLES, NO_ZERO_DATE, NO_ZERO_IN_DATE,
  ERROR_FOR_DIVISION_BY_ZERO, NO_ENGINE_SUBSTITUTION: a value that does not fit is an
  error, never silently truncated), `lock_wait_timeout` (metadata and table locks),
  `innodb_lock_wait_timeout` (row locks) and `max_statement_time` (MariaDB) or
  `max_execution_time` (MySQL, SELECTs only).
- SQLite: `foreign_keys = ON` (SQLite enforces foreign keys only when a connection asks, so
  a RESTRICT or CASCADE acts as it does on the other databases); `busy_timeout` bounds the
  wait for a lock; a progress handler interrupts a statement that runs past its deadline.
  The deadline starts before each statement, and is cleared at commit, rollback and
  check-in so that it never outlives its statement.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.base import Timeouts

STRICT_SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)
_DEADLINE = "retention_statement_deadline"
_PROGRESS_EVERY = 10_000  # SQLite virtual machine instructions between deadline checks


def pin_sessions(engine: Engine, timeouts: Timeouts) -> None:
    """Register the listeners that pin every new connection of `engine` (before it connects)."""
    name = engine.dialect.name
    if name == "postgresql":
        sa.event.listen(engine, "connect", lambda conn, _rec: _postgres(conn, timeouts))
    elif name in ("mysql", "mariadb"):
        sa.event.listen(engine, "connect", lambda conn, _rec: _mysql(conn, timeouts))
    elif name == "sqlite":
        _sqlite(engine, timeouts)


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A pooled connection of `engine` for reading; on PostgreSQL in autocommit, so a read
    of one statement is one round trip instead of three (no BEGIN and ROLLBACK around it).

    One statement sees one snapshot either way (the data committed when it starts, as in a
    READ COMMITTED transaction), and the pinned settings above are the session's, so they
    hold. Never write on it, nor rely on one snapshot for several statements. Elsewhere
    (MariaDB's driver would send `SET autocommit` twice, SQLite has no round trips) it is
    a plain connection.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def locking(engine: Engine) -> Iterator[sa.Connection]:
    """A pooled connection of `engine` in a transaction of its own, rolled back when done,
    whose locking reads wait for a transaction still writing the rows they read and then read
    what it left (connectors/sqlremaining.py). On SQLite, which has no row locks and one
    writer at a time, the transaction begins as a writer (`BEGIN IMMEDIATE`): it waits for
    another writer's transaction to end. Elsewhere the statement locks its rows itself
    (`SELECT … FOR UPDATE`). Either wait is bounded by the lock timeout pinned above.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _postgres(dbapi_connection: Any, timeouts: Timeouts) -> None:
    _read_infinity(dbapi_connection)
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a SET inside a transaction rolled back would be lost
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('TimeZone', 'UTC', false), "
                "set_config('lock_timeout', %s, false), "
                "set_config('statement_timeout', %s, false)",
                (
                    f"{_milliseconds(timeouts.lock_seconds)}ms",
                    f"{_milliseconds(timeouts.statement_seconds)}ms",
                ),
            )
            if _server_version(dbapi_connection) >= _JIT_SINCE:
                # The selections' estimated cost (an OR of "not yet masked" tests per column,
                # a related-table basis as a sub-select) passes jit_above_cost while they
                # read a few thousand rows: compiling them took 78 of 110 ms
                # per statement (EXPLAIN ANALYZE, 10,000 rows per tenant).
                cursor.execute("SELECT set_config('jit', 'off', false)")
    finally:
        dbapi_connection.autocommit = autocommit


_JIT_SINCE = 110000  # PostgreSQL 11 added JIT compilation and its `jit` setting


def _server_version(dbapi_connection: Any) -> int:
    """The server's version number (150020 for 15.20); psycopg 3 and psycopg2 both tell."""
    info = getattr(dbapi_connection, "info", None)
    found: Any = getattr(info, "server_version", None)
    return int(found or getattr(dbapi_connection, "server_version", 0) or 0)


def _read_infinity(dbapi_connection: Any) -> None:
    """psycopg: read ±infinity as date/datetime min and max instead of raising DataError;
    a date or timestamp outside Python's years 1 to 9999 (BC, or after 9999) as its text."""
    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is None:  # another driver than psycopg 3
        return
    from psycopg import DataError
    from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader

    class InfinityDateLoader(DateLoader):
        def load(self, data: Any) -> dt.date | str:  # type: ignore[override]  # a text too
            raw = bytes(data)
            if raw == b"infinity":
                return dt.date.max
            if raw == b"-infinity":
                return dt.date.min
            try:
                return super().load(data)
            except DataError:  # BC or after 9999: "too small" / "too large"
                return raw.decode("ascii")

    class InfinityTimestampLoader(TimestampLoader):
        def load(self, data: Any) -> dt.datetime | str:  # type: ignore[override]  # a text too
            raw = bytes(data)
            if raw == b"infinity":
                return dt.datetime.max
            if raw == b"-infinity":
                return dt.datetime.min
            try:
                return super().load(data)
            except DataError:
                return raw.decode("ascii")

    class InfinityTimestamptzLoader(TimestamptzLoader):
        def load(self, data: Any) -> dt.datetime | str:  # type: ignore[override]  # a text too
            raw = bytes(data)
            if raw == b"infinity":
                return dt.datetime.max.replace(tzinfo=dt.UTC)
            if raw == b"-infinity":
                return dt.datetime.min.replace(tzinfo=dt.UTC)
            try:
                return super().load(data)
            except DataError:
                return raw.decode("ascii")

    adapters.register_loader("date", InfinityDateLoader)
    adapters.register_loader("timestamp", InfinityTimestampLoader)
    adapters.register_loader("timestamptz", InfinityTimestamptzLoader)


def _mysql(dbapi_connection: Any, timeouts: Timeouts) -> None:
    server = str(getattr(dbapi_connection, "get_server_info", lambda: "")())
    lock = max(1, math.ceil(timeouts.lock_seconds))
    if "mariadb" in server.lower():
        statement = "max_statement_time = %s"
        limit: float = timeouts.statement_seconds
    else:
        statement = "max_execution_time = %s"
        limit = _milliseconds(timeouts.statement_seconds)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            "SET SESSION time_zone = '+00:00', sql_mode = %s, lock_wait_timeout = %s, "
            f"innodb_lock_wait_timeout = %s, {statement}",
            (STRICT_SQL_MODE, lock, lock, limit),
        )
    finally:
        cursor.close()


class _Deadline:
    """A SQLite progress handler: nonzero (interrupt) once the statement's deadline passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at: float | None = None

    def start(self) -> None:
        self.at = time.monotonic() + self.seconds

    def clear(self) -> None:
        self.at = None

    def __call__(self) -> int:
        return int(self.at is not None and time.monotonic() > self.at)


def _sqlite(engine: Engine, timeouts: Timeouts) -> None:
    def connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {_milliseconds(timeouts.lock_seconds)}")
        finally:
            cursor.close()
        deadline = _Deadline(timeouts.statement_seconds)
        record.info[_DEADLINE] = deadline
        dbapi_connection.set_progress_handler(deadline, _PROGRESS_EVERY)

    def start(conn: sa.Connection, *_: Any) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.start()

    def clear(conn: sa.Connection, *_: Any) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.clear()

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        deadline = record.info.get(_DEADLINE) if record is not None else None
        if deadline is not None:
            deadline.clear()

    sa.event.listen(engine, "connect", connect)
    sa.event.listen(engine, "before_cursor_execute", start)
    sa.event.listen(engine, "commit", clear)
    sa.event.listen(engine, "rollback", clear)
    sa.event.listen(engine.pool, "checkin", checkin)
