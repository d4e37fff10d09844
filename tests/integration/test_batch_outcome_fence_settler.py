"""End to end, the reverse order of worker/trailrows.py's fence: a taker that read a batch
open settles it only if its holder did not record the batch's outcome meanwhile (SQLite and
PostgreSQL state, SQLite product).

Run A of kdv-a × kidsapp deletes 30 old children (2 notes each) in batches of 10. Right after
batch 2's COMMIT, before its `batch.applied` reaches the trail, A is "starved": the lease clock
jumps past A's lease and run B (another runner, on its own thread, as another process would
be) takes the pair's lease over, reads A's batch 2 open and finds its rows gone. Before B's
`batch.settled` reaches the trail, A wakes and records its `batch.applied`. B's settlement is
then refused; B takes it as settled already (no failure of its own), closes A's run as
crashed and deletes the last 10 children itself. Batch 2 has one outcome: A's own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.integration.fence_support import (
    LEASE_SECONDS,
    Clock,
    config_for,
    left_in,
    runner_for,
    trail_of,
)
from tests.support import NOW
from worker.app import run_pairs
from worker.events import BatchApplied, BatchSettled, Event, Outcome
from worker.state import StateStore
from worker.verify import verify

WAIT = 60.0  # seconds; a step that takes this long is a hang, reported as such


@pytest.fixture
def shared_state(state_url: str) -> Iterator[StateStore]:
    store = StateStore(state_url)
    yield store
    store.close()


def test_a_settlement_read_before_the_holders_outcome_is_not_recorded_after_it(
    tmp_path: Path, product_url: str, shared_state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = shared_state
    config = config_for(tmp_path, product_url)
    clock = Clock()
    b_settling = threading.Event()  # B has read batch 2 open and publishes its settlement
    a_recorded = threading.Event()  # A's batch.applied of batch 2 is in the trail
    taker: dict[str, Any] = {}

    def hold_b_settlement(event: Event) -> None:
        """B's first subscriber: its settlement waits for A's outcome to be recorded."""
        if isinstance(event, BatchSettled) and event.batch == 2:
            taker["settled_run"] = event.run_id
            b_settling.set()
            assert a_recorded.wait(WAIT), "A's batch.applied never reached the trail"

    def start_taker(event: Event) -> None:
        """A's first subscriber: on batch 2's outcome, B takes over and reads it open."""
        if not isinstance(event, BatchApplied) or event.batch != 2 or "thread" in taker:
            return
        taker["run_of"] = event.run_id
        clock.now += dt.timedelta(seconds=LEASE_SECONDS + 1)  # A starved past its lease
        # Another process: A's run is not among its own runs in progress.
        monkeypatch.setattr("worker.run.active_runs", set)
        runner_b, taker["seen"] = runner_for(
            config, product_url, state, clock, "pod-b|2", hold_b_settlement
        )

        def run_b() -> None:  # a thread of its own: its own context, as another process
            try:
                with structlog.testing.capture_logs() as logs:
                    taker["reports"] = run_pairs(runner_b, list(config.pairs()), NOW, dry_run=False)
                taker["logs"] = logs
            except BaseException as exc:  # noqa: BLE001  (reported by the test below)
                taker["error"] = exc

        taker["thread"] = thread = threading.Thread(target=run_b)
        thread.start()
        assert b_settling.wait(WAIT), "B never came to settle batch 2"
        monkeypatch.undo()

    def let_taker_go_on(event: Event) -> None:
        """A's subscriber after the trail: A's outcome is recorded; B goes on, A waits."""
        if isinstance(event, BatchApplied) and event.batch == 2 and not a_recorded.is_set():
            a_recorded.set()
            taker["thread"].join(timeout=WAIT)

    runner_a, _seen = runner_for(config, product_url, state, clock, "pod-a|1", start_taker)
    runner_a.bus.subscribe(let_taker_go_on)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert "error" not in taker, taker.get("error")
    assert not taker["thread"].is_alive()
    [report_b] = taker["reports"]
    run_a = taker["run_of"]
    assert taker["settled_run"] == run_a
    # B's refused settlement is no failure of B's: A's outcome stands.
    assert report_b.outcome is Outcome.SUCCEEDED, report_b.error
    assert [
        (e["run_id"], e["batch"])
        for e in taker["logs"]
        if e["event"] == "reconcile.batch_closed_already"
    ] == [(run_a, 2)]
    [settled] = [e for e in taker["logs"] if e["event"] == "reconcile.settled"]
    assert (settled["batches"], settled["rows"], settled["runs_closed"]) == (0, 0, 1)
    # A's run was closed as crashed by B (its lease was taken): A reports it interrupted.
    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)

    trail = trail_of(state)
    outcomes = [
        (kind, payload["batch"])
        for kind, run_id, payload in trail
        if run_id == run_a and kind in ("batch.applied", "batch.failed", "batch.settled")
    ]
    assert outcomes == [("batch.applied", 1), ("batch.applied", 2)]
    # Every row deleted once, and counted once by the trail.
    assert left_in(product_url) == ([31, 32], 4)
    counted: dict[str, int] = {}
    for kind, _run, payload in trail:
        if kind in ("batch.applied", "batch.settled"):
            for table, n in payload["rows"].items():
                counted[table] = counted.get(table, 0) + n
    assert counted == {"child": 30, "child_note": 60}
    finished = {r: p for k, r, p in trail if k == "run.finished"}
    assert {r: p["outcome"] for r, p in finished.items()} == {
        run_a: "crashed",
        report_b.run_id: "succeeded",
    }
    # A's crashed end counts what its trail says it changed: batches 1 and 2.
    assert finished[run_a]["rows_changed"] == 60
    result = verify(state)
    assert result.ok, result.reason
