"""`audit verify` while a worker writes (SQLite and PostgreSQL state): a run that ends between
verify's snapshot and its look at the state tables is a run still going, not a cut trail.

verify walks one snapshot of the trail, then asks the `runs` table whether the runs it found
open have an outcome without a `run.finished` record (records cut from the end). On
PostgreSQL those reads see what is committed when each statement starts, so a run's end
committed between the look for `run.finished` records written since the snapshot and the
look at `runs` made verify report records removed from the end of the trail.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from tests.support import NOW
from worker.audit import AuditTrail
from worker.events import Outcome, RunFinished, RunStarted
from worker.state import StateStore
from worker.verify import verify

# The two reads of worker/verify.py `_outcomes_without_records` about runs.
_READS = re.compile(r"FROM runs\b|FROM audit_events\s+WHERE audit_events\.seq >", re.I)


@pytest.fixture
def stores(state_url: str) -> Iterator[tuple[StateStore, StateStore]]:
    """The auditor's store and a worker's (another engine: another process)."""
    mine, theirs = StateStore(state_url), StateStore(state_url)
    yield mine, theirs
    mine.close()
    theirs.close()


def test_a_run_ending_while_verify_reads_is_not_a_cut_trail(
    stores: tuple[StateStore, StateStore],
) -> None:
    mine, theirs = stores
    trail = AuditTrail(theirs, lambda: NOW)
    run_id = uuid.uuid4().hex
    trail(RunStarted(run_id=run_id, customer="a", product="kids", at=NOW, policy="p", as_of=NOW))
    ended: list[bool] = []

    def end_the_run() -> None:
        trail(
            RunFinished(
                run_id=run_id,
                customer="a",
                product="kids",
                outcome=Outcome.SUCCEEDED,
                at=NOW,
                duration_seconds=0.0,
                processed={},
                error=None,
            )
        )

    def after(_conn: Any, _cur: Any, sql: str, *_rest: Any) -> None:
        # The worker commits the run's end right after verify's first read of the tables.
        if not ended and _READS.search(sql):
            ended.append(True)
            contextvars.Context().run(end_the_run)

    event.listen(mine._engine, "after_cursor_execute", after)
    try:
        found = verify(mine)
    finally:
        event.remove(mine._engine, "after_cursor_execute", after)

    assert ended
    # The snapshot saw the run open: a run going on, settled by reconciliation if it crashed.
    assert found.first_bad_seq is None, found.reason
    assert found.open_runs == (run_id,)
    assert verify(mine).ok
