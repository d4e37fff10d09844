"""Which log line each run event makes: its level and its fields (`LogSubscriber`).

Event names are the lines' names (`run.started`, `batch.applied`, `run.finished`, …) and stay
stable; the fields are counts, rule ids, table names, outcomes and durations, never a personal
value (hashed record keys are logged as their count only). Rendering and masking are
worker/logging.py's, which re-exports `LogSubscriber`.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from worker.events import (
    ApprovalChanged,
    BatchApplied,
    BatchBlocked,
    BatchFailed,
    BatchIntent,
    CheckpointMade,
    ConfigLoaded,
    ConnectorStatus,
    Event,
    HoldChanged,
    Outcome,
    PairSkipped,
    RuleEvaluated,
    RuleGated,
    RunFinished,
    RunStarted,
)
from worker.runreport import rule_due

__all__ = ["LogSubscriber"]

_OUTCOME_LEVEL = {
    Outcome.SUCCEEDED: logging.INFO,
    Outcome.PARTIAL: logging.WARNING,
    Outcome.INTERRUPTED: logging.WARNING,
    Outcome.FAILED: logging.ERROR,
}


class LogSubscriber:
    """EventBus subscriber: one log line per event, named by the event, with no personal data.

    Fields are counts, rule ids, table names, outcomes and durations; hashed record keys are
    logged as their count only.
    """

    def __init__(self, logger: Any = None) -> None:
        self._logger = logger if logger is not None else structlog.get_logger("worker.events")

    def __call__(self, event: Event) -> None:
        level, fields = _describe(event)
        self._logger.log(level, event.name, **fields)


def _run_fields(
    event: RunStarted
    | RuleEvaluated
    | RuleGated
    | BatchIntent
    | BatchApplied
    | BatchFailed
    | BatchBlocked
    | RunFinished
    | HoldChanged
    | ApprovalChanged,
) -> dict[str, Any]:
    return {"run_id": event.run_id, "customer": event.customer, "product": event.product}


def _describe(event: Event) -> tuple[int, dict[str, Any]]:
    """The level and the fields of the log line for `event`."""
    match event:
        case RunStarted():
            return logging.INFO, {
                **_run_fields(event),
                "dry_run": event.dry_run,
                "policy": event.policy,
                "as_of": event.as_of.isoformat() if event.as_of else None,
            }
        case RuleEvaluated():
            # A rule with nothing due says so at DEBUG (an idle tick would write one line per
            # rule of every pair); `run.finished` counts the rules and those with rows due.
            due = rule_due(event.eligible, event.held, event.gate) or event.after_batches
            level = logging.INFO if due else logging.DEBUG
            return level, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "eligible": event.eligible,
                "lag_seconds": event.lag_seconds,
                "cutoff": event.cutoff.isoformat(),
                "period": event.period,
                "source": event.source,
                "held": event.held,
                "gate": event.gate,
            }
        case RuleGated():
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "gate": event.gate,
                "why": event.why,
                "eligible": event.eligible,
                "reasons": list(event.reasons),
                "approval_id": event.approval_id,
                "hold_ids": list(event.hold_ids),
            }
        case HoldChanged():
            return logging.INFO, {
                **_run_fields(event),
                "hold_id": event.hold_id,
                "scope": event.scope,
                "matter": event.matter,
                "by": event.by,
                "rule": event.rule,
                "table": event.table,
            }
        case ApprovalChanged():
            level = logging.WARNING if event.change == "requested" else logging.INFO
            return level, {
                **_run_fields(event),
                "rule": event.rule,
                "approval_id": event.approval_id,
                "status": event.status,
                "why": event.why,
                "eligible": event.eligible,
                "cutoff": event.cutoff.isoformat(),
                "by": event.by,
                "approvers": event.approvers,
                "approvers_needed": event.approvers_needed,
            }
        case BatchIntent():
            return logging.DEBUG, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "keys": len(event.key_hashes),
                "cutoff": event.cutoff.isoformat(),
            }
        case BatchApplied():
            return logging.INFO, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "rows": dict(event.rows),
                "rows_total": event.total,
                "categories": list(event.categories),
                "duration_seconds": event.duration_seconds,
                "held": len(event.held),
            }
        case BatchFailed():
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "error": event.error,
                "duration_seconds": event.duration_seconds,
            }
        case BatchBlocked():  # counts and safe error text: never a key or a value
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "blocked": event.total,
                "unresolved": event.unresolved,
                "errors": list(event.errors),
                "attempts": event.attempts,
            }
        case RunFinished():
            processed = [
                {"rule": rule, "action": action, "rows": dict(rows)}
                for (rule, action), rows in event.processed.items()
            ]
            fields = {
                **_run_fields(event),
                "outcome": str(event.outcome),
                "dry_run": event.dry_run,
                "duration_seconds": event.duration_seconds,
                "processed": processed,
                "rows_total": sum(sum(rows.values()) for rows in event.processed.values()),
                "rules": event.rules,
                "rules_due": event.rules_due,
            }
            if event.error is not None:
                fields["error"] = event.error
            return _OUTCOME_LEVEL.get(Outcome(event.outcome), logging.ERROR), fields
        case CheckpointMade():
            return logging.INFO, {
                "seq": event.seq,
                "hash": event.hash,
                "at": event.at.isoformat(),
                "key_id": event.key_id,
                "signature": event.signature,
            }
        case ConnectorStatus():
            level = logging.INFO if event.up else logging.WARNING
            return level, {"customer": event.customer, "product": event.product, "up": event.up}
        case ConfigLoaded():
            level = logging.INFO if event.valid else logging.ERROR
            return level, {"valid": event.valid, "problems": event.problems}
        case PairSkipped():
            return logging.INFO, {
                "customer": event.customer,
                "product": event.product,
                "tick": event.tick.isoformat(),
                "why": event.why,
                "holder": event.holder,
            }
    return logging.DEBUG, {}
