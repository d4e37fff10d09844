"""Driver errors become ConnectorError in one place, with the cause kept.

Messages carry the operation, the driver's error class and code, and the first line of the
driver's text with every quoted literal removed: a duplicate-key message must not leak the
duplicated e-mail address into a log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc as sa_exc

from connectors.base import ConnectorError

# SQLSTATE classes and codes that a retry may cure: connection trouble, deadlock,
# serialization failure, admin shutdown of a backend.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "57P01", "57P02", "57P03")
# MySQL/MariaDB: deadlock, lock wait timeout, server gone away, lost connection.
_TRANSIENT_MYSQL = {1205, 1213, 2006, 2013, 2055}
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\((?:[^()]*)\)=\((?:[^()]*)\)")


def describe(exc: BaseException) -> str:
    """A value-free description of a driver error."""
    orig = getattr(exc, "orig", None) or exc
    code = _code(orig)
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    # pymysql keeps (code, message): its str() quotes the whole message.
    text = args[1] if len(args) >= 2 and isinstance(args[1], str) else str(orig)
    first = (text.strip().splitlines() or [""])[0]
    first = _QUOTED.sub("?", first)[:200]
    label = type(orig).__name__
    return f"{label}{f' [{code}]' if code else ''}: {first}" if first else label


def _code(orig: BaseException) -> str | None:
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate:
        return str(sqlstate)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return str(args[0])
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    code = _code(orig) if orig is not None else None
    if code and code.startswith(_TRANSIENT_SQLSTATES):
        return True
    if code and code.isdigit() and int(code) in _TRANSIENT_MYSQL:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) and code is None:
        # Drivers that give no code for a dropped connection.
        text = str(orig).lower()
        return any(w in text for w in ("closed", "lost", "terminat", "gone away", "connect"))
    return False


@contextmanager
def wrap_errors(what: str) -> Iterator[None]:
    """Convert SQLAlchemy and driver errors into ConnectorError, keeping the cause."""
    try:
        yield
    except ConnectorError:
        raise
    except sa_exc.SQLAlchemyError as exc:
        raise ConnectorError(f"{what}: {describe(exc)}", transient=is_transient(exc)) from exc
