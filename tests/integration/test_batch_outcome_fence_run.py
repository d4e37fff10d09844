"""End to end, the fence of worker/trailrows.py: one outcome per batch when a run's lease is
taken over between its product COMMIT and its `batch.applied` (SQLite state and product).

Run A of kdv-a × kidsapp deletes 30 old children (2 notes each) in batches of 10. Right after
batch 2's COMMIT, before its `batch.applied` reaches the trail, A is "starved": the lease clock
jumps past A's lease and run B (another runner, on its own thread, as another process would
be) takes the pair's lease over, settles A's open batch 2 as applied (its rows are gone),
closes A's run as crashed and deletes the last 10 children itself. Then A goes on: its
`batch.applied` of batch 2 is refused, and its run ends without a second outcome for it.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fence_support import (
    LEASE_SECONDS,
    Clock,
    assert_no_personal_data,
    config_for,
    left_in,
    runner_for,
    trail_of,
)
from tests.support import NOW
from worker.app import run_pairs
from worker.events import BatchApplied, Event, Outcome
from worker.state import StateStore
from worker.verify import verify


def test_a_run_whose_lease_was_taken_over_after_commit_records_no_second_outcome(
    tmp_path: Path, product_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, product_url)
    clock = Clock()
    taker: dict[str, Any] = {}

    def take_over(event: Event) -> None:
        if not isinstance(event, BatchApplied) or event.batch != 2 or taker:
            return
        taker["run_of"] = event.run_id
        clock.now += dt.timedelta(seconds=LEASE_SECONDS + 1)  # A starved past its lease
        # Another process: A's run is not among its own runs in progress.
        monkeypatch.setattr("worker.run.active_runs", set)
        runner_b, taker["seen"] = runner_for(config, product_url, state, clock, "pod-b|2")

        def run_b() -> None:  # a thread of its own: its own context, as another process
            try:
                taker["reports"] = run_pairs(runner_b, list(config.pairs()), NOW, dry_run=False)
            except BaseException as exc:  # noqa: BLE001  (reported by the test below)
                taker["error"] = exc

        thread = threading.Thread(target=run_b)
        thread.start()
        thread.join(timeout=60)
        monkeypatch.undo()

    runner_a, _seen_a = runner_for(config, product_url, state, clock, "pod-a|1", take_over)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert "error" not in taker, taker.get("error")
    [report_b] = taker["reports"]
    run_a = taker["run_of"]
    assert report_a.run_id == run_a
    assert report_b.outcome is Outcome.SUCCEEDED, report_b.error
    # A neither ends succeeded nor has batch 2 recorded twice.
    assert report_a.outcome is not Outcome.SUCCEEDED
    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)
    assert_no_personal_data(report_a)

    trail = trail_of(state)
    outcomes = [
        kind
        for kind, run_id, payload in trail
        if run_id == run_a
        and payload.get("batch") == 2
        and kind in ("batch.applied", "batch.failed", "batch.settled")
    ]
    assert outcomes == ["batch.settled"]
    assert "settled by another run" in (report_a.error or "")
    applied_a = [p["batch"] for k, r, p in trail if k == "batch.applied" and r == run_a]
    assert applied_a == [1]
    [settled] = [p for k, _r, p in trail if k == "batch.settled"]
    assert (settled["batch"], settled["applied"], settled["settled_by"]) == (2, 10, report_b.run_id)
    # Every row deleted once, and counted once by the trail.
    assert left_in(product_url) == ([31, 32], 4)
    counted: dict[str, int] = {}
    for kind, _run, payload in trail:
        if kind in ("batch.applied", "batch.settled"):
            for table, n in payload["rows"].items():
                counted[table] = counted.get(table, 0) + n
    assert counted == {"child": 30, "child_note": 60}
    finished = {r: p["outcome"] for k, r, p in trail if k == "run.finished"}
    assert finished == {run_a: "crashed", report_b.run_id: "succeeded"}
    runs = {r.run_id: r.outcome for r in state.recent_runs(5)}
    assert runs == finished
    result = verify(state)
    assert result.ok, result.reason
