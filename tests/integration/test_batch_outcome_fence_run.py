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
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import BatchApplied, Event, EventBus, Outcome
from worker.leases import Leases
from worker.run import Runner
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify

OLD = dt.date(2023, 1, 1)
RECENT = dt.date(2026, 11, 20)
LEASE_SECONDS = 60  # renewed every 20 s of real time: never within this test


class Clock:
    """The runs' and the leases' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()


def _config(tmp_path: Path, product_url: str) -> Config:
    config = load_config(
        kidsapp.write_config(
            tmp_path / "config",
            product=kidsapp.with_notes(batch_size=10),
            customers={"kdv-a": {}},
        )
    )
    config.raise_for_problems()
    old = [(i, 1, OLD) for i in range(1, 31)]
    kidsapp.create(product_url, [*old, (31, 1, RECENT), (32, 1, RECENT)], notes=2)
    return config


def _runner(
    config: Config, url: str, state: StateStore, clock: Clock, holder: str, *first: Any
) -> tuple[Runner, list[Event]]:
    """A runner whose leases are `holder`'s on `clock`; `first` subscribers see each event
    before the trail does."""
    bus = EventBus()
    for subscriber in first:
        bus.subscribe(subscriber)
    subscribe_state(bus, state, clock)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    runner = build_runner(
        config, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=clock, store=state
    )
    runner.leases = Leases(state, LEASE_SECONDS, clock=clock, holder=holder)
    return runner, seen


def _left(url: str) -> tuple[list[int], int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(sa.select(kidsapp.CHILD.c.id).order_by(kidsapp.CHILD.c.id))
            notes = conn.execute(sa.select(sa.func.count()).select_from(kidsapp.NOTE)).scalar()
            return list(ids.scalars()), int(notes or 0)
    finally:
        engine.dispose()


def _trail(state: StateStore) -> list[tuple[str, str | None, dict[str, Any]]]:
    with state.audit_snapshot() as (_head, records):
        return [(r.kind, r.run_id, json.loads(r.payload)) for r in records]


def test_a_run_whose_lease_was_taken_over_after_commit_records_no_second_outcome(
    tmp_path: Path, product_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, product_url)
    clock = Clock()
    taker: dict[str, Any] = {}

    def take_over(event: Event) -> None:
        if not isinstance(event, BatchApplied) or event.batch != 2 or taker:
            return
        taker["run_of"] = event.run_id
        clock.now += dt.timedelta(seconds=LEASE_SECONDS + 1)  # A starved past its lease
        # Another process: A's run is not among its own runs in progress.
        monkeypatch.setattr("worker.run.active_runs", set)
        runner_b, taker["seen"] = _runner(config, product_url, state, clock, "pod-b|2")

        def run_b() -> None:  # a thread of its own: its own context, as another process
            try:
                taker["reports"] = run_pairs(runner_b, list(config.pairs()), NOW, dry_run=False)
            except BaseException as exc:  # noqa: BLE001  (reported by the test below)
                taker["error"] = exc

        thread = threading.Thread(target=run_b)
        thread.start()
        thread.join(timeout=60)
        monkeypatch.undo()

    runner_a, _seen_a = _runner(config, product_url, state, clock, "pod-a|1", take_over)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert "error" not in taker, taker.get("error")
    [report_b] = taker["reports"]
    run_a = taker["run_of"]
    assert report_a.run_id == run_a
    assert report_b.outcome is Outcome.SUCCEEDED, report_b.error
    # A neither ends succeeded nor has batch 2 recorded twice.
    assert report_a.outcome is not Outcome.SUCCEEDED
    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)
    _assert_no_personal_data(report_a)

    trail = _trail(state)
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
    assert _left(product_url) == ([31, 32], 4)
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


def _assert_no_personal_data(report: RunReport) -> None:
    """The refused record's error names batch, rule and run, never a child's values."""
    text = report.error or ""
    for value in ("Kind ", "pinda", "notitie"):
        assert value not in text
