"""A lease's take whose COMMIT reply is lost on the wire (tests/faults.py: committed, the
worker cannot know): the store retries the take, which finds the row its first attempt
wrote, with its own token. That row is this take's lease, not another process's: the take
returns it (before, the pair was skipped as "held" by this very process, and its lease
stayed until it expired). PostgreSQL state through a loopback proxy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.faults import CommitProxy, on_the_wire
from worker.leases import Busy, Lease, Leases
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.state.models import leases

pytestmark = pytest.mark.postgres

TICK = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def wire(pg_url: str) -> Iterator[tuple[CommitProxy, str]]:
    """A proxy to the test's (migrated) PostgreSQL state database, and the URL through it."""
    with on_the_wire(pg_url, migrate=True) as found:
        yield found


@pytest.mark.parametrize("again", [False, True])
def test_a_take_whose_commit_reply_was_lost_holds_the_lease_it_wrote(
    wire: tuple[CommitProxy, str], pg_url: str, again: bool
) -> None:
    proxy, url = wire
    store = StateStore(url)
    store._retry = RetryPolicy(budget_seconds=5.0, sleep=lambda _s: None)
    try:
        taker = Leases(store, 60)
        proxy.arm(at_commit=1, lose="reply")
        taken = taker.take("kdv-a", "kidsapp", TICK, again=again)
        assert proxy.cut == 1
        assert isinstance(taken, Lease), taken
        assert taken.taken_from is None
        other = Leases(StateStore(pg_url), 60, holder="elsewhere|1")
        assert isinstance(other.take("kdv-a", "kidsapp", TICK, again=True), Busy)
        taken.end(done=True)
    finally:
        store.close()
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(leases.c.token, leases.c.done_at)).all()
    finally:
        engine.dispose()
    assert [(r.token, r.done_at is not None) for r in rows] == [(taken.token, True)]
