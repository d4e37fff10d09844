"""Faults in the last transaction of a run (worker/runend.py `_queue_end`: its records, its
checkpoint and its lease's end commit together), on SQLite and PostgreSQL state:

- a lease's end the state database refuses (here a trigger on `leases`) loses none of the
  run's records: they are written without it, and the lease's end is tried alone (its
  failure logged, as before the end was folded in: the lease then simply expires);
- a run's end record the state database refuses (held back and sent before the carried
  work ends, worker/state/held.py) fails the run's end at once: its transaction is tried
  once, not again without its optional or droppable work as a COMMIT failure would be.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from structlog.testing import capture_logs

from tests.integration import run_end_support
from tests.integration.test_run_end_folded import query, tick
from tests.integration.test_state_round_trips import Statements
from tests.integration.test_timeouts import ids
from worker.events import CheckpointMade, Outcome
from worker.state import StateStore
from worker.verify import verify

store = run_end_support.store  # the fixtures, by name (pytest finds them here)
product_url = run_end_support.product_url


def refuse(store: StateStore, name: str, table: str, event: str, when: str) -> None:
    """A trigger refusing `event` (INSERT, UPDATE) on `table` when `when` holds of NEW."""
    with store._engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {when} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        conn.execute(
            sa.text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN ({when}) EXECUTE FUNCTION {name}()"
            )
        )


def refuse_lease_done(store: StateStore) -> None:
    """A trigger that refuses marking a lease done (a fault of the `leases` table alone)."""
    with store._engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER no_done BEFORE UPDATE ON leases WHEN NEW.done_at IS NOT NULL "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        conn.execute(
            sa.text(
                "CREATE FUNCTION no_done() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER no_done BEFORE UPDATE ON leases FOR EACH ROW "
                "WHEN (NEW.done_at IS NOT NULL) EXECUTE FUNCTION no_done()"
            )
        )


def test_a_refused_lease_end_keeps_the_runs_records(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    refuse_lease_done(store)
    with capture_logs() as logs:
        report, seen = tick(tmp_path, store, product_url)
    assert ids(product_url) == [3]  # the run deleted 1 and 2
    assert report.outcome is Outcome.SUCCEEDED, report.error
    [run] = query(store, "SELECT outcome FROM runs")
    assert run.outcome == "succeeded"
    kinds = [k for (k,) in query(store, "SELECT kind FROM audit_events ORDER BY seq")]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert any(e["event"] == "lease.end_failed" for e in logs)
    [lease] = query(store, "SELECT done_at FROM leases")
    assert lease.done_at is None  # refused: it expires
    [made] = [e for e in seen if isinstance(e, CheckpointMade)]
    [(seq,)] = query(store, "SELECT max(seq) FROM checkpoints")
    assert made.seq == seq
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found


def test_a_refused_end_record_fails_the_runs_end_at_once(
    tmp_path: Path, store: StateStore, product_url: str
) -> None:
    refuse(store, "no_end", "audit_events", "INSERT", "NEW.kind = 'run.finished'")
    with Statements(store._engine) as sent:
        report, _seen = tick(tmp_path, store, product_url)
    assert ids(product_url) == [3]  # the run deleted 1 and 2 (each batch its own transaction)
    assert report.outcome is Outcome.FAILED
    assert "the state database" in (report.error or "")
    # The run's end, its history, status, checkpoint and lease's end: one attempt, not four.
    assert len(sent.matching(r"^UPDATE runs\b")) == 1, sent.sent
    assert len(sent.matching(r"^INSERT INTO checkpoints\b")) == 1, sent.sent
    [run] = query(store, "SELECT outcome FROM runs")
    assert run.outcome is None  # open: reconciliation closes it
    kinds = [k for (k,) in query(store, "SELECT kind FROM audit_events ORDER BY seq")]
    assert "run.finished" not in kinds
