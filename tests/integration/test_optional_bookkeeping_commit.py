"""A run's optional bookkeeping (its status) refused at COMMIT, by a deferred constraint
trigger on `pair_status` (PostgreSQL state; SQLite cannot add a deferred check to an
existing table): the promise of `gather.Pending.optional` (its failure never loses the
records around it) does not hold there.

No statement fails, so no queued work has `failed` set and `Gathering.flush` does not write
the rest again without it: the whole flush fails. An idle run then stores nothing (not even
run.started), reports FAILED and leaves its lease to expire; a run that deleted leaves its
run.finished unwritten (an open run). The same before c0fb89e: a SAVEPOINT does not cover a
deferred trigger either. Left as xfail: telling an optional work's refusal at COMMIT from
any other failure of the flush's COMMIT needs a design choice (retry without every optional
work whenever COMMIT fails?), not a small fix.
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


@pytest.mark.xfail(
    strict=True,
    reason="optional bookkeeping refused at COMMIT (deferred trigger) fails the whole flush: "
    "no work has `failed` set, so nothing is written again without it",
)
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
