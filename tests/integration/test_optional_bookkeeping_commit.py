"""A run's optional bookkeeping (its status) refused at COMMIT, by a deferred constraint
trigger on `pair_status` (PostgreSQL state; SQLite cannot add a deferred check to an
existing table): the promise of `gather.Pending.optional` (its failure never loses the
records around it) holds there too.

No statement fails, so no queued work has `failed` set: `Gathering.flush` then writes the
rest again without every optional work (and, if that fails too, without the droppable
ones). Before, the whole flush failed: an idle run stored nothing (not even run.started),
reported FAILED and left its lease to expire (the same before c0fb89e: a SAVEPOINT does not
cover a deferred trigger either).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tests.integration.test_optional_bookkeeping import assert_run_end_stored, kinds
from tests.integration.test_run_end_folded import query, tick
from tests.integration.test_timeouts import seed
from worker.events import Outcome, RunRecorded
from worker.state import StateStore
from worker.verify import verify

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str) -> Iterator[StateStore]:
    found = StateStore(pg_url)
    found.migrate()
    yield found
    found.close()


def test_a_status_refused_at_commit_keeps_the_runs_records(
    tmp_path: Path, store: StateStore
) -> None:
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    first, _ = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    before = kinds(store)
    with store._engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT OR UPDATE ON pair_status "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )

    idle, _ = tick(tmp_path, store, product_url)

    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert_run_end_stored(store, before)


@pytest.mark.parametrize(
    ("table", "refused"),
    [
        ("checkpoints", "INSERT"),
        ("leases", "UPDATE"),  # a lease's end only: done_at set
    ],
)
def test_a_droppable_write_refused_at_commit_keeps_the_runs_history(
    tmp_path: Path, store: StateStore, table: str, refused: str
) -> None:
    """The run's checkpoint, or its lease's end, refused at COMMIT: the flush is written
    again without the optional work (refused again), then with it but without the droppable
    work (checkpoint and lease end; the lease is then ended alone). Before, the second attempt
    left both kinds out, and the run's rule history and status, which nothing refused, were
    lost with them (state.write_skipped)."""
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    first, _ = tick(tmp_path, store, product_url)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    before = kinds(store)
    [(checkpoint,)] = query(store, "SELECT max(seq) FROM checkpoints")
    when = "WHEN (NEW.done_at IS NOT NULL) " if table == "leases" else ""
    with store._engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE CONSTRAINT TRIGGER refuse AFTER {refused} ON {table} DEFERRABLE "
                f"INITIALLY DEFERRED FOR EACH ROW {when}EXECUTE FUNCTION refuse()"
            )
        )

    with capture_logs() as logs:
        idle, seen = tick(tmp_path, store, product_url)

    assert idle.outcome is Outcome.SUCCEEDED, idle.error
    assert kinds(store) == [*before, "run.started", "run.finished"]
    # The checkpoint left out says why, never `error=None`.
    assert all(e["error"] for e in logs if e["event"] == "audit.checkpoint_failed")
    [recorded] = [e for e in seen if isinstance(e, RunRecorded)]
    assert recorded.stored and recorded.outcome is Outcome.SUCCEEDED
    [(outcome,)] = query(store, f"SELECT outcome FROM runs WHERE run_id = '{recorded.run_id}'")
    assert outcome == "succeeded"
    history = query(store, f"SELECT rule FROM rule_history WHERE run_id = '{recorded.run_id}'")
    assert len(history) == 1  # the rule history (and status) of the idle run: stored
    [(status_at,)] = query(store, "SELECT max(updated_at) FROM rule_status")
    assert status_at is not None
    [(after,)] = query(store, "SELECT max(seq) FROM checkpoints")
    assert after == checkpoint  # droppable, left out with the lease's end (logged)
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
