"""A batch gets one outcome in the audit trail: a holder that lost its lease must not add
`batch.applied` to a batch another run already settled (stop 19's note, "A fault seen once").

The suspected sequence of the three-process acceptance test's one failure, written as the
audit subscriber sees it: run R's intent for batch 1 is committed; R's process is starved
past its lease; another process takes the pair over and settles batch 1 as applied (its
rows are gone); then R wakes and publishes `batch.applied` for batch 1. Today that record is
appended, and the trail holds two outcomes for one batch: an exactly-once count of the keys
an auditor makes counts them twice. Strict xfail until the outcome record is fenced (an
outcome whose open batch another run's settlement closed is refused), so the fix turns it
into a passing test.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from worker.audit import AuditTrail, AuditWriteError
from worker.events import BatchApplied, BatchIntent, BatchSettled
from worker.state import StateStore
from worker.state.models import audit_events

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
BATCH = {
    "run_id": "r" * 32,
    "customer": "kdv-001",
    "product": "kidsapp",
    "rule": "kidsapp.child",
    "action": "delete",
    "table": "child",
    "batch": 1,
}


@pytest.mark.xfail(
    strict=True,
    reason="not fenced yet: a batch.applied is appended after another run settled its batch",
)
def test_an_outcome_after_another_runs_settlement_is_refused(state: StateStore) -> None:
    trail = AuditTrail(state, lambda: AT)
    trail(BatchIntent(**BATCH, key_hashes=("a" * 64, "b" * 64), cutoff=AT.date()))
    trail(BatchSettled(**BATCH, rows={"child": 2}, applied=2, not_applied=(), settled_by="t"))
    with pytest.raises(AuditWriteError):
        trail(BatchApplied(**BATCH, rows={"child": 2}, categories=(), duration_seconds=0.1))
    kinds = state.read(
        "reading the trail",
        lambda c: [r.kind for r in c.execute(sa.select(audit_events.c.kind))],
    )
    assert kinds.count("batch.applied") + kinds.count("batch.settled") == 1
