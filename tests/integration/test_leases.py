"""Leases of customer × product × tick (worker/leases.py) on a real state database, SQLite and
PostgreSQL: taken once, skipped while held or done, taken over after expiry (time injected),
lost when taken over, released on an interrupted run; and the tick a run belongs to.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from worker.errors import SettingsError
from worker.leases import Busy, Lease, Leases, latest_tick
from worker.settings import Settings
from worker.state import StateStore
from worker.state.models import leases

TICK = dt.datetime(2027, 1, 10, 1, 0, tzinfo=dt.UTC)
T0 = dt.datetime(2027, 1, 10, 1, 0, 5, tzinfo=dt.UTC)
OTHER_HOST = "pod-elsewhere|4242"  # another host: judged by expiry only


class Clock:
    """The leases' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url"}[request.param]
    made = StateStore(request.getfixturevalue(fixture))
    made.migrate()
    yield made
    made.close()


def _rows(store: StateStore) -> list[dict[str, object]]:
    return store.read(
        "reading leases",
        lambda c: [
            dict(r) for r in c.execute(sa.select(leases).order_by(leases.c.customer)).mappings()
        ],
    )


def test_one_holder_then_done_then_again_only_when_asked(store: StateStore) -> None:
    clock = Clock()
    a = Leases(store, 30, clock=clock, holder=OTHER_HOST)
    b = Leases(store, 30, clock=clock, holder="pod-b|7")
    first = a.take("kdv-a", "kidsapp", TICK)
    assert isinstance(first, Lease) and first.taken_from is None
    held = b.take("kdv-a", "kidsapp", TICK)
    assert held == Busy("kdv-a", "kidsapp", TICK, "held", OTHER_HOST, 30.0)
    # Another pair and another tick of the same pair are free.
    assert isinstance(b.take("kdv-b", "kidsapp", TICK), Lease)
    first.end(done=True)
    assert b.take("kdv-a", "kidsapp", TICK) == Busy("kdv-a", "kidsapp", TICK, "done", OTHER_HOST)
    again = b.take("kdv-a", "kidsapp", TICK, again=True)
    assert isinstance(again, Lease) and again.taken_from is None
    [row_a, row_b] = _rows(store)
    assert (row_a["customer"], row_a["holder"], row_a["done_at"], row_a["takeovers"]) == (
        "kdv-a",
        "pod-b|7",
        None,
        0,
    )
    assert (row_b["customer"], row_b["holder"]) == ("kdv-b", "pod-b|7")


def test_an_expired_lease_is_taken_over_and_its_holder_loses_it(store: StateStore) -> None:
    clock = Clock()
    gone = Leases(store, 10, clock=clock, holder=OTHER_HOST)
    taker = Leases(store, 10, clock=clock, holder="pod-b|7")
    old = gone.take("kdv-a", "kidsapp", TICK)
    assert isinstance(old, Lease)
    clock.advance(6)
    assert old.renew() is True  # renewed: lasts until T0 + 16 s
    clock.advance(9)
    busy = taker.take("kdv-a", "kidsapp", TICK)
    assert isinstance(busy, Busy) and busy.why == "held" and busy.wait_seconds == 1.0
    clock.advance(1.5)
    new = taker.take("kdv-a", "kidsapp", TICK)
    assert isinstance(new, Lease) and new.taken_from == OTHER_HOST
    # The old holder finds out at its next renewal, and its end changes nothing.
    assert old.renew() is False
    assert old.lost == "taken over by another process"
    old.end(done=True)
    [row] = _rows(store)
    assert (row["holder"], row["token"], row["done_at"], row["takeovers"]) == (
        "pod-b|7",
        new.token,
        None,
        1,
    )


def test_an_interrupted_run_releases_its_lease_and_old_ticks_are_pruned(
    store: StateStore,
) -> None:
    clock = Clock()
    a = Leases(store, 10, clock=clock, holder=OTHER_HOST)
    b = Leases(store, 10, clock=clock, holder="pod-b|7")
    earlier = TICK - dt.timedelta(days=1)
    done = a.take("kdv-a", "kidsapp", earlier)
    assert isinstance(done, Lease)
    done.end(done=True)
    stopped = a.take("kdv-a", "kidsapp", TICK)
    assert isinstance(stopped, Lease)
    stopped.end(done=False)
    assert _rows(store) == []  # the released lease is gone, and the done one of the day before
    assert isinstance(b.take("kdv-a", "kidsapp", TICK), Lease)


def test_a_holder_not_renewed_in_time_is_lost_without_asking() -> None:
    """`lost` turns true by the monotonic clock alone when no renewal succeeded for the lease
    time (a state database gone): the run stops before its next batch."""
    store = StateStore("sqlite://")
    store.migrate()
    lease = Leases(store, 0.05, holder=OTHER_HOST).take("kdv-a", "kidsapp", TICK)
    assert isinstance(lease, Lease)
    assert lease.lost == ""
    for _ in range(500):  # at most 5 s
        if lease.lost:
            break
        time.sleep(0.01)
    assert lease.lost == "not renewed for 0.05 s"
    store.close()


@pytest.mark.parametrize(
    ("cron", "timezone", "now", "tick"),
    [
        # Daily at 02:00 Amsterdam (01:00 UTC in winter): before it, the day before's.
        ("0 2 * * *", "Europe/Amsterdam", "2027-01-10T01:00:00+00:00", "2027-01-10T01:00:00"),
        ("0 2 * * *", "Europe/Amsterdam", "2027-01-10T00:59:59+00:00", "2027-01-09T01:00:00"),
        ("0 2 * * *", "Europe/Amsterdam", "2027-07-10T12:00:00+00:00", "2027-07-10T00:00:00"),
        ("*/2 * * * * *", "UTC", "2027-01-10T12:00:03.5+00:00", "2027-01-10T12:00:02"),
        ("0 3 1 1 *", "UTC", "2027-06-01T00:00:00+00:00", "2027-01-01T03:00:00"),
    ],
)
def test_the_tick_is_the_latest_at_or_before_now(
    cron: str, timezone: str, now: str, tick: str
) -> None:
    found = latest_tick(cron, timezone, dt.datetime.fromisoformat(now))
    assert found == dt.datetime.fromisoformat(tick).replace(tzinfo=dt.UTC)


def test_lease_seconds_setting() -> None:
    assert Settings.from_env({}).lease_seconds == 60
    assert Settings.from_env({"RETENTION_LEASE_SECONDS": "2"}).lease_seconds == 2
    for bad in ("1", "3601", "1.5", "soon"):
        with pytest.raises(SettingsError, match=r"RETENTION_LEASE_SECONDS .* set a whole number"):
            Settings.from_env({"RETENTION_LEASE_SECONDS": bad})


def test_schema_reuse_seconds_setting() -> None:
    assert Settings.from_env({}).schema_reuse_seconds == 30
    assert Settings.from_env({"RETENTION_SCHEMA_REUSE_SECONDS": "0"}).schema_reuse_seconds == 0
    assert Settings.from_env({"RETENTION_SCHEMA_REUSE_SECONDS": "300"}).schema_reuse_seconds == 300
    for bad in ("-1", "301", "2.5", "soon"):
        with pytest.raises(SettingsError, match=r"RETENTION_SCHEMA_REUSE_SECONDS .* whole number"):
            Settings.from_env({"RETENTION_SCHEMA_REUSE_SECONDS": bad})
