"""Leases of a pair across two ticks (worker/leases.py, worker/leasesql.py), SQLite and
PostgreSQL, time injected: what a newer tick's take does to an older tick's row, and whether
an older tick's live lease keeps the pair from the newer tick (both gaps before migration
0008; the again decision: tests/integration/test_lease_ticks.py)."""

from __future__ import annotations

import datetime as dt

from tests.integration import test_leases
from tests.integration.test_leases import TICK, Clock
from worker.leases import Busy, Lease, Leases
from worker.state import StateStore

store = test_leases.store  # the state store of each kind, migrated

DAY = dt.timedelta(days=1)
A = "pod-a|1"  # other hosts: judged by expiry only
B = "pod-b|2"


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def test_a_scheduled_take_of_a_done_tick_swept_by_a_newer_tick_is_done(
    store: StateStore,
) -> None:
    clock = Clock()
    earlier = TICK - dt.timedelta(minutes=5)
    first = Leases(store, 10, clock=clock, holder=A).take("c", "p", earlier)
    assert isinstance(first, Lease)
    first.end(done=True)
    newer = Leases(store, 10, clock=clock, holder=A).take("c", "p", TICK)
    assert isinstance(newer, Lease)  # swept the earlier tick's done row
    late = Leases(store, 10, clock=clock, holder=B).take("c", "p", earlier)
    assert isinstance(late, Busy), "run again in a tick it was done in, beside the newer run"


def test_a_live_lease_of_the_previous_tick_keeps_the_pair_from_the_next(
    store: StateStore,
) -> None:
    clock = Clock()
    earlier = TICK - dt.timedelta(minutes=5)
    slow = Leases(store, 10, clock=clock, holder=A).take("c", "p", earlier)
    assert isinstance(slow, Lease)
    nxt = Leases(store, 10, clock=clock, holder=B).take("c", "p", TICK)
    assert isinstance(nxt, Busy), "two processes work the pair at once"
