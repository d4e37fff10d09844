"""A run's policy document is stored once per state store and process (worker/gate.py
`remember_policy`), on SQLite and PostgreSQL state:

- the first run stores it (INSERT … ON CONFLICT DO NOTHING), later runs of the process skip
  the write; another process (another store) writes it once and adds no row;
- a write that never committed (its run's records dropped) is not taken as stored: the
  next run writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_gathered_writes import tick
from tests.integration.test_state_round_trips import Statements
from tests.integration.test_timeouts import seed
from tests.support import NOW
from worker.events import EventBus, Outcome
from worker.gate import Gatekeeper
from worker.state import StateStore
from worker.state.gather import gathering

POLICY_INSERT = r"^INSERT INTO policies\b"


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


def kept(store: StateStore) -> list[Any]:
    with store._engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT fingerprint FROM policies"))]


def test_a_policy_is_written_once_per_store(tmp_path: Path, store: StateStore) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    with Statements(store._engine) as seen:
        for _ in range(3):
            [report] = tick(tmp_path, store, product_url)
            assert report.outcome is Outcome.SUCCEEDED, report.error
    assert len(seen.matching(POLICY_INSERT)) == 1, seen.sent
    [policy] = kept(store)
    other = StateStore(store._engine.url.render_as_string(hide_password=False))
    try:
        with Statements(other._engine) as seen:
            [report] = tick(tmp_path, other, product_url)
        assert report.outcome is Outcome.SUCCEEDED, report.error
        assert len(seen.matching(POLICY_INSERT)) == 1, seen.sent  # its first run
    finally:
        other.close()
    assert kept(store) == [policy]


def test_a_policy_write_that_never_committed_is_written_again(store: StateStore) -> None:
    gatekeeper = Gatekeeper(store, EventBus(), lambda: NOW)
    with gathering("r1"):  # queued, then dropped: the run's records were never flushed
        gatekeeper.remember_policy("sha256:" + "1" * 64, '{"rules":[]}', NOW)
    assert kept(store) == []
    with Statements(store._engine) as seen:
        gatekeeper.remember_policy("sha256:" + "1" * 64, '{"rules":[]}', NOW)  # written at once
        gatekeeper.remember_policy("sha256:" + "1" * 64, '{"rules":[]}', NOW)  # known: skipped
    assert len(seen.matching(POLICY_INSERT)) == 1, seen.sent
    assert kept(store) == [("sha256:" + "1" * 64,)]
