"""A locked audit table on a PostgreSQL state database fails the write within the lock
timeout, instead of hanging the daemon; the run's pair fails with that cause and changes
nothing, and the store works again once the lock is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from connectors.base import Timeouts
from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids, seed
from tests.support import run_once
from worker.events import Outcome
from worker.retry import RetryPolicy
from worker.settings import Settings
from worker.state import StateStore

pytestmark = pytest.mark.postgres
LOCK = 1


@contextmanager
def audit_locked(url: str) -> Iterator[None]:
    """Another session holds the audit tables in ACCESS EXCLUSIVE mode until the block ends."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("LOCK TABLE audit_head, audit_events IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def store(pg_url: str) -> Iterator[StateStore]:
    store = StateStore(
        pg_url,
        retry=RetryPolicy(budget_seconds=1),
        timeouts=Timeouts(lock_seconds=LOCK, statement_seconds=5),
    )
    store.migrate()
    yield store
    store.close()


def test_the_settings_bound_the_state_sessions() -> None:
    """RETENTION_LOCK_TIMEOUT_SECONDS and RETENTION_STATEMENT_TIMEOUT_SECONDS bound the state
    database's sessions as well."""
    settings = Settings.from_env(
        {"RETENTION_LOCK_TIMEOUT_SECONDS": "4", "RETENTION_STATEMENT_TIMEOUT_SECONDS": "40"}
    )
    assert settings.state_timeouts() == Timeouts(lock_seconds=4, statement_seconds=40)


def test_a_locked_audit_table_fails_the_run_within_the_lock_timeout(
    pg_url: str, store: StateStore, tmp_path: Path
) -> None:
    """The audit tables are locked while customer A's run starts: the start cannot be
    recorded, so the run fails within the lock timeout with SQLSTATE 55P03 named, and no row
    changes; once the lock is gone the next run deletes the expired rows."""
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    config = write_config(tmp_path / "config", PRODUCT.replace("STATEMENT", "60"), CUSTOMERS)
    env = {"KIDS_A_URL": product_url}
    with store._engine.connect() as conn:  # the session settings are in place
        assert conn.execute(sa.text("SHOW lock_timeout")).scalar_one() == f"{LOCK}s"
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "5s"
    started = time.monotonic()
    with audit_locked(pg_url):
        [failed] = run_once(config, env, store, customer="a")
        elapsed = time.monotonic() - started
    assert elapsed < LOCK + 10
    assert failed.outcome is Outcome.FAILED
    assert "the state database" in (failed.error or "")
    assert "55P03" in (failed.error or "")
    assert ids(product_url) == [1, 2, 3]  # nothing changed without its record

    [report] = run_once(config, env, store, customer="a")
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(product_url) == [3]
