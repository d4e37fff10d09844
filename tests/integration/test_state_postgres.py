"""The state store and the audit chain on a real PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.audit import AuditTrail
from worker.checkpoints import Checkpoint, Checkpointer
from worker.errors import StateError
from worker.events import BatchApplied, BatchIntent, Event, Outcome, RunFinished, RunStarted
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.state.models import metadata
from worker.verify import verify

START = dt.datetime(2025, 3, 1, 2, 0, tzinfo=dt.UTC)


class Clock:
    """A thread-safe clock advancing one millisecond per reading."""

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return START + dt.timedelta(milliseconds=next(self._ticks))


def run_events(run_id: str, batches: int) -> list[Event]:
    common = {"run_id": run_id, "customer": "bso-de-vlinder", "product": "konnect"}
    rule = {"rule": "parent-after-end", "action": "delete", "table": "parents"}
    events: list[Event] = [RunStarted(**common, at=START, dry_run=False)]
    for n in range(batches):
        keys = tuple(
            hmac.new(b"pepper", f"{run_id}-{n}-{i}".encode(), hashlib.sha256).hexdigest()
            for i in range(2)
        )
        events += [
            BatchIntent(**common, **rule, batch=n, key_hashes=keys, cutoff=START.date()),
            BatchApplied(
                **common,
                **rule,
                batch=n,
                rows={"parents": 2},
                categories=("email",),
                duration_seconds=0.0,
            ),
        ]
    processed = {("parent-after-end", "delete"): {"parents": 2 * batches}}
    events.append(
        RunFinished(
            **common,
            outcome=Outcome.SUCCEEDED,
            at=START + dt.timedelta(minutes=5),
            duration_seconds=300.0,
            processed=processed,
            dry_run=False,
        )
    )
    return events


@pytest.fixture
def store(pg_url: str) -> Iterator[StateStore]:
    store = StateStore(pg_url)
    store.migrate()
    yield store
    store.close()


def execute(url: str, statement: str) -> None:
    """Tamper with the database behind the store's back."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:  # noqa: BLE001  (collected and asserted by the caller)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_recorded_run_verifies_and_tampering_is_found(store: StateStore, pg_url: str) -> None:
    """The chain verifies on PostgreSQL; an altered payload and a removed row are named."""
    trail = AuditTrail(store, Clock())
    for event in run_events("a" * 32, batches=3):
        trail(event)
    assert (verify(store).ok, verify(store).checked) == (True, 8)
    (run,) = store.recent_runs(1)
    assert (run.outcome, run.rows_changed, run.finished_at) == (
        "succeeded",
        6,
        START + dt.timedelta(minutes=5),
    )

    execute(pg_url, "UPDATE audit_events SET payload = replace(payload, '2', '1') WHERE seq = 5")
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert result.reason == "event 5: content does not match its hash"

    execute(pg_url, "DELETE FROM audit_events WHERE seq = 5")
    result = verify(store)
    assert (result.first_bad_seq, result.reason) == (
        5,
        "event 6: follows event 4; event 5 is missing",
    )


def test_times_verify_whatever_the_session_time_zone(pg_url: str) -> None:
    """Timestamps read back in a non-UTC session zone still hash to the same chain."""
    execute(
        pg_url,
        f"ALTER DATABASE {sa.engine.make_url(pg_url).database} SET timezone = 'Asia/Kolkata'",
    )
    store = StateStore(pg_url)
    try:
        store.migrate()
        trail = AuditTrail(store, Clock())
        for event in run_events("b" * 32, batches=1):
            trail(event)
        result = verify(store)
        assert result.ok, result.reason
        assert store.recent_runs(1)[0].started_at == START
    finally:
        store.close()


def test_concurrent_replicas_never_fork_the_chain(store: StateStore, pg_url: str) -> None:
    """Four appenders, each with its own engine like separate replicas, keep one chain."""
    stores = [StateStore(pg_url) for _ in range(4)]
    clock = Clock()
    try:

        def work(n: int) -> None:
            trail = AuditTrail(stores[n], clock)
            for event in run_events(f"{n:032x}", batches=10):
                trail(event)

        assert in_threads(4, work) == []
    finally:
        for other in stores:
            other.close()
    result = verify(store, batch_size=10)
    assert (result.ok, result.checked) == (True, 4 * 22), result.reason


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    """Concurrent migrate() calls serialise on an advisory lock; all succeed, schema at head."""
    stores = [StateStore(pg_url) for _ in range(3)]
    try:
        with pytest.raises(StateError, match="run `retention-worker migrate`"):
            stores[0].check()
        assert in_threads(3, lambda n: stores[n].migrate()) == []
        for store in stores:
            store.check()
        assert verify(stores[0]).ok
    finally:
        for store in stores:
            store.close()


def test_models_and_migrations_agree_on_postgres(store: StateStore, pg_url: str) -> None:
    """The migrated PostgreSQL schema matches the tables the code describes."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_state_writes_survive_a_killed_connection(pg_url: str) -> None:
    """The state database drops the connection inside the 3rd and 5th audit appends (a
    failover): each append is retried, the trail holds every event exactly once and verifies."""
    store = StateStore(pg_url, retry=RetryPolicy(sleep=lambda _s: None))
    store.migrate()
    execute(
        pg_url,
        "CREATE SEQUENCE kill_switch;"
        " CREATE FUNCTION kill_some() RETURNS trigger AS $$ BEGIN"
        " IF nextval('kill_switch') IN (3, 5) THEN PERFORM pg_terminate_backend(pg_backend_pid());"
        " END IF; RETURN NEW; END $$ LANGUAGE plpgsql;"
        " CREATE TRIGGER kill_some BEFORE INSERT ON audit_events"
        " FOR EACH ROW EXECUTE FUNCTION kill_some()",
    )
    try:
        events = run_events("d" * 32, batches=3)
        trail = AuditTrail(store, Clock())
        for event in events:
            trail(event)
        with store.audit_snapshot() as (_head, records):
            kinds = [r.kind for r in records]
        result = verify(store)
    finally:
        store.close()
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        fired = conn.execute(sa.text("SELECT last_value FROM kill_switch")).scalar_one()
    engine.dispose()
    assert fired >= len(events) + 2  # two inserts were killed and done again
    assert kinds == [e.name for e in events]
    assert result.ok, result.reason


def test_two_processes_checkpointing_one_head_both_succeed(store: StateStore, pg_url: str) -> None:
    """Replicas race to checkpoint the same head: while another session's insert of that
    checkpoint is uncommitted, `make` waits on it and then stores nothing more, without an
    error (before: it saw no row, inserted, and failed with a unique violation)."""
    trail = AuditTrail(store, Clock())
    for event in run_events("c" * 32, batches=1):
        trail(event)
    seq, hash_ = store.read(
        "head", lambda c: tuple(c.execute(sa.text("SELECT seq, hash FROM audit_head")).one())
    )
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    done: list[BaseException | Checkpoint] = []
    try:
        with other.connect() as conn:
            tx = conn.begin()
            conn.execute(
                sa.text("INSERT INTO checkpoints (seq, hash, at) VALUES (:s, :h, :a)"),
                {"s": seq, "h": hash_, "a": START},
            )
            worker = threading.Thread(
                target=lambda: done.append(_make_or_error(Checkpointer(store, None)))
            )
            worker.start()
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            for _ in range(500):  # until make() waits on our uncommitted row (bounded)
                if conn.execute(waiting).scalar_one() > 0:
                    break
                threading.Event().wait(0.01)
            else:
                pytest.fail("make() never waited on the other session's checkpoint")
            tx.commit()
            worker.join(timeout=30)
    finally:
        other.dispose()
    assert len(done) == 1 and isinstance(done[0], Checkpoint), done
    assert (done[0].seq, done[0].hash) == (seq, hash_)
    stored = store.read("list", lambda c: c.execute(sa.text("SELECT seq FROM checkpoints")).all())
    assert [tuple(r) for r in stored] == [(seq,)]


def _make_or_error(checkpointer: Checkpointer) -> BaseException | Checkpoint:
    try:
        return checkpointer.make(START)
    except BaseException as exc:  # noqa: BLE001  (the test reports it)
        return exc
