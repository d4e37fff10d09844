"""An idle run's state round trips (issue 11): what one run with nothing to do sends to the
state database, on SQLite and PostgreSQL, watched with SQLAlchemy event listeners.

- a run's row is inserted with one statement, no lookup first; a repeat adds no row;
- the audit head is locked once per transaction that appends several records, and the chain
  is the one separate appends make (a SAVEPOINT rolled back never leaves a stale head);
- the records a transaction appends are held back and sent in one INSERT with one move of
  the head, column for column what appending them one by one writes (a retried append sends
  them before its lookup);
- a run started and ended in one transaction (an idle run) is one INSERT of its row, and a
  run another process closed meanwhile is still refused (RunClosed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tests.integration.test_gathered_writes import tick
from tests.integration.test_timeouts import seed
from tests.support import NOW
from worker.audit import record_hash
from worker.events import Outcome
from worker.state import StateStore
from worker.state.auditlog import Seal
from worker.state.models import audit_events, audit_head
from worker.state.records import AuditEntry, utc
from worker.state.runlog import RunClosed, finish_run_in, start_run_in, start_run_later_in
from worker.verify import verify


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


class Statements:
    """Every statement the store's engine sends, and its commits."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sent: list[str] = []
        self.commits = 0

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cur: Any, sql: str, *_a: Any) -> None:
        self.sent.append(" ".join(sql.split()))

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def matching(self, pattern: str) -> list[str]:
        return [s for s in self.sent if re.search(pattern, s, re.IGNORECASE)]


def idle_run(tmp_path: Path, store: StateStore) -> Statements:
    """One run that deletes what is due, then the idle run watched."""
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    [first] = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    with Statements(store._engine) as seen:
        [idle] = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
    return seen


def test_a_runs_row_is_inserted_without_a_lookup(tmp_path: Path, store: StateStore) -> None:
    seen = idle_run(tmp_path, store)
    assert len(seen.matching(r"^INSERT INTO runs\b")) == 1
    assert not seen.matching(r"^SELECT runs\.run_id\b"), seen.sent


def test_a_repeated_start_adds_no_row(store: StateStore) -> None:
    for _ in range(2):  # a retry whose first attempt committed (its reply was lost)
        with store._engine.begin() as conn:
            start_run_in(conn, "r1", "a", "kids", NOW, False, "host|1")
    with store._engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, owner FROM runs")).all()
    assert [tuple(r) for r in rows] == [("r1", "host|1")]


def test_an_idle_runs_appends_lock_the_head_once(tmp_path: Path, store: StateStore) -> None:
    seen = idle_run(tmp_path, store)
    # SELECT … WHERE id = 1 FOR UPDATE on PostgreSQL (SQLite: BEGIN IMMEDIATE holds the lock)
    assert len(seen.matching(HEAD_LOCK)) == 1, seen.sent


def test_an_idle_runs_records_and_row_are_sent_together(tmp_path: Path, store: StateStore) -> None:
    """run.started and run.finished: one INSERT (both rows) and one move of the head; the
    run's row: one INSERT carrying its end, no UPDATE."""
    seen = idle_run(tmp_path, store)
    assert len(seen.matching(r"^INSERT INTO audit_events\b")) == 1, seen.sent
    assert len(seen.matching(r"^UPDATE audit_head\b")) == 1, seen.sent
    assert len(seen.matching(r"^INSERT INTO runs\b")) == 1, seen.sent
    assert not seen.matching(r"^UPDATE runs\b"), seen.sent


HEAD_LOCK = r"^SELECT audit_head\.seq, audit_head\.hash FROM audit_head WHERE"


def entry(n: int) -> tuple[AuditEntry, Seal]:
    found = AuditEntry(NOW, f"run{n}", "run.started", "a", "kids", None, None, f'{{"n":{n}}}')

    def seal(seq: int, prev_hash: str) -> str:
        return record_hash(
            prev_hash,
            seq=seq,
            at=NOW,
            run_id=found.run_id,
            kind=found.kind,
            customer="a",
            product="kids",
            rule=None,
            action=None,
            payload={"n": n},
        )

    return found, seal


def chain(store: StateStore) -> list[tuple[Any, ...]]:
    """Every column of the trail (times in UTC), then the head."""
    with store._engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings()
        found = [tuple({**r, "at": utc(r["at"])}.values()) for r in rows]
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
        return [*found, tuple(head)]


def test_appends_in_one_transaction_chain_as_separate_ones(
    tmp_path: Path, store: StateStore
) -> None:
    reference = StateStore(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.migrate()
    for n in (1, 3, 4):
        reference.append_audit(*entry(n))
    with Statements(store._engine) as seen, store._write("appending") as conn:

        def append(n: int) -> None:
            found, seal = entry(n)
            store._append(conn, found, NOW, seal, retried=False)

        append(1)
        savepoint = conn.begin_nested()  # appended, then rolled back: the head moves back
        append(2)
        savepoint.rollback()
        append(3)
        append(4)
    heads = seen.matching(HEAD_LOCK)
    assert len(heads) == 3  # the first append, the one in the SAVEPOINT, the one after it
    assert chain(store) == chain(reference)
    assert [row[2] for row in chain(store)[:-1]] == ["run1", "run3", "run4"]
    found = verify(store)  # the chain verifies (the three runs are open: they only started)
    assert found.first_bad_seq is None and found.checked == 3, found
    reference.close()


def test_held_records_chain_as_appended_one_by_one(tmp_path: Path, store: StateStore) -> None:
    """Records a transaction holds back are sent together (one INSERT, one move of the
    head); a retried append among them first sends what is held, then looks for its earlier
    attempt's record. The trail and its head are those of separate appends, every column."""
    reference = StateStore(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.migrate()
    for n in range(1, 7):
        reference.append_audit(*entry(n))
    store.append_audit(*entry(1))  # committed, its reply lost: a retry finds it
    with Statements(store._engine) as seen, store._write("appending") as conn:

        def append(n: int, *, retried: bool = False) -> None:
            found, seal = entry(n)
            store._append(conn, found, NOW, seal, retried=retried)

        append(2)
        append(3)
        append(1, retried=True)  # found: not appended again
        append(4, retried=True)  # not found: appended
        append(5)
        append(6)
    assert chain(store) == chain(reference)
    assert len(seen.matching(HEAD_LOCK)) == 1, seen.sent
    # 2 and 3 before the first lookup, then 4 to 6 before COMMIT
    assert len(seen.matching(r"^INSERT INTO audit_events\b")) == 2, seen.sent
    assert len(seen.matching(r"^UPDATE audit_head\b")) == 2, seen.sent
    found = verify(store)
    assert found.first_bad_seq is None and found.checked == 6, found
    reference.close()


def runs_rows(store: StateStore) -> list[tuple[Any, ...]]:
    with store._engine.connect() as conn:
        query = sa.text("SELECT run_id, outcome, rows_changed, error, owner FROM runs")
        return [tuple(r) for r in conn.execute(query)]


def test_a_run_started_and_ended_in_one_transaction_is_one_insert(store: StateStore) -> None:
    with Statements(store._engine) as seen, store._write("a run") as conn:
        start_run_later_in(conn, "r1", "a", "kids", NOW, False, "host|1")
        start_run_later_in(conn, "r2", "a", "kids", NOW, False, "host|1")  # only started
        finish_run_in(conn, "r1", "succeeded", NOW, 3, None, store.url)
    assert sorted(runs_rows(store)) == [
        ("r1", "succeeded", 3, None, "host|1"),
        ("r2", None, 0, None, "host|1"),
    ]
    assert len(seen.matching(r"^INSERT INTO runs\b")) == 2, seen.sent  # r1 with its end, r2
    assert not seen.matching(r"^UPDATE runs\b"), seen.sent


def test_a_held_start_still_finds_a_run_closed_by_another(store: StateStore) -> None:
    """An earlier attempt committed the run's start and end (its reply was lost), then
    another process closed the run: the attempt after it is refused (RunClosed); the same
    end again changes nothing."""
    with store._write("the first attempt") as conn:
        start_run_later_in(conn, "r1", "a", "kids", NOW, False, "host|1")
        finish_run_in(conn, "r1", "crashed", NOW, 0, "closed by host|2", store.url)
    with pytest.raises(RunClosed), store._write("a later attempt") as conn:
        start_run_later_in(conn, "r1", "a", "kids", NOW, False, "host|1")
        finish_run_in(conn, "r1", "succeeded", NOW, 0, None, store.url)
    with store._write("the same end again") as conn:
        start_run_later_in(conn, "r1", "a", "kids", NOW, False, "host|1")
        finish_run_in(conn, "r1", "crashed", NOW, 0, "closed by host|2", store.url)
    assert runs_rows(store) == [("r1", "crashed", 0, "closed by host|2", "host|1")]
