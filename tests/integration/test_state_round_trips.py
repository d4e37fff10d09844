"""An idle run's state round trips (issue 11): what one run with nothing to do sends to the
state database, on SQLite and PostgreSQL, watched with SQLAlchemy event listeners.

- a run's row is inserted with one statement, no lookup first; a repeat adds no row;
- the audit head is locked once per transaction that appends several records, and the chain
  is the one separate appends make (a SAVEPOINT rolled back never leaves a stale head);
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
from worker.state.records import AuditEntry
from worker.state.runlog import start_run_in
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
    assert len(seen.matching(r"^INSERT INTO audit_events\b")) == 2
    # SELECT … WHERE id = 1 FOR UPDATE on PostgreSQL (SQLite: BEGIN IMMEDIATE holds the lock)
    assert len(seen.matching(HEAD_LOCK)) == 1, seen.sent


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


def chain(store: StateStore) -> list[tuple[int, str, str]]:
    with store._engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, run_id, hash FROM audit_events ORDER BY seq"))
        return [(int(r.seq), str(r.run_id), str(r.hash)) for r in rows]


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
    assert [run for _, run, _ in chain(store)] == ["run1", "run3", "run4"]
    found = verify(store)  # the chain verifies (the three runs are open: they only started)
    assert found.first_bad_seq is None and found.checked == 3, found
    reference.close()
