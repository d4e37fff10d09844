"""Isolation inside a customer × product: one rule's failure, or a few refused rows, never
stop the rest.

Two levels:

- **Rules.** A rule whose own work fails (its table or a column gone, a statement the
  database refuses for every row, a tenant value that does not fit its table) is reported
  and the pair goes on with its next rule; the pair's outcome is then `failed`, its error
  naming each failed rule. What concerns the whole pair still stops it: the database
  unreachable (after the retries), COMMIT replies lost again and again, a lock or statement
  timeout (the next run tries again), the audit trail that cannot be written, a stop request.
  `rule_failure` tells the two apart.
- **Rows.** A batch the database refuses because of some of its rows (`RowsRefused`: a
  foreign key from a table outside the mapping still referencing a row — SQLSTATE 23503,
  MariaDB 1451 —, a CHECK, UNIQUE or NOT NULL constraint) is split in two, each half in a
  transaction of its own, and each half that is refused again is split again, down to single
  rows (`isolate`). The halves that go through are applied like any batch (intent, change,
  hold re-check, applied: worker/batches.py), with batch numbers of their own; the rows
  refused on their own are *blocked*: they stay, and a `batch.blocked` event reports their
  keyed hashes, the refusals (reduced to class, code and names: connectors/redact.py) and
  the transactions tried. The pair's outcome is then `partial` (unless a rule failed).

Bound: a batch of n rows with b blocked rows takes at most 2·b·⌈log2 n⌉ + 1 transactions
(each blocked row fails once per level of halving, each failed half has two children). Once
`BLOCKED_LIMIT` rows of one batch are singled out, the parts not yet tried are not split any
further: they are reported blocked as well (`unresolved`: they may hold good rows, which the
next run tries again). So a batch stops after at most about 2·BLOCKED_LIMIT·⌈log2 n⌉ + 1
transactions, whatever the database refuses.

Reconciliation stays exact: a refused transaction never commits, and its intent (written only
when a refusal comes at COMMIT, from a deferred constraint) is closed by a `batch.failed`; a
crash in between leaves an intent whose keys are all still there, which settles as not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import (
    AmbiguousCommit,
    ConnectorError,
    Key,
    LockTimeout,
    RowsRefused,
    StatementTimeout,
)
from worker.events import BatchBlocked, EventBus
from worker.keys import KeyHasher
from worker.runreport import RulePlan, RunReport

log = structlog.get_logger("worker.isolation")

# Rows of one batch singled out as blocked before the rest of the batch is reported blocked
# without splitting it further (see the module docstring for the bound it gives).
BLOCKED_LIMIT = 32
# Distinct refusal texts kept per batch (the same constraint usually refuses every row).
MAX_ERRORS = 5
# A part whose COMMIT reply is lost and that turns out rolled back is tried again this often.
LOST_COMMIT_TRIES = 4

ApplyPart = Callable[[Sequence[Key], "int | None", Set[str]], bool]
"""Apply keys as one batch of their own (number None: the next free one), with the held keys
to report; False when a lost COMMIT reply turned out rolled back; raises RowsRefused."""


class LostCommits(ConnectorError):
    """The reply to COMMIT was lost several times in a row: the connection, not a rule."""


def rule_failed(report: RunReport, rule: str, table: str, exc: Exception) -> str:
    """Record a rule's own failure in its plan (when it got one that far) and in the log; the
    text for the pair's error. `exc`'s text is safe: connectors reduce driver errors."""
    for plan in report.rules:
        if plan.rule == rule:
            plan.error = str(exc)
    log.error("rule.failed", rule=rule, table=table, error=str(exc))
    return f"rule {rule}: {exc}"


def rule_failure(exc: BaseException) -> bool:
    """True when `exc`, raised while a rule was worked on, is that rule's own failure: the
    pair's other rules can still run (see the module docstring). False for what concerns the
    whole pair: transient errors left after the retries, lost COMMIT replies, lock and
    statement timeouts, and anything that is not a `ConnectorError`."""
    if not isinstance(exc, ConnectorError) or exc.transient:
        return False
    return not isinstance(exc, AmbiguousCommit | LostCommits | LockTimeout | StatementTimeout)


@dataclass
class Isolated:
    """What splitting one refused batch found.

    `blocked`: keys refused on their own; `unresolved`: keys not tried any further once
    `BLOCKED_LIMIT` was reached; `errors`: distinct refusal texts (safe: reduced by the
    connector); `attempts`: transactions tried, the first (whole-batch) one included.
    """

    blocked: list[Key] = field(default_factory=list)
    unresolved: list[Key] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: int = 1

    @property
    def left(self) -> list[Key]:
        """Every key left unchanged because of a refusal: blocked, then unresolved."""
        return [*self.blocked, *self.unresolved]

    def note(self, error: RowsRefused) -> None:
        text = str(error)
        if text not in self.errors and len(self.errors) < MAX_ERRORS:
            self.errors.append(text)


def isolate(
    keys: Sequence[Key],
    attempt: Callable[[Sequence[Key]], None],
    refused: RowsRefused,
    limit: int = BLOCKED_LIMIT,
) -> Isolated:
    """Find the rows of a refused batch of `keys` by halving it (the whole batch was tried
    and refused with `refused`).

    `attempt(part)` applies `part` in one transaction of its own, or raises `RowsRefused`
    having changed nothing; any other error propagates (the rule fails). Parts are tried in
    key order. Raises ValueError when `limit` < 1.
    """
    if limit < 1:
        raise ValueError("the limit of blocked rows per batch must be at least 1")
    found = Isolated()
    found.note(refused)
    if len(keys) == 1:
        found.blocked.append(keys[0])
        return found
    pending = list(reversed(_halves(keys)))  # a stack: the first half is tried first
    while pending:
        part = pending.pop()
        if len(found.blocked) >= limit:
            found.unresolved.extend(part)
            continue
        found.attempts += 1
        try:
            attempt(part)
        except RowsRefused as again:
            found.note(again)
            if len(part) == 1:
                found.blocked.append(part[0])
            else:
                pending.extend(reversed(_halves(part)))
    return found


def _halves(keys: Sequence[Key]) -> list[Sequence[Key]]:
    middle = len(keys) // 2
    return [keys[:middle], keys[middle:]]


def split(
    bus: EventBus,
    plan: RulePlan,
    names: Mapping[str, Any],
    hasher: KeyHasher,
    refused_batch: tuple[Sequence[Key], int, Set[str]],
    refused: RowsRefused,
    apply_part: ApplyPart,
) -> Isolated:
    """A batch (keys, number, keyed hashes of the page's held keys) that the database refused
    with `refused`: apply its other rows as batches of their own (`isolate`), publish
    `batch.blocked` under the batch's number, and count the rows left in `plan.blocked`.

    `names` are the event's run_id, customer, product, rule, action and table. Raises
    LostCommits when a part's COMMIT reply is lost `LOST_COMMIT_TRIES` times in a row; other
    errors of `apply_part` propagate.
    """
    keys, batch, held = refused_batch
    unreported = [held]  # the page's held keys go with the first part applied

    def attempt(part: Sequence[Key]) -> None:
        for _ in range(LOST_COMMIT_TRIES):
            if apply_part(part, None, unreported[0]):
                unreported[0] = set()
                return
        raise LostCommits(
            f"the reply to COMMIT was lost {LOST_COMMIT_TRIES} times in a row for "
            f"{names['table']}; nothing of those batches was committed; check the network"
        )

    found = isolate(keys, attempt, refused)
    left = found.left
    bus.publish(
        BatchBlocked(
            batch=batch,
            key_hashes=tuple(sorted(hasher(k) for k in left)),
            unresolved=len(found.unresolved),
            errors=tuple(found.errors),
            attempts=found.attempts,
            **names,
        )
    )
    plan.blocked += len(left)
    return found
