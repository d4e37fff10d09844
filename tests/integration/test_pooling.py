"""A pooled connection is pinged before use only when it sat idle (connectors/pooling.py).

The server ends the worker's pooled session behind its back (a restart, a proxy's idle
timeout): after a pause longer than the idle threshold, the next use gets a fresh connection
without an error; within the threshold no ping is sent, and the dead connection fails its
statement once with a disconnect error (which the callers retry), after which the pool
hands out fresh connections.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from connectors.pooling import ping_when_idle


def _session_id(conn: sa.Connection) -> int:
    if conn.dialect.name == "postgresql":
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    return int(conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())


def _end_session(url: str, session: int) -> None:
    """Another session ends `session` (as a restart or a proxy would)."""
    admin = sa.create_engine(url, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": session})
            else:
                conn.execute(sa.text(f"KILL CONNECTION {int(session)}"))
    finally:
        admin.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(
        request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    )


def _pings(engine: sa.Engine) -> list[str]:
    """Statements the driver runs for the ping (the dialect's do_ping), recorded."""
    seen: list[str] = []
    original = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        seen.append("ping")
        return bool(original(dbapi_connection))

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return seen


def test_an_idle_connection_ended_by_the_server_is_replaced_without_an_error(
    server_url: str,
) -> None:
    engine = sa.create_engine(server_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=0.0)  # every pause counts as long
    pings = _pings(engine)
    try:
        with engine.connect() as conn:
            first = _session_id(conn)
        _end_session(server_url, first)
        with engine.connect() as conn:
            second = _session_id(conn)
        assert second != first
        assert pings == ["ping"]
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(server_url: str) -> None:
    engine = sa.create_engine(server_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=3600.0)
    pings = _pings(engine)
    try:
        for _ in range(5):
            with engine.connect() as conn:
                _session_id(conn)
        assert pings == []
        with engine.connect() as conn:
            first = _session_id(conn)
        _end_session(server_url, first)
        with pytest.raises(sa.exc.DBAPIError) as failed, engine.connect() as conn:
            _session_id(conn)
        assert failed.value.connection_invalidated
        with engine.connect() as conn:  # the pool was refreshed
            assert _session_id(conn) != first
    finally:
        engine.dispose()
