"""The work of one rule within a run: count, gate, then change in batches.

For each rule of a customer × product run (worker/run.py): its backlog at its cutoff (all
rules counted at once first, `count_backlogs`), the keys a record hold covers, the gate's
decision, the rule's figures in the report and its `RuleEvaluated` events (the backlog and
its lag before and after), and the batches themselves (worker/batches.py). Functions take
the `Runner` for its gatekeeper, bus, clock, pepper, batch size and retry policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from connectors import sqlcount
from connectors.base import (
    Backlog,
    Basis,
    Change,
    Connector,
    ConnectorError,
    Key,
    RefAction,
    Target,
)
from worker.approvals import Approval
from worker.batches import run_batches
from worker.config import Customer, ProductMapping
from worker.errors import RetentionError
from worker.events import RuleEvaluated, RuleGated
from worker.holds import ActiveHolds
from worker.keys import KeyHasher
from worker.policy import EffectiveRule, cutoff_on, overdue_seconds, rule_cutoff
from worker.runreport import RulePlan, RunReport
from worker.targets import overlapping, target_for

if TYPE_CHECKING:
    from worker.run import Runner


def run_rule(
    runner: Runner,
    connector: Connector,
    customer: Customer,
    mapping: ProductMapping,
    rule: EffectiveRule,
    now: dt.datetime,
    report: RunReport,
    holds: ActiveHolds,
    also: tuple[Basis, ...] = (),
    gone: list[Target] | None = None,
    counted: Mapping[str, tuple[Target, Backlog]] | None = None,
    approvals: Mapping[str, Approval] | None = None,
) -> None:
    """Count a rule's backlog, ask the gate, then (unless dry) work through it in batches.

    `approvals`: the pair's open approval requests by rule id, read once for the pair
    (`Gatekeeper.approvals_of`); None reads this rule's.

    The rule's figures join the report before the first batch, so a run that is
    stopped or fails halfway still reports what it changed. A rule the gate stops (a
    legal hold, an approval to wait for) changes nothing; the run goes on with the next.
    In a dry run, `gone` collects the targets of the pair's delete rules that would run,
    and each later rule reads related tables without their rows (see `Target.gone`).
    """
    chosen = customer.products[mapping.product]
    cutoff = rule_cutoff(rule, now, customer.timezone)
    keeper = runner.gatekeeper
    if approvals is None:
        approval = keeper.approval(customer.customer, mapping.product, rule.id)
    else:
        approval = approvals.get(rule.id)
    if approval is not None and approval.status == "approved":
        # An approval covers the cutoff its approver saw, never a later one.
        day = min(cutoff.date, approval.approved_cutoff)
        cutoff = cutoff_on(rule, cutoff.today, day, customer.timezone)
    target = target_for(rule, mapping, chosen, cutoff, also)
    if report.dry_run and gone:
        target = replace(target, gone=tuple(gone))
    early = (counted or {}).get(rule.id)
    if early is not None and early[0] == target and not any(p.changed for p in report.rules):
        backlog = early[1]  # counted with every rule, and no row changed since
    else:
        backlog = runner._retry(connector.backlog, target)
    hasher = KeyHasher(runner.pepper, customer.customer, mapping.product, target.table.name)
    held_keys = held_records(runner, connector, target, holds, hasher, mapping)
    held = len(held_keys)
    gate = keeper.gate(
        run_id=report.run_id,
        customer=customer.customer,
        product=mapping.product,
        rule=rule,
        holds=holds,
        approval=approval,
        eligible=backlog.count - held,
        cutoff=cutoff.date,
        table_rows=lambda: runner._retry(connector.count_rows, target),
        dry_run=report.dry_run,
    )
    plan = RulePlan(
        rule=rule.id,
        action=str(rule.action),
        table=rule.subject.table,
        period=str(rule.period),
        source=str(rule.source),
        cutoff=cutoff.date,
        # Rows change today, even when rules are evaluated at an earlier `--at`.
        today=max(cutoff.today, rule_cutoff(rule, runner.clock(), customer.timezone).today),
        eligible=backlog.count,
        lag_seconds=lag_seconds(rule, backlog.oldest, backlog.count, now, customer.timezone),
        held=backlog.count if gate.state == "held" else held,
        gate=gate.state,
        why=gate.why,
        reasons=gate.reasons,
        approval_id=gate.approval.approval_id if gate.approval else None,
        actions=table_actions(connector, target, str(rule.action)),
    )
    report.rules.append(plan)
    names = {"run_id": report.run_id, "customer": customer.customer, "product": mapping.product}
    publish_evaluated(runner, plan, names)
    if report.dry_run and gone is not None and gate.proceed and plan.action == "delete":
        gone.append(target)
    if not gate.proceed:
        runner.bus.publish(
            RuleGated(
                rule=rule.id,
                action=plan.action,
                table=plan.table,
                gate=gate.state,
                why=gate.why,
                eligible=backlog.count,
                reasons=gate.reasons,
                approval_id=plan.approval_id,
                hold_ids=gate.hold_ids,
                since=gate.approval.requested_at if gate.approval else None,
                **names,
            )
        )
        return
    if report.dry_run and backlog.count - held:
        would = replace(target, held=target.held | held_keys) if held_keys else target
        seen = runner._retry(connector.foresee, would, Change(plan.action))
        plan.would_change, plan.would_block = seen.changed, seen.blocked
        plan.block_reasons = seen.reasons
    if report.dry_run or backlog.count - held == 0:
        return
    emptied = run_batches(runner, connector, customer, mapping, rule, target, plan, names, hasher)
    if gate.approval is not None:
        keeper.used(report.run_id, gate.approval)
    # Counted again unless the batches ended on an empty selection with nothing skipped:
    # then nothing is left, and a count would read the same rows to say so.
    remaining = Backlog(0, None) if emptied else runner._retry(connector.backlog, target)
    lag = lag_seconds(rule, remaining.oldest, remaining.count, now, customer.timezone)
    # The backlog left behind, so the eligible and lag gauges show what is still owed.
    left = replace(plan, eligible=remaining.count, lag_seconds=lag)
    publish_evaluated(runner, left, names, after_batches=True)


def count_backlogs(
    runner: Runner,
    connector: Connector,
    customer: Customer,
    mapping: ProductMapping,
    rules: Sequence[EffectiveRule],
    now: dt.datetime,
) -> dict[str, tuple[Target, Backlog]]:
    """Every rule's backlog at its own cutoff, in one statement (connectors.sqlcount),
    by rule id with the target counted. A rule uses its count only when its target is
    that one (an approval can move the cutoff) and no row has changed in this run yet;
    otherwise it counts again. Nothing is counted here when a cutoff cannot be computed or
    the grouped statement fails (the rule reports that itself, in turn). When the tick's
    joint check of the shared database (worker/together.py) found none of the rules due,
    each gets a backlog of 0 without a count."""
    try:
        targets = rule_targets(customer, mapping, rules, now)
    except (RetentionError, ValueError, OverflowError):
        return {}
    together = runner.together
    if together is not None and together.nothing_due(connector, customer, mapping, rules, targets):
        return {ident: (t, Backlog(0, None)) for ident, t in targets.items()}
    try:
        found = runner._retry(sqlcount.backlogs, connector, list(targets.values()))
    except ConnectorError:
        # One rule's table or column may be gone: each rule then counts on its own, and the
        # one that cannot fails alone (worker/isolation.py), the others go on.
        return {}
    return {ident: (t, b) for (ident, t), b in zip(targets.items(), found, strict=True)}


def rule_targets(
    customer: Customer,
    mapping: ProductMapping,
    rules: Sequence[EffectiveRule],
    now: dt.datetime,
) -> dict[str, Target]:
    """Each rule's target at its own cutoff at `now` (UTC), by rule id, in `rules`' order.
    Raises RetentionError, ValueError or OverflowError when a cutoff cannot be computed."""
    chosen = customer.products[mapping.product]
    by_id = {r.id: r for r in rules}
    return {
        r.id: target_for(
            r,
            mapping,
            chosen,
            rule_cutoff(r, now, customer.timezone),
            overlapping(r, by_id, now, customer.timezone),
        )
        for r in rules
    }


def held_records(
    runner: Runner,
    connector: Connector,
    target: Target,
    holds: ActiveHolds,
    hasher: KeyHasher,
    mapping: ProductMapping,
) -> frozenset[Key]:
    """Keys of eligible rows of `target` that a record hold covers (pages through the
    eligible keys only when the table has record holds at all)."""
    if not holds.count_records(target.table.name):
        return frozenset()
    size = runner.batch_size or mapping.batch_size
    after: Key | None = None
    found: set[Key] = set()
    while True:
        keys = runner._retry(connector.select_expired, target, after, size)
        if not keys:
            return frozenset(found)
        held = holds.held(target.table.name, (hasher(k) for k in keys))
        found.update(k for k in keys if hasher(k) in held)
        after = keys[-1]


def publish_evaluated(
    runner: Runner, plan: RulePlan, names: Mapping[str, str], *, after_batches: bool = False
) -> None:
    """Publish `RuleEvaluated` for `plan` (`names`: run_id, customer, product);
    `after_batches`: `plan` holds the backlog the rule's batches left."""
    runner.bus.publish(
        RuleEvaluated(
            rule=plan.rule,
            action=plan.action,
            table=plan.table,
            eligible=plan.eligible,
            lag_seconds=plan.lag_seconds,
            cutoff=plan.cutoff,
            period=plan.period,
            source=plan.source,
            held=plan.held,
            gate=plan.gate,
            after_batches=after_batches,
            **names,
        )
    )


def lag_seconds(
    rule: EffectiveRule,
    oldest: dt.date | dt.datetime | None,
    count: int,
    now: dt.datetime,
    timezone: str,
) -> float:
    """Seconds the oldest of `count` expired rows is overdue (its basis `oldest`, or the
    rule's customer date, past the rule's period at `now` in `timezone`); 0.0 when none is."""
    if count == 0:
        return 0.0
    if rule.customer_date is not None:
        oldest = rule.customer_date_value
    return overdue_seconds(oldest, rule.period, now, timezone)


def table_actions(connector: Connector, target: Target, action: str) -> dict[str, str]:
    """What a rule does to the tables it reaches whose action is not the rule's own, for the
    summaries: its related rows (`delete` or `anonymise`), and under a delete rule the tables
    whose foreign keys the database sets to NULL or to their default (`set null`,
    `set default`; those rows stay)."""
    found = {r.table: str(r.change) for r in target.related if str(r.change) != action}
    if action == "delete":
        try:
            refs = connector.foreign_keys_to(target.table.name)
        except ConnectorError:
            refs = []  # the labels only: the run reads the schema again where it matters
        for ref in refs:
            if ref.on_delete in (RefAction.SET_NULL, RefAction.SET_DEFAULT):
                found.setdefault(ref.table, str(ref.on_delete).lower())
    return found
