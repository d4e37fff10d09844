"""Idle runs' last records written together (worker/idleends.py) when one run's bookkeeping is
refused at COMMIT, by a deferred constraint trigger (PostgreSQL state; SQLite cannot add one
to an existing table), on a tick of 7 customers where kdv-5, kdv-6 and kdv-7 are written
together at the end (tests/integration/test_idle_ends.py):

No statement fails, so no work is to blame. Written alone, `Gathering.flush` then leaves out
the run's own optional work (history, status), then its droppable work (checkpoint, lease
end). In a joint transaction such a guess left out the work of every run in it: the other
runs lost their rule history and status, or the one checkpoint covering all of them.
The joint transaction does not guess: it fails, and each run is written alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tests.integration.test_idle_ends import CUSTOMERS, _config, _product, _runner
from tests.integration.test_run_end_folded import query
from tests.support import NOW
from worker.app import run_pairs
from worker.events import Outcome
from worker.state import StateStore
from worker.verify import verify

pytestmark = pytest.mark.postgres

REFUSED = "kdv-6"


@pytest.fixture
def store(pg_url: str) -> Iterator[StateStore]:
    found = StateStore(pg_url)
    found.migrate()
    yield found
    found.close()


def _refuse_at_commit(store: StateStore, table: str, event: str, when: str) -> None:
    with store._engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE CONSTRAINT TRIGGER refuse AFTER {event} ON {table} DEFERRABLE "
                f"INITIALLY DEFERRED FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION refuse()"
            )
        )


def _customers(store: StateStore, table: str) -> list[str]:
    return sorted({r.customer for r in query(store, f"SELECT customer FROM {table}")})


def test_a_status_refused_at_commit_loses_only_that_runs_bookkeeping(
    tmp_path: Path, store: StateStore
) -> None:
    config = _config(tmp_path)
    _refuse_at_commit(store, "pair_status", "INSERT OR UPDATE", f"NEW.customer = '{REFUSED}'")
    runner = _runner(config, _product(tmp_path, "p.db"), store)
    with capture_logs() as logs:
        reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports), [r.error for r in reports]
    others = [c for c in CUSTOMERS if c != REFUSED]
    # Written alone, kdv-6 loses its own history and status (both optional); kdv-5 and kdv-7,
    # written in the same joint transaction, lost theirs too.
    assert _customers(store, "rule_history") == others
    assert _customers(store, "pair_status") == others
    assert _customers(store, "rule_status") == others
    skipped = [e["recording"] for e in logs if e["event"] == "state.write_skipped"]
    # kdv-6's history and status, nobody else's.
    assert [s for s in skipped if s.startswith("the status")] == [
        f"the status of {REFUSED} × kidsapp"
    ]
    assert len(skipped) == 2, skipped
    found = verify(store)
    assert found.ok and not found.open_runs, found


def test_a_lease_end_refused_at_commit_keeps_the_checkpoint_of_the_others(
    tmp_path: Path, store: StateStore
) -> None:
    config = _config(tmp_path)
    when = f"NEW.customer = '{REFUSED}' AND NEW.done_at IS NOT NULL"
    _refuse_at_commit(store, "leases", "UPDATE", when)
    runner = _runner(config, _product(tmp_path, "p.db"), store)
    reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports), [r.error for r in reports]
    # The tick's last checkpoint covers the head: kdv-7's, written after kdv-6's records.
    [(head,)] = query(store, "SELECT seq FROM audit_head")
    [(last,)] = query(store, "SELECT max(seq) FROM checkpoints")
    assert last == head
    done = {r.customer: r.done_at is not None for r in query(store, "SELECT * FROM leases")}
    assert done == {c: c != REFUSED for c in CUSTOMERS}
    found = verify(store)
    assert found.ok and not found.open_runs, found
