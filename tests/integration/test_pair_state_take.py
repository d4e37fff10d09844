"""Attacks on the lease take that reads a pair's state (worker/run.py, worker/pairstate.py
`PAIR_STATE_COLUMNS` in worker/leasesql.py `LeaseSQL.take`), on SQLite and PostgreSQL
state databases: a state database that fails the take, the read's statement count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, config, run
from worker.errors import StateError
from worker.retry import RetryPolicy
from worker.state import StateStore

BUDGET = 10.0


class FakeTime:
    """The retry policy's clock and sleep: a sleep moves the clock on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    try:
        yield found
    finally:
        found.close()


def _lost(statement: str) -> Any:
    return sa.exc.OperationalError(statement, {}, Exception("connection lost"))


def test_a_take_the_state_database_keeps_failing_gives_up_within_the_retry_budget(
    tmp_path: Path, sqlite_url: str, store: StateStore
) -> None:
    """The state database loses every take of a lease (a failover that outlasts the
    budget): the run gives up after RETENTION_RETRY_BUDGET_SECONDS of waits in all
    (docs/operations.md, "Retries": a total for the whole operation), not twice that,
    and changes nothing."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    time = FakeTime()
    store._retry = RetryPolicy(budget_seconds=BUDGET, sleep=time.sleep, clock=time.clock)
    takes: list[str] = []

    def fail(*args: Any) -> None:
        if "INSERT INTO leases" in str(args[2]):
            takes.append(str(args[2]))
            raise _lost(str(args[2]))

    sa.event.listen(store._engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(StateError):
            run(cfg, sqlite_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", fail)
    assert takes
    assert sum(time.slept) <= BUDGET, (sum(time.slept), len(takes))
    assert set(kidsapp.rows_by_id(sqlite_url)) == {1, 2, 3}


def test_a_read_the_state_database_refuses_fails_the_run_alone(
    tmp_path: Path, sqlite_url: str, store: StateStore
) -> None:
    """A pair's read that fails for good (not transient: a permission taken away) in the
    statement that takes the lease: the lease is taken again without it and the read apart
    fails the run alone (recorded, its lease ended), at once (no retry), rows untouched."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    time = FakeTime()
    store._retry = RetryPolicy(budget_seconds=BUDGET, sleep=time.sleep, clock=time.clock)
    reads: list[str] = []

    def fail(*args: Any) -> None:
        text = str(args[2])
        if "FROM holds" in text and "FROM approvals" in text:
            reads.append(text)
            raise sa.exc.ProgrammingError(text, {}, Exception("permission denied"))

    sa.event.listen(store._engine, "before_cursor_execute", fail)
    try:
        reports, _ = run(cfg, sqlite_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", fail)
    assert reports[0].outcome == "failed" and "state" in (reports[0].error or "")
    assert time.slept == []
    postgres = store._engine.dialect.name == "postgresql"
    assert ["INSERT INTO leases" in r for r in reads] == ([True, False] if postgres else [False])
    assert set(kidsapp.rows_by_id(sqlite_url)) == {1, 2, 3}
    again, _ = run(cfg, sqlite_url, store, customer="kdv-a")  # the lease was ended
    assert again[0].skipped is None and again[0].changed == 3
