"""Leases of a pair across ticks (worker/leases.py), SQLite and PostgreSQL, time injected:
one lease not done per pair whatever its tick, what a person's take `again` does beside a
later tick's row, and what becomes of another tick's lease that expired or whose holder is
gone. The race of two takers at once: tests/integration/test_lease_races.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.integration import test_leases
from tests.integration.test_leases import T0, TICK, Clock
from worker.leases import Busy, Lease, Leases
from worker.owner import process_owner
from worker.state import StateStore
from worker.state.models import leases

store = test_leases.store  # the state store of each kind, migrated

EARLIER = TICK - dt.timedelta(minutes=5)
A = "pod-a|1"  # other hosts: judged by expiry only
B = "pod-b|2"


def _rows(store: StateStore) -> list[tuple[str, bool]]:
    """(holder, done) of the pair's rows, oldest tick first."""
    found = store.read(
        "leases",
        lambda c: c.execute(sa.text("SELECT holder, done_at FROM leases ORDER BY tick")).all(),
    )
    return [(str(r[0]), r[1] is not None) for r in found]


def test_again_runs_an_older_tick_beside_a_later_done_row_never_beside_a_live_lease(
    store: StateStore,
) -> None:
    """A person's `run --once` at an older tick (a clock behind, a schedule changed) while
    the later tick is run by another process: held by that process, for its seconds left;
    once that run is done, the person's run goes ahead (a person asked), the later row kept."""
    clock = Clock()
    later = Leases(store, 10, clock=clock, holder=A).take("c", "p", TICK)
    assert isinstance(later, Lease)
    clock.advance(4)
    busy = Leases(store, 10, clock=clock, holder=B).take("c", "p", EARLIER, again=True)
    assert busy == Busy("c", "p", EARLIER, "held", A, 6.0)
    later.end(done=True)
    person = Leases(store, 10, clock=clock, holder=B).take("c", "p", EARLIER, again=True)
    assert isinstance(person, Lease) and person.taken_from is None
    assert _rows(store) == [(B, False), (A, True)]
    scheduled = Leases(store, 10, clock=clock, holder=A).take("c", "p", EARLIER)
    assert scheduled == Busy("c", "p", EARLIER, "done", A)  # the later tick covers it


def test_again_on_a_done_tick_waits_for_another_ticks_live_lease(store: StateStore) -> None:
    """The tick's row is done (a person may run it again), but another process runs the
    pair in the next tick: held by that process, not run beside it."""
    clock = Clock()
    first = Leases(store, 10, clock=clock, holder=A).take("c", "p", EARLIER)
    assert isinstance(first, Lease)
    first.end(done=True)
    slow = Leases(store, 10, clock=clock, holder=A).take("c", "p", TICK)
    assert isinstance(slow, Lease)
    busy = Leases(store, 10, clock=clock, holder=B).take("c", "p", TICK, again=True)
    assert busy == Busy("c", "p", TICK, "held", A, 10.0)  # its own tick: as before
    # The older tick's done row was swept by the newer take; a person's take of it waits.
    older = Leases(store, 10, clock=clock, holder=B).take("c", "p", EARLIER, again=True)
    assert older == Busy("c", "p", EARLIER, "held", A, 10.0)
    assert _rows(store) == [(A, False)]


def test_a_scheduled_take_beside_a_later_ticks_live_lease_is_done_not_held(
    store: StateStore,
) -> None:
    """`run --once --scheduled` waits for pairs held, so a later tick's lease, live or done,
    says done: that run covers this tick's work, and waiting would end in done anyway."""
    clock = Clock()
    later = Leases(store, 10, clock=clock, holder=A).take("c", "p", TICK)
    assert isinstance(later, Lease)
    late = Leases(store, 10, clock=clock, holder=B).take("c", "p", EARLIER)
    assert late == Busy("c", "p", EARLIER, "done", A)
    assert _rows(store) == [(A, False)]


@pytest.mark.parametrize("again", [False, True])
def test_another_ticks_expired_lease_gives_way(store: StateStore, again: bool) -> None:
    """A run that crashed in the previous tick (its lease expired) keeps nobody out: the
    next tick's take deletes it and runs (scheduled or not)."""
    clock = Clock()
    crashed = Leases(store, 10, clock=clock, holder=A).take("c", "p", EARLIER)
    assert isinstance(crashed, Lease)
    clock.advance(5)
    early = Leases(store, 10, clock=clock, holder=B).take("c", "p", TICK, again=again)
    assert early == Busy("c", "p", TICK, "held", A, 5.0)
    clock.advance(6)
    taken = Leases(store, 10, clock=clock, holder=B).take("c", "p", TICK, again=again)
    assert isinstance(taken, Lease) and taken.taken_from is None
    assert _rows(store) == [(B, False)]


def test_another_ticks_lease_of_a_gone_holder_gives_way_at_once(store: StateStore) -> None:
    """A process on this host that holds the previous tick's lease and is gone (its pid
    dead) keeps nobody out until its lease expires: the next tick's take runs at once."""
    host = process_owner().partition("|")[0]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    clock = Clock()
    gone = Leases(store, 60, clock=clock, holder=f"{host}|{dead}").take("c", "p", EARLIER)
    assert isinstance(gone, Lease)
    taken = Leases(store, 60, clock=clock, holder=B).take("c", "p", TICK)
    assert isinstance(taken, Lease)
    assert _rows(store) == [(B, False)]


def test_migration_0008_keeps_the_newest_open_lease_of_a_pair(
    store: StateStore,
) -> None:
    """Leases not done of several ticks of a pair (the older code allowed them) are cut to
    the newest before the index that forbids them is made; done rows stay."""
    store.write("downgrade", lambda c: c.execute(sa.text("DROP INDEX ux_leases_one_open")))
    rows = [
        (EARLIER - dt.timedelta(minutes=5), "old", T0),
        (EARLIER, A, None),
        (TICK, B, None),
    ]
    values = [
        {
            "customer": "c",
            "product": "p",
            "tick": tick,
            "holder": holder,
            "token": holder,
            "taken_at": T0,
            "expires_at": T0 + dt.timedelta(hours=1),
            "done_at": done,
            "takeovers": 0,
        }
        for tick, holder, done in rows
    ]
    store.write("rows", lambda c: c.execute(leases.insert(), values))
    store.write(
        "version", lambda c: c.execute(sa.text("UPDATE alembic_version SET version_num = '0007'"))
    )
    store.migrate()
    assert _rows(store) == [("old", True), (B, False)]
    busy = Leases(store, 10, clock=Clock(), holder=A).take("c", "p", TICK + dt.timedelta(hours=1))
    assert isinstance(busy, Busy) and (busy.why, busy.holder) == ("held", B)
