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
from typing import Union


class Outcome(enum.StrEnum):
    """How a customer × product run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    customer: str
    product: str
    at: dt.datetime
    dry_run: bool = False
    name = "run.started"


@dataclass(frozen=True)
class RuleEvaluated:
    """A rule's backlog at the start of its work: eligible rows and how overdue."""

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
    name = "rule.evaluated"


@dataclass(frozen=True)
class BatchIntent:
    """Written before a batch is applied: which (hashed) keys are about to change."""

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    key_hashes: tuple[str, ...]
    cutoff: dt.date
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
    name = "batch.applied"

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
    name = "run.finished"


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


Event = Union[  # noqa: UP007  (a runtime alias used in isinstance-free dispatch)
    RunStarted,
    RuleEvaluated,
    BatchIntent,
    BatchApplied,
    BatchFailed,
    RunFinished,
    ConnectorStatus,
    ConfigLoaded,
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
