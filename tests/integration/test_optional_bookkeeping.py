"""A run's optional bookkeeping (rule history, status: `write_later(optional=True)`) rides in
the flush of its end without a SAVEPOINT (worker/state/gather.py `Pending.run`), on SQLite
and PostgreSQL state:

- an idle run sends no SAVEPOINT (it used to send two pairs: history, status);
- the state database refusing its rule history, or its status halfway through, keeps the
  run's audit records, the other bookkeeping, the checkpoint and the lease's end: the flush
  writes them again without the refused work, and none of the refused work is left;
- carried by another write (a batch's intent), optional work still runs under a SAVEPOINT,
  so its failure never fails that write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from structlog.testing import capture_logs

from tests.integration import run_end_support
from tests.integration.test_run_end_folded import query, tick
from tests.integration.test_timeouts import ids
from worker.events import Outcome
from worker.state import StateStore
from worker.state.gather import gathering
from worker.verify import verify

store = run_end_support.store  # the fixtures, by name (pytest finds them here)
product_url = run_end_support.product_url


class Statements:
    """Every statement the store's engine sends while open."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sql: list[str] = []

    def _note(self, _conn: Any, _cur: Any, sql: str, *_a: Any) -> None:
        self.sql.append(" ".join(sql.split()))

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self.sql

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)


def refuse_inserts(store: StateStore, table: str) -> None:
    """A trigger that makes the state database refuse every new row of `table`."""
    with store._engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


def kinds(store: StateStore) -> list[str]:
    return [r.kind for r in query(store, "SELECT kind FROM audit_events ORDER BY seq")]


def assert_run_end_stored(store: StateStore, before: list[str]) -> None:
    """The idle run's records, its row, its checkpoint (covering its end) and its lease's end."""
    assert kinds(store) == [*before, "run.started", "run.finished"]
    [last] = query(store, "SELECT outcome FROM runs ORDER BY started_at DESC, run_id LIMIT 1")
    outcomes = [r.outcome for r in query(store, "SELECT outcome FROM runs")]
    assert outcomes == ["succeeded", "succeeded"] and last.outcome == "succeeded"
    [(seq,)] = query(store, "SELECT max(seq) FROM checkpoints")
    [(head,)] = query(store, "SELECT max(seq) FROM audit_events")
    assert seq == head
    [lease] = query(store, "SELECT done_at FROM leases")
    assert lease.done_at is not None
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_an_idle_run_sends_no_savepoint(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    first, _ = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    with Statements(store._engine) as sql:
        idle, _ = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert [s for s in sql if "SAVEPOINT" in s.upper()] == []
    assert any(s.startswith("INSERT INTO rule_history") for s in sql)
    assert any(s.startswith("INSERT INTO pair_status") for s in sql)
    [(runs,)] = query(store, "SELECT count(DISTINCT run_id) FROM rule_history")
    assert runs == 2


def test_a_refused_history_keeps_the_runs_records_status_and_lease_end(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    first, _ = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    before = kinds(store)
    refuse_inserts(store, "rule_history")
    with store._engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM rule_status"))
    with capture_logs() as logs:
        idle, _ = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert ids(product_url) == [3]
    [skipped] = [e for e in logs if e["event"] == "state.write_skipped"]
    assert skipped["recording"].startswith("the rule history of run ")
    assert "refused" not in str(skipped)  # class and code only, never the message
    assert_run_end_stored(store, before)
    [(history_runs,)] = query(store, "SELECT count(DISTINCT run_id) FROM rule_history")
    assert history_runs == 1  # the first run's; the idle run's was refused
    assert query(store, "SELECT rule FROM rule_status")  # the status, queued after it, is kept


def test_a_status_refused_halfway_leaves_none_of_it_and_keeps_the_rest(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    first, _ = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    before = kinds(store)
    # rule_status is rewritten first, then pair_status is refused.
    with store._engine.begin() as conn:
        conn.execute(sa.text("UPDATE rule_status SET eligible = 999"))
    refuse_inserts(store, "pair_status")
    with capture_logs() as logs:
        idle, _ = tick(tmp_path, store, product_url)
    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    [skipped] = [e for e in logs if e["event"] == "state.write_skipped"]
    assert skipped["recording"] == "the status of a × kids"
    assert_run_end_stored(store, before)
    assert {r.eligible for r in query(store, "SELECT eligible FROM rule_status")} == {999}
    [(history_runs,)] = query(store, "SELECT count(DISTINCT run_id) FROM rule_history")
    assert history_runs == 2  # the idle run's history, queued before it, is kept


def test_optional_work_another_write_carries_runs_under_a_savepoint(store: StateStore) -> None:
    def refused(conn: sa.Connection, _retried: bool) -> None:
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    def carrier(conn: sa.Connection) -> None:
        conn.execute(sa.text("DELETE FROM leases"))

    with capture_logs() as logs, Statements(store._engine) as sql, gathering("r1") as gathered:
        store.write_later("the status of x", refused, optional=True)
        store.write("a batch's intent", carrier)
        assert gathered.taken(store) == []
    assert any(s.upper().startswith("SAVEPOINT") for s in sql)
    assert any(s.upper().startswith("ROLLBACK TO SAVEPOINT") for s in sql)
    assert [e["recording"] for e in logs if e["event"] == "state.write_skipped"] == [
        "the status of x"
    ]
