"""Idle runs' last records written together (worker/idleends.py) when the reply to that joint
transaction's COMMIT is lost on the wire (tests/faults.py: the transaction committed, the
worker cannot know): PostgreSQL state through a loopback proxy, the tick of
tests/integration/test_idle_ends.py (kdv-1 to 3 written together after kdv-4, then kdv-5 to 7).

Written again, by the store's retry (the same transaction) or, with no retry budget, by each
run alone, every record is found and kept once: each run has one run.started and one
run.finished, one row in `runs`, its lease done, and its report and `RunRecorded` say
succeeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests import kidsapp
from tests.faults import CommitProxy, on_the_wire
from tests.integration.test_idle_ends import CUSTOMERS, _config, _product, _records
from tests.integration.test_run_end_folded import query
from tests.support import NOW, PEPPER
from worker import idleends
from worker.app import build_runner, run_pairs, subscribe_state
from worker.events import Event, EventBus, Outcome, RunRecorded
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.verify import verify

pytestmark = pytest.mark.postgres


@pytest.fixture
def wire(pg_url: str) -> Iterator[tuple[CommitProxy, str]]:
    """A proxy to the test's (migrated) PostgreSQL state database, and the URL through it."""
    with on_the_wire(pg_url, migrate=True) as found:
        yield found


@pytest.mark.parametrize("budget", [5.0, 0.0])
def test_a_lost_reply_to_the_joint_commit_keeps_each_runs_records_once(
    tmp_path: Path,
    wire: tuple[CommitProxy, str],
    monkeypatch: pytest.MonkeyPatch,
    budget: float,
) -> None:
    proxy, url = wire
    store = StateStore(url, retry=RetryPolicy(budget_seconds=budget, sleep=lambda _s: None))
    config = _config(tmp_path)
    flush = idleends.IdleEnds.flush
    joint: list[int] = []

    def losing_the_first_joint_reply(self: idleends.IdleEnds) -> None:
        if len(self) > 1 and not joint:  # kdv-1 to 3, after kdv-4
            joint.append(len(self))
            proxy.arm(at_commit=1, lose="reply")
        flush(self)

    monkeypatch.setattr(idleends.IdleEnds, "flush", losing_the_first_joint_reply)
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    runner = build_runner(
        config,
        {kidsapp.URL_ENV: _product(tmp_path, "p.db")},
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        store=store,
    )
    try:
        with capture_logs() as logs:
            reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
        assert proxy.cut == 1 and joint == [3]
        # The lost reply was the joint transaction's (whose work begins with kdv-1's start).
        [kdv1] = [r.run_id for r in reports if r.customer == "kdv-1"]
        failed = [
            e["error"] for e in logs if e["event"] in ("state.retry", "state.joint_end_failed")
        ]
        assert len(failed) == 1 and f"recording run.started of run {kdv1}" in failed[0], failed
        assert {r.customer: r.outcome for r in reports} == dict.fromkeys(
            CUSTOMERS, Outcome.SUCCEEDED
        )
        kinds = Counter((c, kind) for c, kind, _ in _records(store) if kind.startswith("run."))
        assert kinds == Counter(
            {(c, kind): 1 for c in CUSTOMERS for kind in ("run.started", "run.finished")}
        )
        outcomes = sorted((r.customer, r.outcome) for r in query(store, "SELECT * FROM runs"))
        assert outcomes == [(c, "succeeded") for c in CUSTOMERS]
        done = {r.customer: r.done_at is not None for r in query(store, "SELECT * FROM leases")}
        assert done == dict.fromkeys(CUSTOMERS, True)
        recorded: list[Any] = [e for e in seen if isinstance(e, RunRecorded)]
        assert sorted((e.customer, e.outcome, e.stored) for e in recorded) == [
            (c, Outcome.SUCCEEDED, True) for c in CUSTOMERS
        ]
        [(head,)] = query(store, "SELECT seq FROM audit_head")
        [(last,)] = query(store, "SELECT max(seq) FROM checkpoints")
        assert last == head
        found = verify(store)
        assert found.ok and not found.open_runs and not found.stray_ends, found
    finally:
        store.close()
