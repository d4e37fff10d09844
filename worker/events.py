"""What happens during a run, as frozen facts. Audit, metrics and logs subscribe to them.

`run.py` publishes; subscribers never reach back into the run. Events carry rule ids,
table names, counts and keyed hashes of record keys: never a personal value.

Subscribers are called in the order they subscribed, synchronously. A subscriber that is
`required` (the audit trail) stops the run when it fails: a batch is applied only after
its intent has been written. Other subscribers' failures are reported and swallowed.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union


class Outcome(enum.StrEnum):
    """How a customer × product run ended."""

    SUCCEEDED = "succeeded"
    # Every rule ran, but the database refused some rows (worker/isolation.py): they stay,
    # reported by `batch.blocked`; the rest was done.
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"  # closed by a later start: the process died mid-run

    @property
    def complete(self) -> bool:
        """True when every rule of the run was worked through (succeeded, or partial)."""
        return self in (Outcome.SUCCEEDED, Outcome.PARTIAL)


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    customer: str
    product: str
    at: dt.datetime
    dry_run: bool = False
    # Fingerprint of the effective configuration the run follows (worker/fingerprint.py).
    policy: str = ""
    # The instant the rules were evaluated at: `run --once --at WHEN`, else the run's start.
    as_of: dt.datetime | None = None
    name = "run.started"


@dataclass(frozen=True)
class RuleEvaluated:
    """A rule's backlog at the start of its work: eligible rows and how overdue. A rule that
    ran batches is published again after them (`after_batches`), with the backlog they left.
    """

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    eligible: int
    lag_seconds: float
    cutoff: dt.date
    period: str
    source: str
    # Eligible rows kept because a legal hold covers them (included in `eligible`).
    held: int = 0
    # "" (runs), "held", "awaiting_approval", or "approved" (runs under an approval).
    gate: str = ""
    # True for the publication after the rule's batches: `eligible` is what they left.
    after_batches: bool = False
    name = "rule.evaluated"


@dataclass(frozen=True)
class RuleGated:
    """A rule changed nothing in this run: a legal hold stops it, or it waits for approval.

    `why` is `hold`, `flagged` (approval: required), `breaker` or `exceeds_approval`;
    `reasons` say what tripped in words; `since` is when the approval request was opened.
    """

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    gate: str  # held | awaiting_approval
    why: str
    eligible: int
    reasons: tuple[str, ...] = ()
    approval_id: str | None = None
    hold_ids: tuple[str, ...] = ()
    since: dt.datetime | None = None
    name = "rule.gated"


@dataclass(frozen=True)
class BatchIntent:
    """Written inside the batch's transaction, after the change and before COMMIT: the
    (hashed) keys it changes and the rows per table, dependents included. Nothing is
    committed unless this record is in the trail; if the worker dies after COMMIT, the
    intent says exactly what to settle."""

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    key_hashes: tuple[str, ...]
    cutoff: dt.date
    rows: Mapping[str, int] = field(default_factory=dict)
    # For anonymise: column → mask as written ({"mask": ..., "text"?: ..., "length"?: ...}), so
    # a crash is settled against the masks this batch wrote even if the rule changed since.
    masks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    name = "batch.intent"


@dataclass(frozen=True)
class BatchApplied:
    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    rows: Mapping[str, int]
    categories: tuple[str, ...]
    duration_seconds: float
    # The day the last backup holding these rows expires (Annex D.5): gone for good.
    gone_from_backups_by: dt.date | None = None
    # Keyed hashes of intended keys left unchanged: a legal hold was found on them in the
    # batch's own re-check.
    held: tuple[str, ...] = ()
    name = "batch.applied"

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class BatchSettled:
    """An intent left without its outcome (a crash, a lost COMMIT reply, the state database
    down after COMMIT) settled against the product database: keys gone (or masked) count as
    applied by that intent, keys still there as not applied. `run_id` is the intent's run;
    `settled_by` the run (or command) that settled it. `partial`: only some keys were gone,
    so `rows` counts the subject table only."""

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    rows: Mapping[str, int]
    applied: int
    not_applied: tuple[str, ...]
    settled_by: str
    partial: bool = False
    name = "batch.settled"

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class BatchFailed:
    """A batch was rolled back: nothing of it was changed."""

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    error: str
    duration_seconds: float
    name = "batch.failed"


@dataclass(frozen=True)
class BatchBlocked:
    """Rows of batch `batch` that the database refused (a foreign key still referencing them,
    a CHECK, UNIQUE or NOT NULL constraint) and that stay unchanged; the batch's other rows
    were applied as batches of their own (worker/isolation.py).

    `key_hashes`: keyed hashes of every row left so; `unresolved`: how many of them were not
    singled out, because the batch reached the limit of rows to single out (they may be
    fine, and are tried again by the next run); `errors`: the distinct refusals, reduced to
    safe text (connectors/redact.py); `attempts`: the transactions it took.
    """

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    key_hashes: tuple[str, ...]
    unresolved: int
    errors: tuple[str, ...]
    attempts: int
    name = "batch.blocked"

    @property
    def total(self) -> int:
        return len(self.key_hashes)


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    customer: str
    product: str
    outcome: Outcome
    at: dt.datetime
    duration_seconds: float
    # (rule, action) → rows changed, per table
    processed: Mapping[tuple[str, str], Mapping[str, int]] = field(default_factory=dict)
    error: str | None = None
    dry_run: bool = False
    # Rules evaluated, and those with rows eligible or held or stopped by their gate
    # (worker.runreport.rule_due); None when not known (a crashed run closed by another).
    rules: int | None = None
    rules_due: int | None = None
    name = "run.finished"


@dataclass(frozen=True)
class RunRecorded:
    """A run's end after the state database's answer: published once per run, after its
    `RunFinished`, by the process that ran it, and by the reconciler for a crashed run it
    closed. Not part of the trail (it says what the trail now holds).

    `outcome` is the run's outcome as this process ends it: the one stored when `stored`;
    otherwise `interrupted` when the trail already held another end of the run (its lease
    was lost and the new holder closed it as crashed: worker/state/runlog.py, `RunClosed`)
    or `failed` when the end could not be written. Metrics count runs from this event, so a
    counter never says more than the runs table (worker/metrics.py). `at` is UTC.
    """

    run_id: str
    customer: str
    product: str
    outcome: Outcome
    at: dt.datetime
    duration_seconds: float
    stored: bool
    dry_run: bool = False
    name = "run.recorded"


@dataclass(frozen=True)
class HoldChanged:
    """A legal hold was placed or released (`retention-worker holds add | release`).

    `run_id` names the command's own action (no run); `product` is "*" for a hold on a
    whole customer. `reason_sha256` binds the ledger's reason text without copying it.
    """

    run_id: str
    customer: str
    product: str
    hold_id: str
    change: str  # placed | released
    scope: str  # customer | product | rule | record
    matter: str
    by: str
    reason_sha256: str
    rule: str | None = None
    table: str | None = None
    key_hash: str | None = None

    @property
    def name(self) -> str:
        return f"hold.{self.change}"


@dataclass(frozen=True)
class ApprovalChanged:
    """An approval request was opened, decided (approve/reject) or closed (used/superseded)."""

    run_id: str
    customer: str
    product: str
    rule: str
    approval_id: str
    change: str  # requested | approved | rejected | used | superseded
    status: str  # the request's status after the change
    why: str
    eligible: int
    cutoff: dt.date
    bound: int
    by: str | None = None
    reason_sha256: str | None = None
    approvers: int = 0
    approvers_needed: int = 1

    @property
    def name(self) -> str:
        return f"approval.{self.change}"


@dataclass(frozen=True)
class CheckpointMade:
    """A run ended with a (signed) checkpoint of the audit chain's head."""

    seq: int
    hash: str
    at: dt.datetime
    key_id: str | None
    signature: str | None
    name = "audit.checkpoint"


@dataclass(frozen=True)
class ConnectorStatus:
    customer: str
    product: str
    up: bool
    name = "connector.status"


@dataclass(frozen=True)
class ConfigLoaded:
    valid: bool
    problems: int
    name = "config.loaded"


@dataclass(frozen=True)
class PairSkipped:
    """This process did not run a pair in its tick: another process holds its lease (`held`)
    or finished it (`done`); `holder` is that process's `host|pid` (worker/leases.py)."""

    customer: str
    product: str
    tick: dt.datetime
    why: str  # held | done
    holder: str
    name = "pair.skipped"


Event = Union[  # noqa: UP007  (a runtime alias used in isinstance-free dispatch)
    RunStarted,
    RuleEvaluated,
    RuleGated,
    BatchIntent,
    BatchApplied,
    BatchSettled,
    BatchFailed,
    BatchBlocked,
    RunFinished,
    RunRecorded,
    HoldChanged,
    ApprovalChanged,
    CheckpointMade,
    ConnectorStatus,
    ConfigLoaded,
    PairSkipped,
]

Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous publish/subscribe; required subscribers' errors propagate."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self.on_error: Callable[[Subscriber, Event, Exception], None] | None = None

    def subscribe(self, subscriber: Subscriber, *, required: bool = False) -> None:
        self._subscribers.append((subscriber, required))

    def publish(self, event: Event) -> None:
        """Deliver to every subscriber; then re-raise the first required one's failure."""
        failure: Exception | None = None
        for subscriber, required in self._subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # noqa: BLE001  (an observer must not stop the others)
                if required and failure is None:
                    failure = exc
                elif self.on_error is not None:
                    self.on_error(subscriber, event, exc)
        if failure is not None:
            raise failure
