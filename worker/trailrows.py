"""The rows the audit trail keeps in step with its records, in the same transaction: a
run's row in `runs` (`run.started` inserts it, `run.finished` sets its outcome) and a batch's
row in `open_batches` (an intent opens it, its outcome closes it). A batch gets one outcome
(`open_batch_keeping`, `BatchClosed`): a holder whose lease was lost and taken over does not
record `batch.applied` or `batch.failed` for a batch the taker already settled, and a taker
that read the batch open before its holder's outcome was committed does not record its
`batch.settled` after that outcome.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from worker.errors import StateError
from worker.events import (
    BatchApplied,
    BatchFailed,
    BatchIntent,
    BatchSettled,
    Event,
    Outcome,
    RunFinished,
    RunStarted,
)
from worker.owner import process_owner
from worker.state import AuditRecord
from worker.state.models import audit_events, open_batches, runs
from worker.state.runlog import RunClosed, finish_run_in, start_run_later_in
from worker.state.store import Also


def run_keeping(event: Event, payload: dict[str, Any], database: str) -> Also | None:
    """Keep `runs` in step with the trail: `run.started` inserts the run's row and
    `run.finished` sets its outcome, in the same transaction as the record (never a record
    without its row or a row without its record; both ends in one: one INSERT, `runlog`)."""
    if isinstance(event, RunStarted):
        owner = process_owner()

        def start(conn: Connection, _record: AuditRecord) -> None:
            start_run_later_in(
                conn, event.run_id, event.customer, event.product, event.at, event.dry_run, owner
            )

        return start
    if isinstance(event, RunFinished):

        def finish(conn: Connection, _record: AuditRecord) -> None:
            if (
                event.outcome is Outcome.CRASHED
                and conn.execute(
                    sa.select(sa.exists().where(open_batches.c.run_id == event.run_id))
                ).scalar()
            ):
                # Another run closes this one, which began a batch after the closer settled
                # its batches: it is alive (starved past its lease, awake again). Its end
                # would not count that batch; it is left open (`RunBusy`).
                raise RunBusy(
                    f"run {event.run_id} has a batch open: it is in progress, and is not "
                    "closed as crashed"
                )
            finish_run_in(
                conn,
                event.run_id,
                str(event.outcome),
                event.at,
                payload["rows_changed"],
                event.error,
                database,
            )

        return finish
    return None


def open_batch_keeping(event: Event) -> Also | None:
    """Keep `open_batches` in step with the trail: an intent opens a batch, its outcome
    (applied, failed or settled) closes it, in the same transaction as the record."""
    if isinstance(event, BatchIntent):

        def open_batch(conn: Connection, record: AuditRecord) -> None:
            key = _batch_key(event)
            is_open, ended = conn.execute(
                sa.select(
                    sa.exists().where(*key),
                    sa.select(runs.c.outcome)
                    .where(runs.c.run_id == event.run_id)
                    .scalar_subquery(),
                )
            ).one()
            if ended is not None:
                # Another run closed this one (its lease was taken over while it was
                # starved): its end counted the batches it had. A batch begun after it
                # would change rows no end counts; the product transaction rolls back.
                raise RunClosed(
                    f"run {event.run_id} already ended ({ended}): its batch {event.batch} "
                    f"of rule {event.rule} is not begun"
                )
            if not is_open:
                conn.execute(
                    open_batches.insert().values(
                        run_id=event.run_id,
                        rule=event.rule,
                        batch=event.batch,
                        customer=event.customer,
                        product=event.product,
                        intent_seq=record.seq,
                    )
                )

        return open_batch
    if isinstance(event, BatchApplied | BatchFailed | BatchSettled):

        def close_batch(conn: Connection, record: AuditRecord) -> None:
            closed = conn.execute(open_batches.delete().where(*_batch_key(event))).rowcount
            if closed:
                return
            found = _other_outcome(conn, event, record.seq)
            if found is None:
                return
            other, rows = found
            if isinstance(event, BatchSettled):
                # A taker read the batch open, then its holder (starved past its lease, not
                # dead) recorded its own outcome first; or another settler came first.
                raise BatchClosed(
                    f"batch {event.batch} of rule {event.rule} of run {event.run_id} has its "
                    f"outcome already ({other}): this {event.name} is not recorded",
                    rows,
                )
            # A process whose lease was lost (starved past it) and taken over: the taker
            # settled this batch already.
            raise BatchClosed(
                f"batch {event.batch} of rule {event.rule} of run {event.run_id} was "
                f"settled by another run, which took this pair over (this run's lease was "
                f"lost): its {event.name} is not recorded",
                rows,
            )

        return close_batch
    return None


class RunBusy(StateError):
    """A run's crashed end, by another run, refused: the run has a batch open, begun after
    the closer settled the run's batches (`run_keeping`). Not transient."""


class BatchClosed(StateError):
    """A batch's outcome was recorded already by another record (`open_batch_keeping`):
    one outcome per batch in the trail. Not transient: the record is refused for good.
    `rows`: the rows per table that outcome counts under the batch's run (what the run's
    own end counts for the batch: worker/batchsteps.py `publish_outcome`)."""

    def __init__(self, message: str, rows: dict[str, int] | None = None) -> None:
        super().__init__(message, transient=False)
        self.rows = dict(rows or {})


_OUTCOMES = (BatchApplied.name, BatchFailed.name, BatchSettled.name)


def _other_outcome(
    conn: Connection, event: BatchApplied | BatchFailed | BatchSettled, seq: int
) -> tuple[str, dict[str, int]] | None:
    """The kind and rows of an outcome of this very batch already in the trail, other than
    the record `seq` (this record, new or found by a retry), or None. A batch without its row
    and without another outcome is this record's own first attempt, whose COMMIT's reply
    was lost: retried, it must go through."""
    found = conn.execute(
        sa.select(audit_events.c.seq, audit_events.c.kind, audit_events.c.payload).where(
            audit_events.c.run_id == event.run_id,
            audit_events.c.rule == event.rule,
            audit_events.c.kind.in_(_OUTCOMES),
        )
    )
    for other_seq, kind, payload in found:
        other = json.loads(payload)
        if other_seq != seq and other.get("batch") == event.batch:
            return str(kind), {t: int(n) for t, n in other.get("rows", {}).items()}
    return None


def _batch_key(
    event: BatchIntent | BatchApplied | BatchFailed | BatchSettled,
) -> tuple[ColumnElement[bool], ...]:
    return (
        open_batches.c.run_id == event.run_id,
        open_batches.c.rule == event.rule,
        open_batches.c.batch == event.batch,
    )
