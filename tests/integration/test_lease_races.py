"""Two takers of one done lease at once, on PostgreSQL (worker/leasesql.py): a lease taken
again (`again`, a person's `run --once`) is one INSERT … ON CONFLICT DO UPDATE of a done row,
which waits for another taker's uncommitted change of that row and then judges the row as that
taker left it: the pair goes to exactly one of them, and the other says who has it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from connectors.model import Timeouts
from worker.leases import Busy, Lease, Leases
from worker.state import StateStore

TICK = dt.datetime(2027, 1, 10, 1, 0, tzinfo=dt.UTC)
FIRST = "pod-a|1"
RACER = "pod-c|3"  # another host: judged by expiry only

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str) -> Iterator[StateStore]:
    made = StateStore(pg_url)
    made.migrate()
    yield made
    made.close()


def _take_or_error(leases: Leases, found: list[BaseException | Lease | Busy]) -> None:
    try:
        found.append(leases.take("kdv-a", "kidsapp", TICK, again=True))
    except BaseException as exc:  # noqa: BLE001  (the test reports it)
        found.append(exc)


def test_a_done_lease_taken_again_by_two_at_once_goes_to_one(
    store: StateStore, pg_url: str
) -> None:
    first = Leases(store, 30, holder=FIRST).take("kdv-a", "kidsapp", TICK)
    assert isinstance(first, Lease)
    first.end(done=True)
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    found: list[BaseException | Lease | Busy] = []
    try:
        with other.connect() as conn:
            # The racer's take, uncommitted: the row locked, still done.
            tx = conn.begin()
            conn.execute(sa.text("UPDATE leases SET holder = holder WHERE customer = 'kdv-a'"))
            worker = threading.Thread(
                target=_take_or_error, args=(Leases(store, 30, holder="pod-b|2"), found)
            )
            worker.start()
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            for _ in range(500):  # until the take waits on the racer's row (bounded)
                if conn.execute(waiting).scalar_one() > 0 or not worker.is_alive():
                    break
                threading.Event().wait(0.01)
            # The racer takes it: not done, its own for the lease time.
            conn.execute(
                sa.text(
                    "UPDATE leases SET holder = :holder, token = 'racer', done_at = NULL, "
                    "taken_at = now(), expires_at = now() + interval '30 seconds' "
                    "WHERE customer = 'kdv-a'"
                ),
                {"holder": RACER},
            )
            tx.commit()
            worker.join(timeout=30)
    finally:
        other.dispose()
    assert len(found) == 1 and isinstance(found[0], Busy), found
    # It waited for the racer, then saw the racer's lease (not "another process": a row
    # skipped because it was locked).
    assert (found[0].why, found[0].holder) == ("held", RACER)
    assert 0 < found[0].wait_seconds <= 30
    holder = store.read("holder", lambda c: c.execute(sa.text("SELECT holder FROM leases")).all())
    assert [tuple(r) for r in holder] == [(RACER,)]


def test_a_take_again_waiting_past_the_lock_timeout_is_held_not_a_failure(pg_url: str) -> None:
    """Another transaction keeps the done row locked past the lock timeout (a process stalled
    in the transaction that ends or takes it): the person's take says the pair is held by
    another process (`run --once` asks again later), as the other takers (SKIP LOCKED) do,
    instead of failing with LockNotAvailable and stopping the rest of its pairs."""
    store = StateStore(pg_url, timeouts=Timeouts(lock_seconds=0.2))
    store.migrate()
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        first = Leases(store, 30, holder=FIRST).take("kdv-a", "kidsapp", TICK)
        assert isinstance(first, Lease)
        first.end(done=True)
        taker = Leases(store, 30, holder="pod-b|2")
        with other.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT 1 FROM leases FOR UPDATE"))
            busy = taker.take("kdv-a", "kidsapp", TICK, again=True)
            assert busy == Busy("kdv-a", "kidsapp", TICK, "held", "another process", 30.0)
        again = taker.take("kdv-a", "kidsapp", TICK, again=True)  # the lock gone: taken
        assert isinstance(again, Lease) and again.taken_from is None
    finally:
        other.dispose()
        store.close()


EARLIER = TICK - dt.timedelta(minutes=5)


@pytest.mark.parametrize("again", [False, True])
def test_a_take_waits_for_another_ticks_lease_being_taken_and_yields(
    store: StateStore, pg_url: str, again: bool
) -> None:
    """Another transaction has taken the previous tick's lease, not yet committed, when this
    process takes the next tick: its INSERT waits for that transaction (ux_leases_one_open),
    then yields, where a NOT EXISTS alone (its snapshot taken before that commit) would
    have let both run the pair. A scheduled take then reads who holds it; a take `again`,
    refused by the index, says another process."""
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    found: list[BaseException | Lease | Busy] = []

    def take() -> None:
        try:
            taker = Leases(store, 30, holder="pod-b|2")
            found.append(taker.take("kdv-a", "kidsapp", TICK, again=again))
        except BaseException as exc:  # noqa: BLE001  (the test reports it)
            found.append(exc)

    try:
        with other.connect() as conn:
            tx = conn.begin()
            conn.execute(
                sa.text(
                    "INSERT INTO leases VALUES ('kdv-a', 'kidsapp', :tick, :holder, 'racer', "
                    "now(), now() + interval '30 seconds', NULL, 0)"
                ),
                {"tick": EARLIER, "holder": RACER},
            )
            worker = threading.Thread(target=take)
            worker.start()
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            for _ in range(500):  # until the take waits on the racer's row (bounded)
                if conn.execute(waiting).scalar_one() > 0 or not worker.is_alive():
                    break
                threading.Event().wait(0.01)
            tx.commit()
            worker.join(timeout=30)
    finally:
        other.dispose()
    assert len(found) == 1 and isinstance(found[0], Busy), found
    assert (found[0].why, found[0].holder) == ("held", "another process" if again else RACER)
    holders = store.read(
        "holders", lambda c: c.execute(sa.text("SELECT holder FROM leases")).scalars().all()
    )
    assert holders == [RACER]


def test_takers_of_two_ticks_at_once_one_wins(pg_url: str) -> None:
    """Six processes (each its own state store) take the pair at the same instant, three in
    each of two ticks, scheduled or not: in every round exactly one runs it."""
    stores = [StateStore(pg_url) for _ in range(6)]
    stores[0].migrate()
    try:
        for round_ in range(8):
            tick = TICK + dt.timedelta(hours=2 * round_)
            start = threading.Barrier(len(stores))
            found: list[BaseException | Lease | Busy] = []

            def take(
                i: int,
                tick: dt.datetime = tick,
                start: threading.Barrier = start,
                found: list[BaseException | Lease | Busy] = found,
            ) -> None:
                leases = Leases(stores[i], 30, holder=f"pod-{i}|{i}")
                start.wait(timeout=30)
                try:
                    at = tick + dt.timedelta(hours=i % 2)
                    found.append(leases.take("kdv-a", "kidsapp", at, again=i % 3 == 0))
                except BaseException as exc:  # noqa: BLE001  (the test reports it)
                    found.append(exc)

            threads = [threading.Thread(target=take, args=(i,)) for i in range(len(stores))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            won = [t for t in found if isinstance(t, Lease)]
            assert len(found) == len(stores) and len(won) == 1, (round_, found)
            assert all(isinstance(t, Busy) for t in found if t not in won), found
            won[0].end(done=True)
    finally:
        for made in stores:
            made.close()


def test_a_scheduled_take_waiting_past_the_lock_timeout_on_another_tick_is_held(
    pg_url: str,
) -> None:
    """Another process ends the previous tick's lease in a transaction that stays open past
    the lock timeout: the next tick's scheduled take, which waits for it (ux_leases_one_open),
    says the pair is held by another process instead of failing with LockNotAvailable."""
    store = StateStore(pg_url, timeouts=Timeouts(lock_seconds=0.2))
    store.migrate()
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        first = Leases(store, 30, holder=FIRST).take("kdv-a", "kidsapp", EARLIER)
        assert isinstance(first, Lease)
        taker = Leases(store, 30, holder="pod-b|2")
        with other.connect() as conn, conn.begin():
            conn.execute(sa.text("UPDATE leases SET done_at = now(), expires_at = now()"))
            busy = taker.take("kdv-a", "kidsapp", TICK)
            assert busy == Busy("kdv-a", "kidsapp", TICK, "held", "another process", 30.0)
        again = taker.take("kdv-a", "kidsapp", TICK)  # that end committed: taken
        assert isinstance(again, Lease) and again.taken_from is None
    finally:
        other.dispose()
        store.close()
