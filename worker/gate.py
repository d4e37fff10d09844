"""Before a rule changes anything: the holds, approvals and the breaker that a person controls.

Precedence, strongest first (docs/approvals.md): a legal hold stops a rule or keeps a record,
whatever else applies; then the legal floor, the customer's setting and the default decide the
period (worker/policy.py); then a rule flagged `approval: required`, or one that trips the
blast-radius breaker (worker/breaker.py), waits for a person's approval.

`Gatekeeper` reads and writes what a person decided, in the state database. A run asks it once
per rule, after counting the eligible rows: `gate()` answers whether the rule may go on, and
opens or updates an approval request when it may not (never in a dry run, which only says what
would wait). Without a state database (`plan` on a machine with none) nothing is held,
nothing approved and there is no history: flagged rules show as waiting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from worker.approvals import Approval, ApprovalLedger
from worker.breaker import judge
from worker.events import (
    ApprovalChanged,
    Event,
    EventBus,
    Outcome,
    RuleEvaluated,
    RunFinished,
    RunStarted,
)
from worker.holds import ActiveHolds, HoldLedger
from worker.policy import EffectiveRule
from worker.state import StateStore
from worker.state.models import policies, rule_history

if TYPE_CHECKING:
    from worker.pairstate import PairState

Clock = Callable[[], dt.datetime]

# The policies each state store holds, as far as this process stored them (`remember_policy`).
# The statements below are built once (not per run).
_KEPT: weakref.WeakKeyDictionary[StateStore, set[str]] = weakref.WeakKeyDictionary()
_ADD_HISTORY = rule_history.insert()
_KEEP_POLICY = {
    "postgresql": postgresql.insert(policies).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(policies).on_conflict_do_nothing(),
}


def reason_digest(text: str) -> str:
    """SHA-256 of an operator's reason: the audit trail binds the ledger's text, not a copy."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Gate:
    """What may happen to one rule in one run.

    `proceed`: the rule may change its eligible rows (under `approval` when set). Otherwise
    `state` says why not: `held` (by `hold_ids`) or `awaiting_approval` (why: flagged,
    breaker or exceeds_approval; `reasons` in words; `approval` the request).
    """

    proceed: bool
    state: str = ""  # "" | "approved" | "held" | "awaiting_approval"
    why: str = ""
    reasons: tuple[str, ...] = ()
    approval: Approval | None = None
    hold_ids: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)


GO = Gate(proceed=True)


def held_by(holds: ActiveHolds, rule: EffectiveRule) -> tuple[str, ...]:
    """Ids of the holds that stop a whole rule: on the customer, the pair, the rule, or (for a
    stage of a phased rule) the phased rule as a whole."""
    found = holds.blocking(rule.id)
    if rule.rule.id != rule.id:
        found += holds.blocking(rule.rule.id)
    return tuple(sorted({h.hold_id for h in found}))


class Gatekeeper:
    """Holds, approvals and rule history for runs; `store` None means no state database."""

    def __init__(self, store: StateStore | None, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.holds = HoldLedger(store) if store is not None else None
        self.approvals = ApprovalLedger(store) if store is not None else None

    def active_holds(
        self, customer: str, product: str, known: PairState | None = None
    ) -> ActiveHolds:
        """The holds in force on a pair (none without a state database, or when `known`,
        read a moment ago, says it has none: worker/pairstate.py)."""
        if self.holds is None or (known is not None and not known.holds):
            return ActiveHolds()
        return self.holds.active_for(customer, product)

    def approval(self, customer: str, product: str, rule: str) -> Approval | None:
        """The rule's open (waiting or approved) request, if any."""
        if self.approvals is None:
            return None
        return self.approvals.open_for(customer, product, rule)

    def approvals_of(
        self, customer: str, product: str, known: PairState | None = None
    ) -> dict[str, Approval]:
        """Every rule's open (waiting or approved) request of a pair, by rule id (none
        when `known` says it has none)."""
        if self.approvals is None or (known is not None and not known.approvals):
            return {}
        return self.approvals.open_for_pair(customer, product)

    def remember_policy(self, fingerprint: str, text: str, at: dt.datetime) -> None:
        """Keep the policy document a fingerprint names (once), for `audit policy`; `text`
        is its canonical JSON (worker/fingerprint.py `policy_text`).

        Once this process has stored it in this state store (its transaction committed), later
        runs skip the write: the worker never deletes a policy, so it is there."""
        if self.store is None:
            return
        kept = _KEPT.setdefault(self.store, set())
        if fingerprint in kept:
            return

        def write(conn: sa.Connection, _retried: bool) -> None:
            row = {
                "fingerprint": fingerprint,
                "document": text,
                "first_seen": at.astimezone(dt.UTC),
            }
            # One statement: the first process to see a policy keeps it, the others skip.
            conn.execute(_KEEP_POLICY[conn.dialect.name], row)

        self.store.write_later(
            f"policy {fingerprint}", write, committed=lambda: kept.add(fingerprint)
        )

    def history(self, customer: str, product: str, rule: str, runs: int) -> list[int]:
        """Rows the rule changed in its last `runs` successful real runs, newest first."""
        if self.store is None:
            return []
        query = (
            sa.select(rule_history.c.changed)
            .where(
                rule_history.c.customer == customer,
                rule_history.c.product == product,
                rule_history.c.rule == rule,
            )
            .order_by(rule_history.c.finished_at.desc())
            .limit(runs)
        )
        return self.store.read(
            f"reading the history of {rule}",
            lambda conn: [int(n) for n in conn.execute(query).scalars()],
        )

    def gate(
        self,
        *,
        run_id: str,
        customer: str,
        product: str,
        rule: EffectiveRule,
        holds: ActiveHolds,
        approval: Approval | None,
        eligible: int,
        cutoff: dt.date,
        table_rows: Callable[[], int],
        dry_run: bool,
    ) -> Gate:
        """Decide whether `rule` may change its `eligible` rows now (see the module docstring).

        `table_rows` counts the customer's rows in the rule's table; it is called only when the
        breaker needs the share. In a real run, a rule that must wait gets an approval request
        (opened, or the waiting one updated) and an `approval.requested` event when new.
        """
        held = held_by(holds, rule)
        if held:
            return Gate(False, "held", "hold", (f"held by {', '.join(held)}",), hold_ids=held)
        if eligible == 0:
            return self._withdraw(run_id, approval, dry_run)
        if approval is not None and approval.status == "approved":
            if eligible <= approval.approved_bound:
                return Gate(True, "approved", approval.why, approval=approval)
            reason = (
                f"{eligible} eligible rows exceed the {approval.approved_bound} that approval "
                f"{approval.approval_id} covers"
            )
            if not dry_run and self.approvals is not None:
                self.approvals.close(
                    approval.approval_id, "superseded", at=self.clock(), run_id=run_id
                )
                self._changed(run_id, approval, "superseded", "superseded")
            return self._wait(
                run_id,
                customer,
                product,
                rule,
                "exceeds_approval",
                (reason,),
                {},
                eligible,
                cutoff,
                dry_run,
            )
        if rule.approval_required:
            return self._wait(
                run_id,
                customer,
                product,
                rule,
                "flagged",
                ("the rule is approval-only (approval: required)",),
                {},
                eligible,
                cutoff,
                dry_run,
            )
        limits = rule.limits
        rows = table_rows() if eligible >= limits.min_rows else None
        history = self.history(customer, product, rule.id, limits.history)
        verdict = judge(eligible, rows, history, limits)
        if verdict.ok:
            return self._withdraw(run_id, approval, dry_run)
        return self._wait(
            run_id,
            customer,
            product,
            rule,
            "breaker",
            verdict.tripped,
            verdict.figures,
            eligible,
            cutoff,
            dry_run,
        )

    def _wait(
        self,
        run_id: str,
        customer: str,
        product: str,
        rule: EffectiveRule,
        why: str,
        reasons: tuple[str, ...],
        figures: dict[str, Any],
        eligible: int,
        cutoff: dt.date,
        dry_run: bool,
    ) -> Gate:
        figures = {**figures, "eligible": eligible, "reasons": list(reasons)}
        if dry_run or self.approvals is None:
            return Gate(False, "awaiting_approval", why, reasons, figures=figures)
        ledger_why = "flagged" if why == "flagged" else "breaker"
        approval, new = self.approvals.request(
            customer=customer,
            product=product,
            rule=rule.id,
            why=ledger_why,
            cutoff=cutoff,
            eligible=eligible,
            figures={
                **figures,
                "table": rule.subject.table,
                "action": str(rule.action),
                "categories": sorted(rule.categories),
            },
            approvers_needed=rule.approvers_needed,
            at=self.clock(),
        )
        if new:
            self._changed(run_id, approval, "requested", "waiting")
        return Gate(False, "awaiting_approval", why, reasons, approval=approval, figures=figures)

    def _withdraw(self, run_id: str, approval: Approval | None, dry_run: bool) -> Gate:
        """The rule may go on without a person: a request still waiting for it (the breaker
        no longer trips, nothing is eligible) is closed as superseded, so nobody is asked to
        decide what no run waits for."""
        waiting = approval is not None and approval.status == "waiting"
        if waiting and approval is not None and not dry_run and self.approvals is not None:
            self.approvals.close(approval.approval_id, "superseded", at=self.clock(), run_id=run_id)
            self._changed(run_id, approval, "superseded", "superseded")
        return GO

    def used(self, run_id: str, approval: Approval) -> None:
        """The rule ran under `approval`: close it, so the next run asks again."""
        if self.approvals is None:
            return
        self.approvals.close(approval.approval_id, "used", at=self.clock(), run_id=run_id)
        self._changed(run_id, approval, "used", "used")

    def _changed(self, run_id: str, approval: Approval, change: str, status: str) -> None:
        self.bus.publish(
            ApprovalChanged(
                run_id=run_id,
                customer=approval.customer,
                product=approval.product,
                rule=approval.rule,
                approval_id=approval.approval_id,
                change=change,
                status=status,
                why=approval.why,
                eligible=approval.eligible,
                cutoff=approval.cutoff,
                bound=approval.bound,
                approvers=len(approval.approvers),
                approvers_needed=approval.approvers_needed,
            )
        )


class HistoryRecorder:
    """EventBus subscriber: after a successful real run, the rows each rule changed.

    Only rules that ran count (not held, not waiting): the breaker's trailing average is of
    normal nights. Rows are those of the rule's own table (its eligible rows), not dependents.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._dry: set[str] = set()
        self._rules: dict[str, dict[str, tuple[str, str, int]]] = {}

    def __call__(self, event: Event) -> None:
        match event:
            case RunStarted():
                if event.dry_run:
                    self._dry.add(event.run_id)
            case RuleEvaluated() if event.run_id not in self._dry:
                seen = self._rules.setdefault(event.run_id, {})
                if event.rule not in seen and event.gate in ("", "approved"):
                    seen[event.rule] = (event.action, event.table, event.eligible)
            case RunFinished():
                self._dry.discard(event.run_id)
                seen = self._rules.pop(event.run_id, {})
                if Outcome(event.outcome).complete and not event.dry_run and seen:
                    self._write(event, seen)
            case _:
                pass

    def _write(self, event: RunFinished, seen: dict[str, tuple[str, str, int]]) -> None:
        rows = [
            {
                "run_id": event.run_id,
                "rule": rule,
                "customer": event.customer,
                "product": event.product,
                "finished_at": event.at.astimezone(dt.UTC),
                "eligible": eligible,
                "changed": int(event.processed.get((rule, action), {}).get(table, 0)),
            }
            for rule, (action, table, eligible) in seen.items()
        ]

        def write(conn: sa.Connection, retried: bool) -> None:
            fresh = rows
            # Only a retry can find rows of its own earlier attempt (committed, its reply
            # lost): the first one skips that read. A run's history is queued once (its
            # rules are forgotten at its end), and the key (run, rule) refuses a second.
            if retried:
                done = set(
                    conn.execute(
                        sa.select(rule_history.c.rule).where(rule_history.c.run_id == event.run_id)
                    ).scalars()
                )
                fresh = [r for r in rows if r["rule"] not in done]
            if fresh:
                conn.execute(_ADD_HISTORY, fresh)

        self._store.write_later(f"the rule history of run {event.run_id}", write, optional=True)
