"""No hang, no lock wait without end: a locked or slow table fails its pair only.

Two customers of a one-database-per-customer product, each with expired rows. Another
session holds a lock in customer A's database (`LOCK TABLE … IN ACCESS EXCLUSIVE MODE` on
PostgreSQL, `LOCK TABLES … WRITE` on MariaDB, `BEGIN EXCLUSIVE` on SQLite; a row lock in a
shared database on PostgreSQL and MariaDB), or
a trigger makes A's deletes run for a long time. `run --once` (worker.app.run_pairs) ends: pair A
fails within its timeout with a cause that names the table, the timeout and how to change
it, and customer B's expired rows are deleted in the same run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.integration.own_config import execute, write_config
from tests.support import Recorder, run_once
from worker.events import Outcome, RunFinished
from worker.state import StateStore

LOCK_SECONDS = 1
PRODUCT = f"""\
product: kids
tenancy: {{per_customer: true}}
timeouts: {{lock_seconds: {LOCK_SECONDS}, statement_seconds: STATEMENT}}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {{name: name}}
    dates: {{left: left_on}}
rules:
  - id: kids.child.left
    subject: child
    after: {{date: left, period: 12m}}
    action: delete
"""
CUSTOMERS = {
    name: f"products:\n  kids:\n    database: {{url_env: KIDS_{name.upper()}_URL}}\n"
    for name in ("a", "b")
}


def seed(url: str) -> None:
    """child: ids 1 and 2 expired, 3 not."""
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, name VARCHAR(50), left_on DATE)",
        "CREATE INDEX child_left_on ON child (left_on)",
        "INSERT INTO child VALUES (1, 'Kind 1', '2020-01-01'), (2, 'Kind 2', '2021-01-01'), "
        "(3, 'Kind 3', '2026-11-01')",
    )


def ids(url: str) -> list[int]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id FROM child ORDER BY id")).scalars())
    finally:
        engine.dispose()


def kind(url: str) -> str:
    return sa.make_url(url).get_backend_name()


@contextmanager
def table_locked(url: str, how: str) -> Iterator[None]:
    """Another session holds a lock on child (`how`: "table"), or on its row 1 ("row"),
    until the block ends."""
    if kind(url) == "sqlite":
        holder = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if how == "row":
                conn.execute(sa.text("SELECT id FROM child WHERE id = 1 FOR UPDATE"))
            elif kind(url) == "postgresql":
                conn.execute(sa.text("LOCK TABLE child IN ACCESS EXCLUSIVE MODE"))
            else:
                conn.execute(sa.text("LOCK TABLES child WRITE"))
            try:
                yield
            finally:
                if kind(url) == "mysql" and how == "table":
                    conn.execute(sa.text("UNLOCK TABLES"))
                conn.rollback()
    finally:
        engine.dispose()


def slow_deletes(url: str) -> None:
    """A trigger that makes every DELETE from child run for a long time."""
    if kind(url) == "sqlite":
        endless = (
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
        )
        execute(url, f"CREATE TRIGGER slow BEFORE DELETE ON child BEGIN {endless}; END")
    elif kind(url) == "postgresql":
        execute(
            url,
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(30); RETURN OLD; END $$",
            "CREATE TRIGGER slow BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION slow()",
        )
    else:
        execute(url, "CREATE TRIGGER slow BEFORE DELETE ON child FOR EACH ROW DO SLEEP(30)")


def run_both(
    tmp_path: Path, state: StateStore, urls: tuple[str, str], statement_seconds: int
) -> tuple[dict[str, Any], dict[str, float]]:
    config = write_config(tmp_path, PRODUCT.replace("STATEMENT", str(statement_seconds)), CUSTOMERS)
    env = {"KIDS_A_URL": urls[0], "KIDS_B_URL": urls[1]}
    recorder = Recorder()
    reports = run_once(config, env, state, extra=[recorder])
    durations = {
        e.customer: e.duration_seconds for e in recorder.events if isinstance(e, RunFinished)
    }
    return {r.customer: r for r in reports}, durations


def test_a_locked_table_fails_its_pair_within_the_lock_timeout(
    db_pair: tuple[str, str], tmp_path: Path, state: StateStore
) -> None:
    """A lock held on the table in A's database fails pair A within its lock timeout, with a
    clear cause; B's expired rows are deleted in the same run."""
    for url in db_pair:
        seed(url)
    started = time.monotonic()
    with table_locked(db_pair[0], "table"):
        reports, durations = run_both(tmp_path, state, db_pair, statement_seconds=60)
    elapsed = time.monotonic() - started

    a, b = reports["a"], reports["b"]
    assert a.outcome is Outcome.FAILED
    error = a.error or ""
    assert "lock timeout" in error
    assert "child" in error
    assert f"({LOCK_SECONDS} s)" in error
    assert "lock_seconds" in error and "RETENTION_LOCK_TIMEOUT_SECONDS" in error
    assert durations["a"] < LOCK_SECONDS + 5  # one wait for the lock, never retried
    assert b.outcome is Outcome.SUCCEEDED, b.error
    assert b.changed == 2
    assert ids(db_pair[0]) == [1, 2, 3]
    assert ids(db_pair[1]) == [3]
    assert elapsed < LOCK_SECONDS + 30


SHARED = PRODUCT.replace(
    "tenancy: {per_customer: true}",
    "database: {url_env: KIDS_URL}\ntenancy: {column: tenant}",
).replace("STATEMENT", "60")


@pytest.fixture(params=[pytest.param("pg_url", marks=pytest.mark.postgres), "mariadb_url"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL or MariaDB database (the backends with row locks)."""
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.mark.mariadb
def test_a_row_lock_in_a_shared_database_fails_only_that_tenant(
    server_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Another transaction holds tenant 1's expired row: tenant 1's delete fails at the lock
    timeout; tenant 2's expired row in the same table is deleted in the same run."""
    execute(
        server_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, "
        "name VARCHAR(50), left_on DATE)",
        "INSERT INTO child VALUES (1, 1, 'Kind 1', '2020-01-01'), (2, 2, 'Kind 2', '2020-01-01')",
    )
    customers = {name: f"products:\n  kids:\n    tenant: {t}\n" for name, t in (("a", 1), ("b", 2))}
    config = write_config(tmp_path, SHARED, customers)
    recorder = Recorder()
    with table_locked(server_url, "row"):
        reports = run_once(config, {"KIDS_URL": server_url}, state, extra=[recorder])

    a, b = reports
    assert a.outcome is Outcome.FAILED
    assert "cannot delete rows of child: lock timeout" in (a.error or "")
    durations = {
        e.customer: e.duration_seconds for e in recorder.events if isinstance(e, RunFinished)
    }
    assert durations["a"] < LOCK_SECONDS + 5
    assert b.outcome is Outcome.SUCCEEDED, b.error
    assert ids(server_url) == [1]


def test_a_slow_statement_fails_its_pair_within_the_statement_timeout(
    db_pair: tuple[str, str], tmp_path: Path, state: StateStore
) -> None:
    """A statement in A's database that would run for long is cancelled at the statement
    timeout, with a clear cause; B's expired rows are deleted in the same run."""
    for url in db_pair:
        seed(url)
    slow_deletes(db_pair[0])

    reports, durations = run_both(tmp_path, state, db_pair, statement_seconds=1)

    a, b = reports["a"], reports["b"]
    assert a.outcome is Outcome.FAILED
    error = a.error or ""
    assert "statement timeout" in error
    assert "child" in error
    assert "(1 s)" in error
    assert "statement_seconds" in error and "RETENTION_STATEMENT_TIMEOUT_SECONDS" in error
    assert durations["a"] < 1 + 10
    assert b.outcome is Outcome.SUCCEEDED, b.error
    assert ids(db_pair[0]) == [1, 2, 3]  # the batch was rolled back
    assert ids(db_pair[1]) == [3]
