"""Steps the batches of keyed and keyless tables share: settling a batch whose COMMIT reply
was lost, adding a batch's rows to the rule's figures, stopping a rule a new hold covers,
publishing a batch's outcome (refused when a run that took the pair over recorded it first:
`OutcomeRefused`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.base import Applied, Change, Connector, Target
from worker.batchsize import BatchSizer
from worker.config import ProductMapping
from worker.errors import AuditWriteError, RetentionError
from worker.events import BatchApplied, BatchFailed, BatchSettled, RuleGated
from worker.gate import held_by
from worker.holds import ActiveHolds
from worker.periods import add_period
from worker.policy import EffectiveRule
from worker.runreport import RulePlan
from worker.trailrows import BatchClosed

if TYPE_CHECKING:
    from worker.run import Runner


def settle_lost_commit(
    runner: Runner, connector: Connector, target: Target, change: Change, applied: Applied
) -> Applied | None:
    """What a batch whose COMMIT reply was lost really did: the transaction's own counts when
    every key is gone (or masked), None when none is (it rolled back), and for a mix the keys
    gone, counted in the subject table only."""
    left = runner._retry(connector.remaining, target, change, applied.changed_keys)
    gone = [k for k in applied.changed_keys if k not in left]
    if not gone:
        return None
    if len(gone) == len(applied.changed_keys):
        return applied
    return Applied({target.table.name: len(gone)}, gone, applied.held_keys)


def count_changed(plan: RulePlan, rows: Mapping[str, int]) -> None:
    for name, count in rows.items():
        plan.changed[name] = plan.changed.get(name, 0) + count


def stopped_by_hold(
    runner: Runner,
    holds: ActiveHolds,
    rule: EffectiveRule,
    plan: RulePlan,
    common: Mapping[str, Any],
    names: Mapping[str, str],
) -> bool:
    """True when a hold placed on the whole rule (or its pair) since the run began stops it
    before the next batch: the plan says so and a `rule.gated` event is published."""
    stopped = held_by(holds, rule)
    if not stopped:
        return False
    plan.gate, plan.why, plan.reasons = "held", "hold", (f"held by {stopped}",)
    runner.bus.publish(
        RuleGated(
            gate="held",
            why="hold",
            eligible=plan.eligible,
            reasons=plan.reasons,
            hold_ids=stopped,
            since=None,
            **common,
            **names,
        )
    )
    return True


# The most rows of one batch, whatever tuning finds (the configuration's `batch_size` bound).
MAX_BATCH = 50_000


def sizer_for(
    runner: Runner, mapping: ProductMapping, limit: int, where: tuple[str, str, str] | None = None
) -> BatchSizer:
    """The batch sizer of a rule: from the mapping's `batch_size`, tuned to its
    `batch_seconds` when set (worker/batchsize.py); `limit` is the connector's (keys per
    statement). A runner built with a batch size (the bench's `--batch-size`) fixes it.

    `where` (the connector's database, the table, the action) and the mapping's product key
    what the tuning learned: the next run there starts at the size this one reached
    (`Runner.learned_sizes`); another product's mapping of the same table (other
    dependents) and a changed `batch_size` or `batch_seconds` start afresh."""
    ceiling = min(limit, MAX_BATCH)
    if runner.batch_size:
        return BatchSizer(runner.batch_size, ceiling=ceiling)
    if where is None or mapping.batch_seconds is None:
        return BatchSizer(mapping.batch_size, ceiling=ceiling, target_seconds=mapping.batch_seconds)
    key = (*where, mapping.product, mapping.batch_size, mapping.batch_seconds, ceiling)
    learned = runner.learned_sizes
    return BatchSizer(
        learned.start(key, mapping.batch_size),
        ceiling=ceiling,
        target_seconds=mapping.batch_seconds,
        keep=learned.keeper(key),
    )


LOST_COMMIT = "LostCommit: the reply to COMMIT was lost and nothing was committed"


class OutcomeRefused(RetentionError):
    """This run's outcome of a batch was refused: a run that took the pair over (this run's
    lease was lost while it was starved) recorded the batch's outcome first. The run stops
    as interrupted."""


def publish_outcome(
    runner: Runner, plan: RulePlan, event: BatchApplied | BatchFailed | BatchSettled
) -> None:
    """Publish a batch's outcome. When the trail refuses it, another run having recorded the
    batch's outcome first (worker/trailrows.py `BatchClosed`), the rows that outcome counts
    under this run are added to the rule's figures (the run's end then counts each row the
    trail counts under it, once) and OutcomeRefused stops the run."""
    try:
        runner.bus.publish(event)
    except AuditWriteError as exc:
        closed = exc.__cause__
        if not isinstance(closed, BatchClosed):
            raise
        count_changed(plan, closed.rows)
        raise OutcomeRefused(str(exc)) from exc


def publish_failed(
    runner: Runner,
    plan: RulePlan,
    batch: int,
    error: str,
    started: float,
    labels: Mapping[str, Any],
) -> None:
    """`batch.failed` of batch `batch` begun at monotonic `started` (seconds); `labels` are
    the rule, action, table and run names."""
    duration = time.monotonic() - started
    publish_outcome(
        runner, plan, BatchFailed(batch=batch, error=error, duration_seconds=duration, **labels)
    )


def publish_applied(
    runner: Runner,
    mapping: ProductMapping,
    rule: EffectiveRule,
    plan: RulePlan,
    batch: int,
    applied: Applied,
    held: tuple[str, ...],
    started: float,
    labels: Mapping[str, Any],
) -> None:
    """`batch.applied`: the rows per table, the rule's categories, when the rows are gone
    from the product's backups too, the held records' hashes."""
    backups = runner.catalogue.products[mapping.product].backup_retention
    publish_outcome(
        runner,
        plan,
        BatchApplied(
            batch=batch,
            rows=dict(applied),
            categories=tuple(sorted(rule.categories)),
            gone_from_backups_by=add_period(plan.today, backups),
            duration_seconds=time.monotonic() - started,
            held=held,
            **labels,
        ),
    )
