"""The lease clock read inside the lease's own statements (worker/leases.py `Leases.at`), on a
real state database, SQLite and PostgreSQL, without an injected clock: taking, renewing and
ending a lease make no clock round trip of their own (on PostgreSQL they used to `SELECT
clock_timestamp()` first; SQLite uses the host's clock and never did), and the times they
write and report are the database's: expiry exactly the lease time after the take, wait
seconds of a held lease, a done lease's end, a takeover of an expired one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from worker.leases import Busy, Lease, Leases
from worker.state import StateStore
from worker.state.models import leases

TICK = dt.datetime(2027, 1, 10, 1, 0, tzinfo=dt.UTC)
HOLDER = "pod-elsewhere|4242"  # another host: judged by expiry only
OTHER = "pod-b|7"
SECONDS = 30.0
LASTS = dt.timedelta(seconds=SECONDS)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url"}[request.param]
    made = StateStore(request.getfixturevalue(fixture))
    made.migrate()
    yield made
    made.close()


def _db_now(store: StateStore) -> dt.datetime:
    """The state database's clock (SQLite: the host's)."""
    if store._engine.dialect.name != "postgresql":
        return dt.datetime.now(dt.UTC)
    return store.read(
        "reading the clock", lambda c: c.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    )


def _row(store: StateStore, customer: str = "kdv-a") -> sa.Row[tuple[object, ...]]:
    def read(conn: sa.Connection) -> sa.Row[tuple[object, ...]]:
        return conn.execute(sa.select(leases).where(leases.c.customer == customer)).one()

    return store.read("reading the lease", read)


def _utc(value: object) -> dt.datetime:
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Statements:
    """The SQL statements the state store sends while `seen` is open."""

    def __init__(self, store: StateStore) -> None:
        self.engine = store._engine
        self.sql: list[str] = []

    def _note(self, *args: object) -> None:
        self.sql.append(" ".join(str(args[2]).split()))

    def __enter__(self) -> list[str]:
        sa.event.listen(self.engine, "before_cursor_execute", self._note)
        return self.sql

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._note)


def _lease_statements(sql: list[str]) -> list[str]:
    return [s.split()[0] for s in sql if s.split()[0] not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_taking_renewing_and_ending_make_no_clock_round_trip(store: StateStore) -> None:
    postgres = store._engine.dialect.name == "postgresql"
    # PostgreSQL takes a lease and prunes older ticks in one statement (WITH … INSERT … ON
    # CONFLICT, then DELETE); SQLite in two.
    taking = ["WITH"] if postgres else ["INSERT", "DELETE"]
    a = Leases(store, SECONDS, holder=HOLDER)
    yesterday = a.take("kdv-a", "kidsapp", TICK - dt.timedelta(days=1))
    assert isinstance(yesterday, Lease)
    yesterday.end(done=True)
    with Statements(store) as sql:
        first = a.take("kdv-a", "kidsapp", TICK)
    assert isinstance(first, Lease)
    assert _lease_statements(sql) == taking  # a new tick (was 2 on both)
    assert _utc(_row(store).tick) == TICK  # the day before's done lease is pruned
    with Statements(store) as sql:
        assert first.renew() is True
        first.end(done=True)
    assert _lease_statements(sql) == ["UPDATE", "UPDATE"]
    with Statements(store) as sql:
        again = a.take("kdv-a", "kidsapp", TICK, again=True)
    assert isinstance(again, Lease)
    assert _lease_statements(sql) == taking  # taken again in the same tick (was 4 on both)
    with Statements(store) as sql:
        busy = Leases(store, SECONDS, holder=OTHER).take("kdv-a", "kidsapp", TICK)
    assert isinstance(busy, Busy) and busy.why == "held"
    assert _lease_statements(sql) == [taking[0], "SELECT"]


def test_the_times_are_the_database_clocks(store: StateStore) -> None:
    a = Leases(store, SECONDS, holder=HOLDER)
    b = Leases(store, SECONDS, holder=OTHER)
    before = _db_now(store)
    first = a.take("kdv-a", "kidsapp", TICK)
    after = _db_now(store)
    assert isinstance(first, Lease) and first.taken_from is None
    row = _row(store)
    taken, expires = _utc(row.taken_at), _utc(row.expires_at)
    assert before <= taken <= after
    assert expires - taken == LASTS and first.expires_at == expires

    busy = b.take("kdv-a", "kidsapp", TICK)
    waited = _db_now(store)
    assert isinstance(busy, Busy) and (busy.why, busy.holder) == ("held", HOLDER)
    assert (expires - waited).total_seconds() <= busy.wait_seconds <= SECONDS

    before = _db_now(store)
    assert first.renew() is True
    assert before + LASTS <= _utc(_row(store).expires_at) <= _db_now(store) + LASTS

    before = _db_now(store)
    first.end(done=True)
    ended = _row(store)
    assert ended.done_at == ended.expires_at
    assert before <= _utc(ended.done_at) <= _db_now(store)
    assert b.take("kdv-a", "kidsapp", TICK) == Busy("kdv-a", "kidsapp", TICK, "done", HOLDER)

    before = _db_now(store)
    again = b.take("kdv-a", "kidsapp", TICK, again=True)
    assert isinstance(again, Lease) and again.taken_from is None
    row = _row(store)
    taken, expires = _utc(row.taken_at), _utc(row.expires_at)
    assert before <= taken <= _db_now(store)
    assert expires - taken == LASTS and again.expires_at == expires
    assert (row.holder, row.token, row.done_at, row.takeovers) == (OTHER, again.token, None, 0)


def test_an_expired_lease_is_taken_over_by_the_database_clock(store: StateStore) -> None:
    gone = Leases(store, SECONDS, holder=HOLDER).take("kdv-a", "kidsapp", TICK)
    assert isinstance(gone, Lease)
    # Its holder stopped renewing: its expiry passed a second ago by the database's clock.
    past = _db_now(store) - dt.timedelta(seconds=1)
    store.write(
        "expiring the lease",
        lambda c: c.execute(sa.update(leases).values(taken_at=past - LASTS, expires_at=past)),
    )
    before = _db_now(store)
    new = Leases(store, SECONDS, holder=OTHER).take("kdv-a", "kidsapp", TICK)
    assert isinstance(new, Lease) and new.taken_from == HOLDER
    row = _row(store)
    assert (row.holder, row.token, row.takeovers) == (OTHER, new.token, 1)
    assert before <= _utc(row.taken_at) <= _db_now(store)
    assert _utc(row.expires_at) - _utc(row.taken_at) == LASTS
    assert new.expires_at == _utc(row.expires_at)
    assert gone.renew() is False and gone.lost == "taken over by another process"
