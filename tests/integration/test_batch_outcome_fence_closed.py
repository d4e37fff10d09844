"""One outcome per batch, and each row counted once by the runs' ends (worker/trailrows.py,
worker/batchsteps.py), on SQLite and PostgreSQL state: what a run taken over while starved
may still record.

- a batch begun after another run closed this run as crashed is refused (its product
  transaction rolls back): that end counted the batches the run had;
- a crashed end, by another run, of a run with a batch open is refused: the run is alive
  (it began the batch after the closer settled its batches) and ends itself;
- a holder's outcome refused because a taker recorded the batch's outcome first stops the
  run as interrupted, and its figures get the rows that outcome counts under the run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from worker.audit import AuditTrail, AuditWriteError
from worker.batchsteps import OutcomeRefused, publish_outcome
from worker.events import (
    BatchApplied,
    BatchIntent,
    BatchSettled,
    EventBus,
    Outcome,
    RunFinished,
    RunStarted,
)
from worker.runreport import RulePlan
from worker.state import StateStore
from worker.state.models import audit_events, open_batches, runs
from worker.state.runlog import RunClosed
from worker.trailrows import BatchClosed, RunBusy

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
RUN = {"run_id": "r" * 32, "customer": "kdv-001", "product": "kidsapp"}
BATCH = {**RUN, "rule": "kidsapp.child", "action": "delete", "table": "child", "batch": 1}
ROWS = {"child": 3, "child_note": 6}


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    try:
        yield found
    finally:
        found.close()


def _intent(trail: AuditTrail, batch: int = 1) -> None:
    fields: dict[str, Any] = {**BATCH, "batch": batch}
    trail(BatchIntent(**fields, key_hashes=("a" * 64,), cutoff=AT.date(), rows=ROWS))


def _crashed(processed: dict[tuple[str, str], dict[str, int]] | None = None) -> RunFinished:
    why = "RunCrashed: the run ended without finishing; closed by run t"
    return RunFinished(
        **RUN,
        outcome=Outcome.CRASHED,
        at=AT,
        duration_seconds=0.0,
        processed=processed or {},
        error=why,
    )


def _read(store: StateStore, query: Any) -> list[Any]:
    return store.read("reading", lambda c: list(c.execute(query)))


def test_a_batch_of_a_run_closed_by_another_is_not_begun(store: StateStore) -> None:
    """Run R was closed as crashed by a taker (its lease was taken over); R, starved and
    awake again, begins batch 2: its intent is refused, so the product transaction it is
    written in rolls back, and R's crashed end stays the count of everything R changed."""
    trail = AuditTrail(store, lambda: AT)
    trail(RunStarted(**RUN, at=AT))
    _intent(trail, 1)
    trail(BatchApplied(**BATCH, rows=ROWS, categories=(), duration_seconds=0.1))
    trail(_crashed({("kidsapp.child", "delete"): ROWS}))
    with pytest.raises(AuditWriteError, match="already ended \\(crashed\\)") as caught:
        _intent(trail, 2)
    assert isinstance(caught.value.__cause__, RunClosed)
    kinds = [k for (k,) in _read(store, sa.select(audit_events.c.kind))]
    assert kinds == ["run.started", "batch.intent", "batch.applied", "run.finished"]
    assert _read(store, sa.select(open_batches)) == []


def test_a_crashed_end_of_a_run_with_a_batch_open_is_refused(store: StateStore) -> None:
    """A closer settled R's batches, then R (alive) began batch 2: R's crashed end would not
    count batch 2, whose outcome R records after it. The end is refused; R stays open."""
    trail = AuditTrail(store, lambda: AT)
    trail(RunStarted(**RUN, at=AT))
    _intent(trail, 2)
    with pytest.raises(AuditWriteError, match="has a batch open") as caught:
        trail(_crashed())
    assert isinstance(caught.value.__cause__, RunBusy)
    assert _read(store, sa.select(runs.c.outcome)) == [(None,)]
    # R records its outcome and its own end, which counts the batch.
    trail(BatchApplied(**{**BATCH, "batch": 2}, rows=ROWS, categories=(), duration_seconds=0.1))
    trail(
        RunFinished(
            **RUN,
            outcome=Outcome.INTERRUPTED,
            at=AT,
            duration_seconds=1.0,
            processed={("kidsapp.child", "delete"): ROWS},
        )
    )
    assert _read(store, sa.select(runs.c.outcome, runs.c.rows_changed)) == [("interrupted", 9)]


def test_an_own_end_with_a_batch_open_goes_through(store: StateStore) -> None:
    """A run that ends itself (failed: the state database refused its batch.applied) with a
    batch open is recorded: the batch is settled later."""
    trail = AuditTrail(store, lambda: AT)
    trail(RunStarted(**RUN, at=AT))
    _intent(trail, 1)
    trail(RunFinished(**RUN, outcome=Outcome.FAILED, at=AT, duration_seconds=1.0, error="x"))
    assert _read(store, sa.select(runs.c.outcome)) == [("failed",)]
    assert len(_read(store, sa.select(open_batches))) == 1


def _plan() -> RulePlan:
    return RulePlan(
        "kidsapp.child",
        "delete",
        "child",
        "24m",
        "default",
        AT.date(),
        AT.date(),
        eligible=3,
        lag_seconds=0.0,
    )


APPLIED = BatchApplied(**BATCH, rows=ROWS, categories=(), duration_seconds=0.1)
# R's own settlement of a batch whose COMMIT reply was lost (worker/batches.py).
OWN_SETTLED = BatchSettled(
    **BATCH, rows={"child": 3}, applied=3, not_applied=(), settled_by=RUN["run_id"], partial=True
)


@pytest.mark.parametrize("mine", [APPLIED, OWN_SETTLED], ids=["applied", "own-settlement"])
def test_a_holders_refused_outcome_stops_its_run_counting_the_takers_rows(
    store: StateStore, mine: BatchApplied | BatchSettled
) -> None:
    """The taker settled batch 1 of R (2 of its rows gone when it looked); R's own outcome
    is refused: R stops (OutcomeRefused, an interruption) and its figures count what the
    taker's settlement counts under R, not R's own view of the batch."""
    bus = EventBus()
    bus.subscribe(AuditTrail(store, lambda: AT), required=True)
    trail = AuditTrail(store, lambda: AT)
    _intent(trail, 1)
    taker = BatchSettled(
        **BATCH, rows={"child": 2}, applied=2, not_applied=("b" * 64,), settled_by="t", partial=True
    )
    trail(taker)
    plan = _plan()
    with pytest.raises(OutcomeRefused, match=f"{mine.name} is not recorded") as caught:
        publish_outcome(SimpleNamespace(bus=bus), plan, mine)  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, AuditWriteError)
    assert isinstance(caught.value.__cause__.__cause__, BatchClosed)
    assert plan.changed == {"child": 2}
    kinds = [k for (k,) in _read(store, sa.select(audit_events.c.kind))]
    assert kinds == ["batch.intent", "batch.settled"]
