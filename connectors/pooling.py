"""Pooled connections checked before use only when they sat idle: a ping per long pause, not
per statement.

SQLAlchemy's `pool_pre_ping` sends a ping (one round trip) on *every* checkout. A run checks
out a connection for each count, page, batch and state write — dozens per customer × product
— within milliseconds of the previous use, when the connection is as alive as it can be
known to be; the pings were about a third of the state database's round trips of a tick.
What the ping guards against is a connection that went stale while it sat in the pool: a
server restarted or a proxy that closed it between two ticks (minutes or hours apart).

`ping_when_idle` keeps that guard where it matters: a connection idle in the pool for longer
than `idle_seconds` is pinged with the dialect's own `do_ping` (what `pool_pre_ping` calls)
before it is handed out; a failed ping raises `DisconnectionError`, on which the pool
discards it and connects again (SQLAlchemy's documented pessimistic handling with a custom
checkout event, "Disconnect Handling - Pessimistic"). A connection that dies between two
uses within `idle_seconds` fails its statement instead: the callers' retries (transient
errors, worker/retry.py) and SQLAlchemy's invalidation of the pool on a disconnect error
take a fresh one.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

# A pause longer than this before a connection is used again earns a ping (seconds,
# monotonic). Within a tick connections are reused after milliseconds; ticks are minutes
# apart.
IDLE_PING_SECONDS = 10.0
_IDLE_SINCE = "retention_idle_since"


def ping_when_idle(engine: sa.Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Ping a pooled connection of `engine` at checkout when it was idle > `idle_seconds`.

    Use instead of `pool_pre_ping=True`. Raises nothing itself: a failed ping becomes
    `sqlalchemy.exc.DisconnectionError`, which the pool handles by reconnecting (up to three
    attempts, then the connect error reaches the caller).
    """
    dialect = engine.dialect

    def checkin(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # new, or used a moment ago
        try:
            dialect.do_ping(dbapi)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc

    sa.event.listen(engine, "checkin", checkin)
    sa.event.listen(engine, "checkout", checkout)
