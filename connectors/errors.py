"""Driver errors become ConnectorError in one place, with the cause kept.

Messages carry the operation and table (our own wording, `what`) and the driver error as
`connectors.redact.describe` reduces it: class, SQLSTATE or error number, and names only
(constraint, table, column), never the driver's free text, which a trigger or a duplicate
key can fill with row values. The cause (`__cause__`) is the driver's error, text and all:
it is for debugging in-process; the log renderer (worker/logging.py) prints its description,
not its text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy.exc as sa_exc

from connectors.base import ConnectorError, LockTimeout, RowsRefused, StatementTimeout, Timeouts
from connectors.redact import describe

__all__ = ["describe", "is_transient", "refused_by_constraint", "timeout_kind", "wrap_errors"]

# SQLSTATE classes and codes that a retry may cure: connection trouble, deadlock,
# serialization failure, admin shutdown of a backend.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "57P01", "57P02", "57P03")
# MySQL/MariaDB: deadlock, server gone away, lost connection. Not 1205 (lock wait timeout):
# the lock is still held, and a retry would only wait as long again.
_TRANSIENT_MYSQL = {1213, 2006, 2013, 2055}
# Timeouts: never transient. PostgreSQL 55P03 lock_not_available, 57014 query_canceled (a
# statement timeout, when its text says so); MariaDB/MySQL 1205 lock wait timeout, 1969
# max_statement_time, 3024 max_execution_time; SQLite SQLITE_BUSY/LOCKED, SQLITE_INTERRUPT.
_LOCK_CODES = {"55P03", "1205"}
_STATEMENT_CODES = {"1969", "3024"}
_SQLITE_LOCK = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
_SQLITE_INTERRUPT = 9
# Integrity constraints that refuse a change because of the rows it touches: the DB-API's
# IntegrityError (SQLSTATE class 23; SQLite SQLITE_CONSTRAINT; pymysql's 1048, 1062, 1216,
# 1217, 1451, 1452), and MariaDB/MySQL's CHECK constraint errors, which pymysql does not map
# to IntegrityError (4025, 3819).
_CONSTRAINT_MYSQL = {1048, 1062, 1216, 1217, 1451, 1452, 1557, 1586, 3819, 4025}
# InnoDB refusing a cascade deeper than its limit (15 foreign keys): MariaDB's 1296, "Got
# error 193 '<the key>' from InnoDB" (HA_ERR_FK_DEPTH_EXCEEDED); 1296 says nothing without
# the engine's own number.
_MYSQL_ENGINE_ERROR = 1296
_INNODB_FK_DEPTH = "Got error 193 "


def _code(orig: BaseException) -> str | None:
    """The SQLSTATE, else the MySQL error number. pymysql gives both, and its SQLSTATE is
    often the catch-all HY000: see `_errno` for the number."""
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate and sqlstate != "HY000":
        return str(sqlstate)
    errno = _errno(orig)
    if errno is not None:
        return str(errno)
    return str(sqlstate) if sqlstate else None


def _errno(orig: BaseException) -> int | None:
    """The MySQL/MariaDB error number (pymysql and mysqlclient put it first in `args`)."""
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    code = _code(orig) if orig is not None else None
    if code and code.startswith(_TRANSIENT_SQLSTATES):
        return True
    if orig is not None and _errno(orig) in _TRANSIENT_MYSQL:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) and code is None:
        # Drivers that give no code for a dropped connection.
        text = str(orig).lower()
        return any(w in text for w in ("closed", "lost", "terminat", "gone away", "connect"))
    return False


def refused_by_constraint(exc: BaseException) -> bool:
    """True when `exc` is an integrity constraint refusing the rows of a change (a foreign key
    still referencing a deleted row: SQLSTATE 23503, MariaDB 1451; CHECK, UNIQUE, NOT NULL;
    on MariaDB a chain of ON DELETE CASCADE deeper than InnoDB's 15 keys, 1296 with error
    193). Such an error is a fact about some rows, not about the connection or the
    statement."""
    if isinstance(exc, sa_exc.IntegrityError):
        return True
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    code = _code(orig) or ""
    if _errno(orig) == _MYSQL_ENGINE_ERROR:  # a cascade deeper than InnoDB follows
        args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
        return len(args) > 1 and str(args[1]).startswith(_INNODB_FK_DEPTH)
    return (len(code) == 5 and code.startswith("23")) or _errno(orig) in _CONSTRAINT_MYSQL


def timeout_kind(exc: BaseException) -> type[LockTimeout] | type[StatementTimeout] | None:
    """LockTimeout or StatementTimeout when `exc` is one of those, else None."""
    orig = getattr(exc, "orig", None) or exc
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary in _SQLITE_LOCK:
            return LockTimeout
        return StatementTimeout if primary == _SQLITE_INTERRUPT else None
    code = _code(orig)
    errno = str(_errno(orig))
    if code in _LOCK_CODES or errno in _LOCK_CODES:
        return LockTimeout
    if code in _STATEMENT_CODES or errno in _STATEMENT_CODES:
        return StatementTimeout
    if code == "57014" and "statement timeout" in str(orig).lower():
        return StatementTimeout
    return None


def _timeout_message(
    what: str, kind: type[LockTimeout] | type[StatementTimeout], timeouts: Timeouts | None
) -> str:
    if kind is LockTimeout:
        limit = f" ({timeouts.lock_seconds:g} s)" if timeouts else ""
        return (
            f"{what}: lock timeout: waited longer than the lock timeout{limit} for a lock "
            "another session holds on the table. This customer × product stops here and its "
            "next run tries again; find the session holding the lock, or raise "
            "`timeouts: {lock_seconds: N}` in the product mapping or "
            "RETENTION_LOCK_TIMEOUT_SECONDS"
        )
    limit = f" ({timeouts.statement_seconds:g} s)" if timeouts else ""
    return (
        f"{what}: statement timeout: the statement ran longer than the statement "
        f"timeout{limit} and was cancelled. This customer × product stops here and its next "
        "run tries again; index the time basis (validate warns when it is not), lower "
        "`batch_size`, or raise `timeouts: {statement_seconds: N}` in the product mapping or "
        "RETENTION_STATEMENT_TIMEOUT_SECONDS"
    )


@contextmanager
def wrap_errors(what: str, timeouts: Timeouts | None = None) -> Iterator[None]:
    """Convert SQLAlchemy and driver errors into ConnectorError, keeping the cause.

    A lock or statement timeout becomes LockTimeout or StatementTimeout (not transient),
    whose message names the operation and table (`what`), the timeout, and how to change it;
    an integrity constraint refusing rows becomes RowsRefused.
    """
    try:
        yield
    except ConnectorError:
        raise
    except sa_exc.SQLAlchemyError as exc:
        kind = timeout_kind(exc)
        if kind is not None:
            message = f"{_timeout_message(what, kind, timeouts)} ({describe(exc)})"
            raise kind(message) from exc
        if refused_by_constraint(exc):
            raise RowsRefused(f"{what}: {describe(exc)}") from exc
        raise ConnectorError(f"{what}: {describe(exc)}", transient=is_transient(exc)) from exc
