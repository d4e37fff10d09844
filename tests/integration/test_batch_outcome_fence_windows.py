"""End to end, the windows of a takeover that the fence of worker/trailrows.py left open:
each row counted once by the runs' ends, SQLite and PostgreSQL state, SQLite product (every
product database for a holder whose product transaction is still in flight).

Run A of kdv-a × kidsapp deletes 30 old children (2 notes each) in batches of 10 (90 rows).
A is "starved" at a chosen step: the lease clock jumps past A's lease and run B (another
runner, on its own thread, as another process would be) takes the pair over, and settles
A's open batch 2; B pauses at a chosen step while A goes on. The sum of the runs'
`rows_changed` must be the 90 rows deleted, and no record of A may follow A's end.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from connectors.engines import Engines
from tests.inflight import LockWaits
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
from worker.app import ConnectorFactory, run_pairs
from worker.configload import Config
from worker.events import (
    BatchApplied,
    BatchIntent,
    BatchSettled,
    Event,
    Outcome,
    RunFinished,
    RunRecorded,
)
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify

WAIT = 60.0  # seconds; a step that takes this long is a hang, reported as such
ALL_ROWS = 90  # 30 children and their 60 notes


@pytest.fixture
def shared_state(state_url: str) -> Iterator[StateStore]:
    store = StateStore(state_url)
    yield store
    store.close()


class Takeover:
    """B: started from one of A's subscribers (A starved past its lease), on a thread of its
    own; `first` sees B's events before the trail does, `after` once it has."""

    def __init__(
        self,
        config: Config,
        url: str,
        state: StateStore,
        clock: Clock,
        lock_seconds: float | None = None,
    ) -> None:
        self.config, self.url, self.state, self.clock = config, url, state, clock
        # B's lock timeout; B then gets engines of its own (they are keyed by the timeouts).
        self.lock_seconds = lock_seconds
        self.engines = Engines()
        self.run_a = ""
        self.a_done = threading.Event()  # A's end is recorded (or refused)
        self.thread: threading.Thread | None = None
        self.reports: list[RunReport] = []
        self.logs: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def start(
        self,
        run_a: str,
        monkeypatch: pytest.MonkeyPatch,
        first: Callable[[Event], None],
        after: Callable[[Event], None],
    ) -> None:
        self.run_a = run_a
        self.clock.now += dt.timedelta(seconds=LEASE_SECONDS + 1)  # A starved past its lease
        monkeypatch.setattr("worker.run.active_runs", set)  # A's run is not one of B's own
        runner_b, _seen = runner_for(
            self.config, self.url, self.state, self.clock, "pod-b|2", first
        )
        runner_b.bus.subscribe(after)
        if self.lock_seconds is not None:
            assert isinstance(runner_b.connect, ConnectorFactory)
            runner_b.connect.engines = self.engines
            runner_b.connect.lock_seconds = self.lock_seconds

        def run_b() -> None:
            try:
                with structlog.testing.capture_logs() as logs:
                    self.reports = run_pairs(
                        runner_b, list(self.config.pairs()), NOW, dry_run=False
                    )
                self.logs = logs
            except BaseException as exc:  # noqa: BLE001  (reported by the test)
                self.error = exc

        self.thread = threading.Thread(target=run_b)
        self.thread.start()

    def a_ended(self, event: Event) -> None:
        """A's subscriber after the trail: A's end is recorded; B goes on, A waits for it."""
        if isinstance(event, RunRecorded) and event.run_id == self.run_a:
            self.a_done.set()
            if self.thread is not None:
                self.thread.join(timeout=WAIT)

    def check(self, report_a: RunReport) -> RunReport:
        """B ran and succeeded; every row deleted once and counted once by the runs' ends,
        and no record of A after A's end; the chain verifies. Returns B's report."""
        assert self.error is None, self.error
        assert self.thread is not None and not self.thread.is_alive()
        [report_b] = self.reports
        assert report_b.outcome is Outcome.SUCCEEDED, report_b.error
        assert report_a.run_id == self.run_a
        assert left_in(self.url) == ([31, 32], 4)
        trail = trail_of(self.state)
        ends = [i for i, (k, r, _p) in enumerate(trail) if k == "run.finished" and r == self.run_a]
        assert len(ends) == 1
        assert [k for k, r, _p in trail[ends[0] + 1 :] if r == self.run_a] == []
        runs = {r.run_id: r.rows_changed for r in self.state.recent_runs(5)}
        assert sum(runs.values()) == ALL_ROWS, runs
        result = verify(self.state)
        assert result.ok, result.reason
        return report_b


def _outcomes(state: StateStore, run_id: str) -> list[tuple[str, int]]:
    batch_kinds = ("batch.applied", "batch.failed", "batch.settled")
    return [(k, p["batch"]) for k, r, p in trail_of(state) if r == run_id and k in batch_kinds]


def test_a_refused_applied_before_the_taker_closes_the_run_ends_it_interrupted(
    tmp_path: Path, product_url: str, shared_state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B settles A's batch 2 (its rows are gone) and pauses before closing A's run; A's
    batch.applied of batch 2 is refused and A ends itself: interrupted, as a run whose
    lease was lost, counting batch 2 as the settlement does."""
    config = config_for(tmp_path, product_url)
    b = Takeover(config, product_url, shared_state, Clock())
    b_settled = threading.Event()

    def b_after(event: Event) -> None:
        if isinstance(event, BatchSettled) and event.batch == 2:
            b_settled.set()
            assert b.a_done.wait(WAIT), "A never ended"

    def a_first(event: Event) -> None:
        if isinstance(event, BatchApplied) and event.batch == 2 and b.thread is None:
            b.start(event.run_id, monkeypatch, lambda _e: None, b_after)
            assert b_settled.wait(WAIT), "B never settled batch 2"
            monkeypatch.undo()

    runner_a, _seen = runner_for(config, product_url, shared_state, b.clock, "pod-a|1", a_first)
    runner_a.bus.subscribe(b.a_ended)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)
    assert "settled by another run" in (report_a.error or "")
    b.check(report_a)
    assert _outcomes(shared_state, b.run_a) == [("batch.applied", 1), ("batch.settled", 2)]
    [end] = [p for k, r, p in trail_of(shared_state) if k == "run.finished" and r == b.run_a]
    assert (end["outcome"], end["rows_changed"]) == ("interrupted", 60)


def test_a_batch_begun_after_the_taker_closed_the_run_is_not_begun(
    tmp_path: Path, product_url: str, shared_state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A records batch 2's outcome before B's settlement (refused), B closes A's run as
    crashed (60 rows) and pauses; A, unaware its lease was lost, begins batch 3: its intent
    is refused and the batch rolls back. B deletes those rows itself."""
    config = config_for(tmp_path, product_url)
    b = Takeover(config, product_url, shared_state, Clock())
    b_settling, a_recorded, b_closed_a = threading.Event(), threading.Event(), threading.Event()

    def b_first(event: Event) -> None:
        if isinstance(event, BatchSettled) and event.batch == 2:
            b_settling.set()
            assert a_recorded.wait(WAIT), "A's batch.applied never reached the trail"

    def b_after(event: Event) -> None:
        if isinstance(event, RunRecorded) and event.run_id == b.run_a:
            b_closed_a.set()
            assert b.a_done.wait(WAIT), "A never ended"

    def a_first(event: Event) -> None:
        if isinstance(event, BatchApplied) and event.batch == 2 and b.thread is None:
            b.start(event.run_id, monkeypatch, b_first, b_after)
            assert b_settling.wait(WAIT), "B never came to settle batch 2"
            monkeypatch.undo()

    def a_after(event: Event) -> None:
        if isinstance(event, BatchApplied) and event.batch == 2 and not a_recorded.is_set():
            a_recorded.set()
            assert b_closed_a.wait(WAIT), "B never closed A's run"

    runner_a, _seen = runner_for(config, product_url, shared_state, b.clock, "pod-a|1", a_first)
    runner_a.bus.subscribe(a_after)
    runner_a.bus.subscribe(b.a_ended)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)
    assert "is not begun" in (report_a.error or "")
    report_b = b.check(report_a)
    assert _outcomes(shared_state, b.run_a) == [("batch.applied", 1), ("batch.applied", 2)]
    ends = {r.run_id: (r.outcome, r.rows_changed) for r in shared_state.recent_runs(5)}
    assert ends == {b.run_a: ("crashed", 60), report_b.run_id: ("succeeded", 30)}


def test_a_run_that_began_a_batch_after_its_batches_were_settled_is_not_closed(
    tmp_path: Path, product_url: str, shared_state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B reads A's batch 2 open; A records its outcome (B's settlement is then refused) and
    begins batch 3; B would close A's run as crashed now, counting batches 1 and 2 only.
    The close is refused (A has batch 3 open): A records batch 3 and ends itself."""
    config = config_for(tmp_path, product_url)
    b = Takeover(config, product_url, shared_state, Clock())
    b_settling, a_began_3, b_tried = threading.Event(), threading.Event(), threading.Event()

    def b_first(event: Event) -> None:
        if isinstance(event, BatchSettled) and event.batch == 2:
            b_settling.set()
            assert a_began_3.wait(WAIT), "A never began batch 3"

    def b_after(event: Event) -> None:  # sees A's crashed end, recorded or refused
        if isinstance(event, RunFinished) and event.run_id == b.run_a:
            b_tried.set()
            assert b.a_done.wait(WAIT), "A never ended"

    def a_first(event: Event) -> None:
        if isinstance(event, BatchApplied) and event.batch == 2 and b.thread is None:
            b.start(event.run_id, monkeypatch, b_first, b_after)
            assert b_settling.wait(WAIT), "B never came to settle batch 2"
            monkeypatch.undo()

    def a_after(event: Event) -> None:
        if isinstance(event, BatchIntent) and event.batch == 3 and not a_began_3.is_set():
            a_began_3.set()
            assert b_tried.wait(WAIT), "B never came to close A's run"

    runner_a, _seen = runner_for(config, product_url, shared_state, b.clock, "pod-a|1", a_first)
    runner_a.bus.subscribe(a_after)
    runner_a.bus.subscribe(b.a_ended)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    report_b = b.check(report_a)
    busy = [e["run_id"] for e in b.logs if e["event"] == "reconcile.run_in_progress"]
    assert busy == [b.run_a]
    assert _outcomes(shared_state, b.run_a) == [("batch.applied", n) for n in (1, 2, 3)]
    ends = {r.run_id: r.rows_changed for r in shared_state.recent_runs(5)}
    assert ends == {b.run_a: ALL_ROWS, report_b.run_id: 0}
    assert report_a.outcome is Outcome.SUCCEEDED, report_a.error  # it never saw its lease lost


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def any_product_url(request: pytest.FixtureRequest, product_url: str) -> str:
    """The product database of each kind (the state is SQLite)."""
    if request.param == "sqlite":
        return product_url
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    assert isinstance(url, str)
    return url


def test_a_settlement_read_while_the_holders_commit_is_in_flight_counts_its_rows(
    tmp_path: Path, any_product_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is starved right after batch 2's intent reached the trail, before its product
    COMMIT; B settles batch 2 meanwhile: it finds the rows there and waits for A's
    transaction, which A commits once B waits. The rows of batch 2 are gone: B's settlement
    counts them, once; A's own outcome is refused and A ends interrupted."""
    url = any_product_url
    config = config_for(tmp_path, url)
    b = Takeover(config, url, state, Clock())
    b_settled = threading.Event()

    def b_after(event: Event) -> None:
        if isinstance(event, BatchSettled) and event.batch == 2:
            b_settled.set()
            assert b.a_done.wait(WAIT), "A never ended"

    def a_after(event: Event) -> None:  # batch 2's intent is in the trail; no COMMIT yet
        if isinstance(event, BatchIntent) and event.batch == 2 and b.thread is None:
            with LockWaits(url) as locks:
                b.start(event.run_id, monkeypatch, lambda _e: None, b_after)
                assert b.thread is not None
                waited.append(locks.until_waiting(b.thread, unless=b_settled.is_set))

    def a_first(event: Event) -> None:  # A's own outcome of batch 2 after B's settlement
        if isinstance(event, BatchApplied) and event.batch == 2:
            assert b_settled.wait(WAIT), "B never settled batch 2"
            monkeypatch.undo()

    waited: list[bool] = []
    runner_a, _seen = runner_for(config, url, state, b.clock, "pod-a|1", a_first)
    runner_a.bus.subscribe(a_after)
    runner_a.bus.subscribe(b.a_ended)
    [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)

    assert b.error is None, b.error
    assert left_in(url) == ([31, 32], 4)  # batch 2's rows are gone
    counted = sum(
        sum(p["rows"].values())
        for k, _r, p in trail_of(state)
        if k in ("batch.applied", "batch.settled")
    )
    assert counted == ALL_ROWS, [(k, p.get("batch"), p.get("rows")) for k, _r, p in trail_of(state)]
    assert waited == [True], "B settled batch 2 without waiting for A's transaction"
    assert report_a.outcome is Outcome.INTERRUPTED, (report_a.outcome, report_a.error)
    assert "settled by another run" in (report_a.error or "")
    b.check(report_a)
    assert _outcomes(state, b.run_a) == [("batch.applied", 1), ("batch.settled", 2)]
    [settled] = [p for k, r, p in trail_of(state) if k == "batch.settled" and r == b.run_a]
    assert (settled["applied"], settled["not_applied"]) == (10, [])


def test_a_settler_facing_a_holder_in_flight_past_the_lock_timeout_fails_cleanly(
    tmp_path: Path, any_product_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stays starved in batch 2's transaction (its intent recorded, no COMMIT) while B
    runs: B's settlement waits for A's rows as long as B's lock timeout (0.2 s here; 1 s on
    MariaDB, which counts whole seconds), then B's run fails with an error naming the batch
    and the lock timeout, never a row's values. Nothing is settled and A's run is not
    closed: A commits, its own batch.applied stands, and each row is counted once."""
    url = any_product_url
    config = config_for(tmp_path, url)
    b = Takeover(config, url, state, Clock(), lock_seconds=0.2)

    def a_after(event: Event) -> None:  # batch 2's intent is in the trail; no COMMIT yet
        if isinstance(event, BatchIntent) and event.batch == 2 and b.thread is None:
            b.start(event.run_id, monkeypatch, lambda _e: None, lambda _e: None)
            assert b.thread is not None
            b.thread.join(WAIT)
            monkeypatch.undo()

    runner_a, _seen = runner_for(config, url, state, b.clock, "pod-a|1")
    runner_a.bus.subscribe(a_after)
    try:
        [report_a] = run_pairs(runner_a, list(config.pairs()), NOW, dry_run=False)
    finally:
        b.engines.dispose()

    assert b.error is None, b.error
    [report_b] = b.reports
    assert report_b.outcome is Outcome.FAILED, report_b.outcome
    error = report_b.error or ""
    assert f"batch 2 of run {b.run_a} (rule " in error, error
    assert "is not settled: its rows are locked" in error, error
    assert "cannot read rows of child: lock timeout" in error, error
    assert_no_personal_data(report_b)
    assert [k for k, _r, _p in trail_of(state) if k == "batch.settled"] == []
    assert _outcomes(state, b.run_a) == [("batch.applied", n) for n in (1, 2, 3)]
    assert report_a.outcome is Outcome.SUCCEEDED, report_a.error
    assert left_in(url) == ([31, 32], 4)
    ends = {r.run_id: (r.outcome, r.rows_changed) for r in state.recent_runs(5)}
    assert ends == {b.run_a: ("succeeded", ALL_ROWS), report_b.run_id: ("failed", 0)}
    result = verify(state)
    assert result.ok, result.reason
