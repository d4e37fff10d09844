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

from tests.integration.test_optional_bookkeeping import assert_run_end_stored, kinds
from tests.integration.test_run_end_folded import tick
from tests.integration.test_timeouts import seed
from worker.events import Outcome
from worker.state import StateStore

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
