"""Server-side limits on the state database's PostgreSQL sessions.

Every new connection gets `lock_timeout` and `statement_timeout` from the worker's timeouts
(RETENTION_LOCK_TIMEOUT_SECONDS, RETENTION_STATEMENT_TIMEOUT_SECONDS), so that an audit
table locked by another session (a long `audit verify` elsewhere, an administrator's
`LOCK TABLE`) fails the write within the lock timeout with SQLSTATE 55P03 instead of hanging
the daemon. The client-side connect and read bounds come from `connectors.reach`. SQLite
state databases wait for a lock as long as the driver's `timeout` (the lock timeout).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from connectors.base import Timeouts


def _milliseconds(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def bound_sessions(engine: Engine, timeouts: Timeouts) -> None:
    """Set `lock_timeout` and `statement_timeout` on each new PostgreSQL connection of
    `engine` (outside any transaction, so a rollback cannot undo them)."""

    def connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, false), "
                    "set_config('statement_timeout', %s, false)",
                    (
                        _milliseconds(timeouts.lock_seconds),
                        _milliseconds(timeouts.statement_seconds),
                    ),
                )
        finally:
            dbapi_connection.autocommit = autocommit

    event.listen(engine, "connect", connect)


def unbounded(conn: Connection) -> None:
    """Lift both limits for the rest of `conn`'s transaction (a migration: it may rewrite a
    large trail, and waits for another replica's migration to end)."""
    conn.execute(text("SET LOCAL lock_timeout = 0"))
    conn.execute(text("SET LOCAL statement_timeout = 0"))
