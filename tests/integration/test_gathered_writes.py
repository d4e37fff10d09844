"""A run's bookkeeping rides with its next state write (worker/state/gather.py).

On a SQLite and a PostgreSQL state database, watching every statement the store sends and
the transaction it belongs to:

- a run with nothing due writes run.started, its policy, run.finished, its rule history,
  its status, the checkpoint and its lease's end in ONE transaction (taking the lease is
  the other);
- a run that changes rows writes run.started in the same transaction as its first
  batch.intent, before it: the trail keeps its order and verifies;
- a status write the database refuses is rolled back alone and logged: the run's records
  and its outcome are kept;
- the state database refusing the end of a run fails the run, and the next run records
  both ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from structlog.testing import capture_logs

from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids, seed
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.events import EventBus, Outcome
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify

# A write, also as the first of a WITH (a lease is taken by WITH taken AS (INSERT INTO leases …).
WRITES = re.compile(
    r"^\s*(?:WITH\s+\w+\s+AS\s*\(\s*)?(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE
)


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


class Transactions:
    """The tables each committed state transaction wrote, and the audit kinds it appended."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.committed: list[dict[str, Any]] = []
        self._open: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> Transactions:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)

    def _statement(self, conn: sa.Connection, _cur: Any, sql: str, params: Any, *_a: Any) -> None:
        found = WRITES.match(sql)
        if found is None:
            return
        txn = self._open.setdefault(
            id(conn.connection.dbapi_connection), {"tables": [], "kinds": []}
        )
        txn["tables"].append(found.group(1))
        if found.group(1) == "audit_events":
            rows = params if isinstance(params, list) else [params]
            for row in rows:
                kind = row.get("kind") if isinstance(row, dict) else None
                txn["kinds"].append(kind if kind is not None else _kind_of(row))

    def _commit(self, conn: sa.Connection) -> None:
        txn = self._open.pop(id(conn.connection.dbapi_connection), None)
        if txn is not None:
            self.committed.append(txn)

    def _rollback(self, conn: sa.Connection) -> None:
        self._open.pop(id(conn.connection.dbapi_connection), None)

    def writing(self, table: str) -> list[dict[str, Any]]:
        return [t for t in self.committed if table in t["tables"]]


def _kind_of(params: Any) -> str:
    """The audit kind among positional parameters (SQLite's qmark style)."""
    for value in params:
        if isinstance(value, str) and re.fullmatch(r"(run|batch)\.[a-z]+", value):
            return value
    return "?"


def tick(tmp_path: Path, store: StateStore, product_url: str) -> list[RunReport]:
    config = write_config(tmp_path / "config", PRODUCT.replace("STATEMENT", "60"), CUSTOMERS)
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    runner = build_runner(
        config, {"KIDS_A_URL": product_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=store
    )
    pairs = [(c, p) for c, p in config.pairs() if c.customer == "a"]
    return run_pairs(runner, pairs, NOW, dry_run=False)


def audit_kinds(store: StateStore) -> list[str]:
    with store._engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT kind FROM audit_events ORDER BY seq")).scalars())


def test_an_idle_run_writes_its_bookkeeping_in_one_transaction(
    tmp_path: Path, store: StateStore
) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    [first] = tick(tmp_path, store, product_url)  # deletes ids 1 and 2
    assert first.outcome is Outcome.SUCCEEDED, first.error
    with Transactions(store._engine) as seen:
        [idle] = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert ids(product_url) == [3]
    [one] = seen.writing("audit_events")
    assert one["kinds"] == ["run.started", "run.finished"]
    for table in ("runs", "rule_history", "rule_status", "checkpoints", "leases"):
        assert table in one["tables"], (table, one["tables"])
    # The rest: the lease taken; it writes no trail.
    others = [t for t in seen.committed if t is not one]
    assert {table for t in others for table in t["tables"]} <= {"leases"}
    assert len(others) == 1, others
    assert audit_kinds(store)[-2:] == ["run.started", "run.finished"]
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_a_run_records_its_start_with_its_first_intent(tmp_path: Path, store: StateStore) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    with Transactions(store._engine) as seen:
        [report] = tick(tmp_path, store, product_url)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(product_url) == [3]
    carriers = seen.writing("audit_events")
    assert carriers[0]["kinds"] == ["run.started", "batch.intent"]
    assert "runs" in carriers[0]["tables"]
    kinds = audit_kinds(store)
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert kinds.index("run.started") < kinds.index("batch.intent") < kinds.index("batch.applied")
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_a_refused_status_write_keeps_the_runs_records(tmp_path: Path, store: StateStore) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    with store._engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE rule_status"))
    with capture_logs() as logs:
        [report] = tick(tmp_path, store, product_url)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(product_url) == [3]
    skipped = [e for e in logs if e["event"] == "state.write_skipped"]
    assert skipped and "the status of a" in skipped[0]["recording"]
    assert audit_kinds(store)[-1] == "run.finished"
    with store._engine.connect() as conn:
        outcome = conn.execute(sa.text("SELECT outcome FROM runs")).scalar_one()
        history = conn.execute(sa.text("SELECT count(*) FROM rule_history")).scalar_one()
    assert outcome == "succeeded"
    assert history == 1  # the rule history, queued with it, was kept
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_a_refused_end_fails_the_run_and_the_next_one_records_both_ends(
    tmp_path: Path, store: StateStore
) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    [first] = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    before = audit_kinds(store)
    # The runs table refuses every new row: the idle run's start and end cannot be recorded.
    with store._engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE runs RENAME TO runs_away"))
    [refused] = tick(tmp_path, store, product_url)
    assert refused.outcome is Outcome.FAILED
    assert "the state database" in (refused.error or "")
    assert audit_kinds(store) == before  # neither end alone: the transaction rolled back
    with store._engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE runs_away RENAME TO runs"))
    [again] = tick(tmp_path, store, product_url)
    assert again.outcome is Outcome.SUCCEEDED, again.error
    assert audit_kinds(store) == [*before, "run.started", "run.finished"]
    assert ids(product_url) == [3]
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
