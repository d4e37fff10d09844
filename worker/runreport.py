"""What one run of a customer × product found and did: per rule, and for the pair.

Built by worker/run.py as the run goes (a run stopped halfway still reports what it
changed), printed by worker/report.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from worker.errors import RetentionError
from worker.events import Outcome

# Gate states under which a rule changes its rows (worker/gate.py `Gate.state`): none, or
# under an approval; `held` and `awaiting_approval` stop it.
PROCEEDING = ("", "approved")


def rule_due(eligible: int, held: int, gate: str) -> bool:
    """Whether a rule evaluated with these figures (a `RulePlan`'s, a `RuleEvaluated`'s) had
    something to do: rows eligible, rows a legal hold keeps, or a gate that stopped it."""
    return eligible > 0 or held > 0 or gate not in PROCEEDING


@dataclass
class RulePlan:
    """A rule's figures in one run: what was eligible and what changed."""

    rule: str
    action: str
    table: str
    period: str
    source: str
    cutoff: dt.date
    # The customer's calendar date the rows change on (backups expire from it): that of the
    # cutoff's evaluation, or of the clock when later (`run --once --at` an earlier instant).
    today: dt.date
    eligible: int
    lag_seconds: float
    changed: dict[str, int] = field(default_factory=dict)
    # A dry run's count of what a run would change, per table (Connector.preview): empty
    # when the rule would change nothing (held, waiting for approval, nothing eligible).
    would_change: dict[str, int] = field(default_factory=dict)
    # A dry run's eligible rows of the subject a run would block at least (Connector.
    # foresee: the database's ON DELETE / ON UPDATE keys reach rows it must not touch), and
    # those rows per reason (keys and tables, never a value); left out of `would_change`.
    would_block: int = 0
    block_reasons: dict[str, int] = field(default_factory=dict)
    # Eligible rows a legal hold keeps (part of `eligible`).
    held: int = 0
    # "" (ran), "approved" (ran under an approval), "held", "awaiting_approval".
    gate: str = ""
    why: str = ""  # hold | flagged | breaker | exceeds_approval
    reasons: tuple[str, ...] = ()
    approval_id: str | None = None
    # Eligible rows the database refused and that stay (worker/isolation.py).
    blocked: int = 0
    # The rule's own failure (the pair's other rules still ran); None when it did not fail.
    error: str | None = None
    # Tables whose rows the rule changes otherwise than its action (worker.rulework.
    # table_actions): related rows deleted under an anonymise rule, foreign keys set to NULL.
    actions: dict[str, str] = field(default_factory=dict)

    @property
    def due(self) -> bool:
        """Whether the rule had something to do when evaluated (`rule_due`)."""
        return rule_due(self.eligible, self.held, self.gate)


@dataclass(frozen=True)
class Skipped:
    """A pair this process did not run (worker/leases.py): `why` is `held` (another process
    works it now) or `done` (another process finished it in this tick); `holder` is that
    process's `host|pid`; `tick` the schedule's tick (UTC); `wait_seconds` how long the
    holder's lease lasts unless renewed."""

    why: str
    holder: str
    tick: dt.datetime
    wait_seconds: float = 0.0


@dataclass
class RunReport:
    run_id: str
    customer: str
    product: str
    outcome: Outcome
    dry_run: bool
    rules: list[RulePlan] = field(default_factory=list)
    error: str | None = None
    # Set when the pair was not run because another process holds or finished it (no
    # run_id then, and nothing in the runs table or the audit trail).
    skipped: Skipped | None = None

    @property
    def changed(self) -> int:
        return sum(sum(r.changed.values()) for r in self.rules)

    @property
    def would_change(self) -> dict[str, int]:
        """A dry run's rows per table that a run would change, over every rule."""
        tables: dict[str, int] = {}
        for plan in self.rules:
            for table, count in plan.would_change.items():
                tables[table] = tables.get(table, 0) + count
        return tables

    @property
    def would_block(self) -> int:
        """A dry run's eligible rows a run would block at least, over every rule."""
        return sum(r.would_block for r in self.rules)

    @property
    def awaiting(self) -> list[RulePlan]:
        """Rules that changed nothing because they wait for a person's approval."""
        return [r for r in self.rules if r.gate == "awaiting_approval"]

    @property
    def held(self) -> int:
        """Eligible rows kept by legal holds."""
        return sum(r.held for r in self.rules)

    @property
    def blocked(self) -> int:
        """Eligible rows the database refused to change (they stay; worker/isolation.py)."""
        return sum(r.blocked for r in self.rules)


class UnexpectedRunError(RetentionError):
    """A run failed on an unexpected error; its report says which pair."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(f"{report.customer} × {report.product}: {report.error}")
        self.report = report
