"""A COMMIT whose reply is lost on the wire (a loopback proxy cuts the connection), and a
state database that goes away after COMMIT: the trail still holds each batch's true counts.

Real PostgreSQL for the product and the state database; the fault is on the wire or in the
server, not a mock of either.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import dbs, kidsapp
from tests.faults import CommitProxy, on_the_wire
from tests.support import NOW, PEPPER
from worker.app import build_runner, reconcile_all, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import BatchApplied, BatchFailed, BatchSettled, Event, EventBus, Outcome
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.verify import verify

OLD = dt.date(2023, 1, 1)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def proxy(pg_url: str) -> Iterator[tuple[CommitProxy, str]]:
    """A proxy to the test's PostgreSQL database, and the URL through it."""
    with on_the_wire(pg_url) as found:
        yield found


def setup(tmp_path: Path, pg_url: str, children: int) -> Config:
    config = load_config(
        kidsapp.write_config(
            tmp_path / "config",
            product=kidsapp.with_notes(batch_size=10),
            customers={"kdv-a": {}},
        )
    )
    config.raise_for_problems()
    kidsapp.create(pg_url, [(i, 1, OLD) for i in range(1, children + 1)], notes=2)
    return config


def run(config: Config, url: str, state: StateStore, extra: Any = None) -> tuple[Any, Recorder]:
    bus = EventBus()
    subscribe_state(bus, state, lambda: NOW)
    seen = Recorder()
    bus.subscribe(seen)
    if extra is not None:
        bus.subscribe(extra)
    runner = build_runner(
        config,
        {kidsapp.URL_ENV: url},
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        store=state,
        retry=RetryPolicy(budget_seconds=5, sleep=lambda _s: None),
    )
    return run_pairs(runner, list(config.pairs()), NOW, dry_run=False), seen


def counted(seen: Recorder) -> dict[str, int]:
    """Rows per table the trail says were changed: applied and settled batches."""
    total: dict[str, int] = {}
    for event in [*seen.of(BatchApplied), *seen.of(BatchSettled)]:
        for table, n in event.rows.items():
            total[table] = total.get(table, 0) + n
    return total


def in_trail(state: StateStore) -> dict[str, int]:
    """Rows per table the stored audit trail records as changed (applied and settled)."""
    total: dict[str, int] = {}
    with state.audit_snapshot() as (_head, records):
        for record in records:
            if record.kind in ("batch.applied", "batch.settled"):
                for table, n in json.loads(record.payload)["rows"].items():
                    total[table] = total.get(table, 0) + n
    return total


def left(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            child = conn.execute(sa.select(sa.func.count()).select_from(kidsapp.CHILD)).scalar()
            notes = conn.execute(sa.select(sa.func.count()).select_from(kidsapp.NOTE)).scalar()
    finally:
        engine.dispose()
    return int(child or 0), int(notes or 0)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()


def test_a_lost_commit_reply_is_counted_as_what_the_transaction_did(
    tmp_path: Path, pg_url: str, proxy: tuple[CommitProxy, str], state: StateStore
) -> None:
    """The reply to the 2nd batch's COMMIT never arrives, but the commit happened: the trail
    counts that batch's 10 children and 20 notes, not the 0 a blind retry would find."""
    wire, through = proxy
    config = setup(tmp_path, pg_url, children=30)
    wire.arm(at_commit=2, lose="reply")

    reports, seen = run(config, through, state)

    assert wire.cut == 1
    assert reports[0].outcome is Outcome.SUCCEEDED, reports[0].error
    assert left(pg_url) == (0, 0)
    assert counted(seen) == in_trail(state) == {"child": 30, "child_note": 60}
    assert [dict(e.rows) for e in seen.of(BatchApplied)] == [{"child_note": 20, "child": 10}] * 3
    assert seen.of(BatchFailed) == []
    assert verify(state).ok


def test_a_lost_commit_is_rolled_back_and_done_again(
    tmp_path: Path, pg_url: str, proxy: tuple[CommitProxy, str], state: StateStore
) -> None:
    """The COMMIT itself never reaches the server: nothing of that batch is committed; the
    trail says so (batch.failed) and the same rows are done again, counted once."""
    wire, through = proxy
    config = setup(tmp_path, pg_url, children=30)
    wire.arm(at_commit=2, lose="commit")

    reports, seen = run(config, through, state)

    assert wire.cut == 1
    assert reports[0].outcome is Outcome.SUCCEEDED, reports[0].error
    assert left(pg_url) == (0, 0)
    assert counted(seen) == in_trail(state) == {"child": 30, "child_note": 60}
    (failed,) = seen.of(BatchFailed)
    assert failed.error.startswith("LostCommit")
    assert verify(state).ok


def test_a_state_database_down_after_commit_leaves_an_intent_the_next_start_settles(
    tmp_path: Path, pg_url: str, pg_server_url: str
) -> None:
    """The state database stops accepting connections right after the 2nd batch's intent:
    that batch commits, its applied record cannot be written, the run fails. With the state
    database back, the next start settles the intent as applied (its rows are gone), closes
    the run as crashed, and the trail counts every row once."""
    config = setup(tmp_path, pg_url, children=30)
    with dbs.postgres_database(pg_server_url) as state_url:
        name = sa.make_url(state_url).database
        admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")

        def take_down(event: Event) -> None:
            if getattr(event, "name", "") == "batch.intent" and getattr(event, "batch", 0) == 2:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name"
                        ),
                        {"name": name},
                    )

        state = StateStore(state_url, retry=RetryPolicy(budget_seconds=1, sleep=lambda _s: None))
        state.migrate()
        try:
            reports, first = run(config, pg_url, state, extra=take_down)
        finally:
            state.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        assert reports[0].outcome is Outcome.FAILED
        assert left(pg_url) == (10, 20)  # batches 1 and 2 committed; 2 has no applied record

        state = StateStore(state_url)
        try:
            unsettled = verify(state)
            assert not unsettled.ok
            assert len(unsettled.unsettled) == 1 and len(unsettled.open_runs) == 1
            bus = EventBus()
            subscribe_state(bus, state, lambda: NOW)
            settled = Recorder()
            bus.subscribe(settled)
            pairs = reconcile_all(config, {kidsapp.URL_ENV: pg_url}, bus, state, pepper=PEPPER)
            assert pairs == 1
            (settlement,) = settled.of(BatchSettled)
            assert (settlement.batch, settlement.applied, settlement.not_applied) == (2, 10, ())
            assert dict(settlement.rows) == {"child_note": 20, "child": 10}
            assert [r.outcome for r in state.recent_runs(5)] == ["crashed"]
            assert verify(state).ok
            reports, _rest = run(config, pg_url, state)
            assert reports[0].outcome is Outcome.SUCCEEDED, reports[0].error
            result = verify(state)
            assert result.ok, result.reason
            # What the trail itself records, applied and settled batches of all three runs.
            assert in_trail(state) == {"child": 30, "child_note": 60}
        finally:
            state.close()
    assert first.of(BatchApplied)  # the first run did get batch 1 recorded
    assert left(pg_url) == (0, 0)
