"""A run's checkpoint and its lease's end ride in the transaction of its last records
(worker/runend.py `_queue_end`, worker/state/gather.py), on SQLite and PostgreSQL state:

- an idle run commits twice on the state database: its lease taken, then everything else;
- the checkpoint made with a run covers that run's end (run.finished), and is published
  only once stored;
- a flush the database refuses because another process closed the run (RunClosed) still
  ends the lease, not done, in a transaction of its own;
- a lease taken over before the run's end is never marked done by it;
- a checkpoint the database refuses is dropped: the run's records, its outcome and its
  lease's end are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from tests.integration import run_end_support
from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids
from tests.support import NOW, PEPPER
from worker import trailrows
from worker.app import build_runner, run_pairs, subscribe_state
from worker.events import CheckpointMade, Event, EventBus, Outcome, RunFinished
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify

store = run_end_support.store  # the fixtures, by name (pytest finds them here)
product_url = run_end_support.product_url


def tick(
    tmp_path: Path,
    store: StateStore,
    product_url: str,
    also: Callable[[Event], None] | None = None,
) -> tuple[RunReport, list[Event]]:
    """One run of customer a (`also` subscribed after the state's subscribers)."""
    config = write_config(tmp_path / "config", PRODUCT.replace("STATEMENT", "60"), CUSTOMERS)
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    if also is not None:
        bus.subscribe(also)
    runner = build_runner(
        config, {"KIDS_A_URL": product_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=store
    )
    pairs = [(c, p) for c, p in config.pairs() if c.customer == "a"]
    [report] = run_pairs(runner, pairs, NOW, dry_run=False)
    return report, seen


def query(store: StateStore, sql: str) -> list[Any]:
    with store._engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def outside(store: StateStore, sql: str, **params: Any) -> None:
    """A write by another process (its own engine and connection)."""
    engine = sa.create_engine(store._engine.url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


class Commits:
    """How many transactions the store's engine commits while the block runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def _commit(self, _conn: Any) -> None:
        self.count += 1

    def __enter__(self) -> Commits:
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "commit", self._commit)


def test_an_idle_run_commits_twice(tmp_path: Path, store: StateStore, product_url: str) -> None:
    first, _ = tick(tmp_path, store, product_url)  # deletes ids 1 and 2
    assert first.outcome is Outcome.SUCCEEDED, first.error
    with Commits(store._engine) as commits:
        idle, seen = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert ids(product_url) == [3]
    assert commits.count == 2  # the lease taken; the run's records, checkpoint and lease's end
    [lease] = query(store, "SELECT done_at, expires_at FROM leases")
    assert lease.done_at is not None and lease.done_at == lease.expires_at
    [made] = [e for e in seen if isinstance(e, CheckpointMade)]
    [(seq, hash_)] = query(store, "SELECT seq, hash FROM checkpoints ORDER BY seq DESC LIMIT 1")
    assert (made.seq, made.hash) == (seq, hash_)
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_the_checkpoint_covers_the_runs_end(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    for _ in range(2):  # a run that works, then an idle one
        report, seen = tick(tmp_path, store, product_url)
        assert report.outcome is Outcome.SUCCEEDED, report.error
        [(seq, hash_)] = query(
            store,
            "SELECT seq, hash FROM audit_events WHERE kind = 'run.finished' "
            f"AND run_id = '{report.run_id}'",
        )
        [head] = query(store, "SELECT seq, hash FROM audit_head")
        assert tuple(head) == (seq, hash_)  # the run's end is the head
        [made] = [e for e in seen if isinstance(e, CheckpointMade)]
        assert (made.seq, made.hash) == (seq, hash_)
        assert seen.index(made) > max(i for i, e in enumerate(seen) if isinstance(e, RunFinished))
    stored = query(store, "SELECT seq FROM checkpoints ORDER BY seq")
    assert len(stored) == 2


def test_a_run_closed_by_another_still_releases_its_lease(
    tmp_path: Path, store: StateStore, product_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ends: list[str] = []
    real_finish = trailrows.finish_run_in

    def finish(conn: Any, run_id: str, *args: Any) -> None:
        ends.append(run_id)
        real_finish(conn, run_id, *args)

    monkeypatch.setattr(trailrows, "finish_run_in", finish)

    def close_it(found: Event) -> None:  # another process closes the run before its flush
        if isinstance(found, RunFinished):  # its start was stored with its first intent
            outside(
                store,
                "UPDATE runs SET outcome = 'crashed', finished_at = :at, error = 'closed'"
                " WHERE run_id = :run",
                run=found.run_id,
                at=NOW,
            )

    with capture_logs() as logs, Commits(store._engine) as commits:
        report, seen = tick(tmp_path, store, product_url, close_it)
    assert report.outcome is Outcome.INTERRUPTED
    assert "already ended (crashed)" in (report.error or "")
    assert any(e["event"] == "run.closed_by_another" for e in logs)
    # The lease is released (deleted, as for an interrupted run), not marked done.
    assert query(store, "SELECT * FROM leases") == []
    # The lease; the batch's intent (with the run's start); its outcome; the lease's release
    # alone (the flush that carried the run's end, the checkpoint and the lease's end
    # rolled back).
    assert commits.count == 4
    # Refused by the run's own end, the flush is not written again without its optional or
    # droppable work: none of them was to blame.
    assert len(ends) == 1
    assert not [e for e in seen if isinstance(e, CheckpointMade)]
    assert query(store, "SELECT count(*) FROM checkpoints") == [(0,)]


def test_a_lease_taken_over_is_not_marked_done(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    def take_over(found: Event) -> None:  # another process took the lease over meanwhile
        if isinstance(found, RunFinished):
            outside(store, "UPDATE leases SET holder = 'other|1', token = 'theirs'")

    report, _ = tick(tmp_path, store, product_url, take_over)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    [lease] = query(store, "SELECT holder, token, done_at FROM leases")
    assert (lease.holder, lease.token, lease.done_at) == ("other|1", "theirs", None)
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_a_refused_checkpoint_keeps_the_runs_records(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    with store._engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE checkpoints RENAME TO checkpoints_away"))
    with capture_logs() as logs:
        report, seen = tick(tmp_path, store, product_url)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(product_url) == [3]
    assert [e["event"] for e in logs if e["event"] == "audit.checkpoint_failed"]
    assert not [e for e in seen if isinstance(e, CheckpointMade)]
    [run] = query(store, "SELECT outcome FROM runs")
    assert run.outcome == "succeeded"
    kinds = [k for (k,) in query(store, "SELECT kind FROM audit_events ORDER BY seq")]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    [lease] = query(store, "SELECT done_at FROM leases")
    assert lease.done_at is not None  # the lease's end was kept with the records
    history = query(store, "SELECT count(*) FROM rule_history")
    assert history == [(1,)]
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
