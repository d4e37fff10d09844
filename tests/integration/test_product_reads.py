"""On PostgreSQL the product database's one-statement reads of a run (the ping, the schema
fingerprint, the backlog counts, the foreign keys) run in autocommit (connectors.session
`reading`): one round trip each, no BEGIN and ROLLBACK around them, under the session's
pinned settings, and the pooled connection is back in transactions for the next user."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from connectors.base import Table, Target, Timeouts
from connectors.engines import Engines
from connectors.sql import SqlConnector
from connectors.sqlcount import backlogs
from tests.support import PEPPER

CHILD = Table("child", key=("id",), dates=("left_on",), tenant_column="org")


def seed(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, org INTEGER NOT NULL, left_on DATE)"
            )
        )
        conn.execute(sa.text("INSERT INTO child VALUES (1, 1, '2020-01-01'), (2, 2, '2020-01-01')"))
    engine.dispose()


def aim(tenant: int) -> Target:
    cutoff = dt.date(2024, 1, 1)
    return Target(CHILD, tenant, "left_on", cutoff, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))


def test_a_runs_reads_send_no_begin_on_postgresql(pg_url: str) -> None:
    """Every product statement of ping, verify (the fingerprint, once the schema was
    reflected), the grouped count and the foreign keys runs in autocommit, and counts
    right."""
    seed(pg_url)
    engines = Engines()
    connector = SqlConnector(pg_url, pepper=PEPPER, engines=engines)
    modes: list[bool] = []

    def seen(conn: sa.Connection, *_args: Any) -> None:
        modes.append(bool(conn.connection.dbapi_connection.autocommit))  # type: ignore[union-attr]

    try:
        connector.open()
        connector.verify_each([CHILD])  # the first reflection: many statements, as before
        sa.event.listen(connector.engine, "before_cursor_execute", seen)
        connector.ping()
        [problems] = connector.verify_each([CHILD])
        assert not [p for p in problems if p.fatal]
        assert [b.count for b in backlogs(connector, [aim(1), aim(2), aim(3)])] == [1, 1, 0]
        assert connector.foreign_keys_to("child") == []
        assert len(modes) >= 4 and all(modes)
    finally:
        connector.close()
        engines.dispose()


def test_a_reading_connection_keeps_the_pinned_settings_and_is_reset(pg_url: str) -> None:
    """In autocommit the session's timeouts hold; the next user of the pooled connection
    gets it back in transactions."""
    from connectors.session import reading

    connector = SqlConnector(pg_url, pepper=PEPPER, timeouts=Timeouts(7, 90), pool_size=1)
    connector.open()
    try:
        with reading(connector.engine) as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "90s"
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "7s"
            assert conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
        with connector.engine.connect() as conn:
            assert not conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
            conn.execute(sa.text("SELECT 1"))
            assert conn.in_transaction()
    finally:
        connector.close()
