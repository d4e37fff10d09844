"""A batch gets one outcome in the audit trail: a holder whose lease was lost must not add
`batch.applied` (or `batch.failed`) to a batch another run already settled
(worker/trailrows.py), on SQLite and PostgreSQL state.

The sequence behind the three-process acceptance test's one failure (stop 19), as the
audit subscriber sees it: run R's intent for batch 1 is committed; R's process is starved
past its lease; another process takes the pair over and settles batch 1 as applied (its
rows are gone); then R wakes and publishes `batch.applied` for batch 1. That record is
refused: an exactly-once count of the keys an auditor makes counts them once. The reverse
order (a settlement read before the holder's outcome, recorded after it) and a second
settler are refused too. A retried append whose first attempt did commit (its reply lost)
still goes through, and so does an outcome of an open batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from worker.audit import AuditTrail, AuditWriteError
from worker.errors import StateError
from worker.events import BatchApplied, BatchFailed, BatchIntent, BatchSettled
from worker.state import StateStore
from worker.state.models import audit_events, open_batches
from worker.trailrows import BatchClosed

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
APPLIED = BatchApplied(**BATCH, rows={"child": 2}, categories=(), duration_seconds=0.1)
FAILED = BatchFailed(**BATCH, error="rolled back", duration_seconds=0.1)
SETTLED = BatchSettled(**BATCH, rows={"child": 2}, applied=2, not_applied=(), settled_by="t")


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    try:
        yield found
    finally:
        found.close()


def _kinds(store: StateStore) -> list[str]:
    return store.read(
        "reading the trail", lambda c: [r.kind for r in c.execute(sa.select(audit_events.c.kind))]
    )


def _intent(trail: AuditTrail, batch: int = 1) -> None:
    fields: dict[str, Any] = {**BATCH, "batch": batch}
    trail(BatchIntent(**fields, key_hashes=("a" * 64, "b" * 64), cutoff=AT.date()))


@pytest.mark.parametrize(
    "outcome", [APPLIED, FAILED, SETTLED], ids=["applied", "failed", "settled"]
)
def test_an_outcome_after_another_runs_settlement_is_refused(
    store: StateStore, outcome: BatchApplied | BatchFailed
) -> None:
    trail = AuditTrail(store, lambda: AT)
    _intent(trail)
    trail(BatchSettled(**BATCH, rows={"child": 2}, applied=2, not_applied=(), settled_by="t"))
    with pytest.raises(AuditWriteError, match=r"another run|has its outcome already") as caught:
        trail(outcome)
    assert isinstance(caught.value.__cause__, BatchClosed)
    kinds = _kinds(store)
    assert kinds.count("batch.applied") + kinds.count("batch.failed") == 0
    assert kinds.count("batch.settled") == 1


def test_an_outcome_of_an_open_batch_and_of_another_batch_go_through(store: StateStore) -> None:
    """Batch 2 was settled; batch 1 is open: its outcome is recorded and closes it."""
    trail = AuditTrail(store, lambda: AT)
    _intent(trail, 1)
    _intent(trail, 2)
    two = {**BATCH, "batch": 2}
    trail(BatchSettled(**two, rows={"child": 2}, applied=2, not_applied=(), settled_by="t"))
    trail(APPLIED)
    assert _kinds(store).count("batch.applied") == 1
    left = store.read("open batches", lambda c: c.execute(sa.select(open_batches)).all())
    assert left == []


@pytest.mark.parametrize("outcome", [APPLIED, SETTLED], ids=["applied", "settled"])
def test_a_retried_outcome_whose_first_attempt_committed_goes_through(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, outcome: BatchApplied | BatchSettled
) -> None:
    """The first attempt commits (the record, the open batch closed) but its reply is lost:
    the retry finds its own record and the batch already closed, and no settlement: it
    returns the record, as before the fence."""
    trail = AuditTrail(store, lambda: AT)
    _intent(trail)
    real = store._appending

    def losing(*args: Any) -> Any:
        write = real(*args)
        tries = {"n": 0}

        def attempt() -> Any:
            tries["n"] += 1
            found = write()
            if tries["n"] == 1:  # committed, then the reply is lost
                raise StateError("the reply was lost", transient=True)
            return found

        return attempt

    monkeypatch.setattr(store, "_appending", losing)
    trail(outcome)
    assert _kinds(store).count(outcome.name) == 1


@pytest.mark.parametrize("outcome", [APPLIED, FAILED], ids=["applied", "failed"])
def test_a_settlement_after_the_batchs_own_outcome_adds_no_second_one(
    store: StateStore, outcome: BatchApplied | BatchFailed
) -> None:
    """The reverse order of the race: the taker read batch 1 open, its holder (starved past
    its lease, not dead) then recorded batch.applied, then the taker's settlement comes.
    One outcome per batch: the settlement must not be recorded as a second one."""
    trail = AuditTrail(store, lambda: AT)
    _intent(trail)
    trail(outcome)
    with pytest.raises(AuditWriteError, match=f"has its outcome already \\({outcome.name}\\)"):
        trail(SETTLED)
    kinds = _kinds(store)
    assert (kinds.count(outcome.name), kinds.count("batch.settled")) == (1, 0)
