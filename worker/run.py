"""One run of one customer × product: plan, then batches through the connector, as events.

    backlogs of all rules (one statement) → per rule: gate → (dry run stops here)
        → for each batch: intent → apply → applied → the backlog left

A rule is counted again before its gate when an earlier rule of the run changed rows.

A batch is applied only after its intent is in the audit trail (the audit subscriber is
required: when it fails, the run stops before touching the product database). Each batch
is one transaction. The stop token is checked between batches: a stop request lets the
batch in flight finish, then ends the run as interrupted; the next run resumes, because
it simply selects what is still expired.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import structlog

from connectors import sqlcount
from connectors.base import Backlog, Basis, Change, Connector, ConnectorError, Key, Target
from worker.batches import RunInterrupted, run_batches
from worker.checkpoints import Checkpointer
from worker.config import Catalogue, Customer, ProductMapping
from worker.errors import RetentionError
from worker.events import (
    CheckpointMade,
    ConnectorStatus,
    EventBus,
    Outcome,
    RuleEvaluated,
    RuleGated,
    RunFinished,
    RunStarted,
)
from worker.fingerprint import fingerprint, policy_document
from worker.gate import Gatekeeper
from worker.holds import ActiveHolds
from worker.isolation import rule_failed, rule_failure
from worker.keys import KeyHasher
from worker.leases import Busy, Lease, Leases, pair_tick
from worker.logging import bind_run
from worker.policy import (
    EffectiveRule,
    cutoff_on,
    effective_rules,
    overdue_seconds,
    rule_cutoff,
)
from worker.reconcile import Reconciler
from worker.retry import RetryPolicy
from worker.runreport import RulePlan, RunReport, Skipped, UnexpectedRunError
from worker.targets import overlapping, tables_for, target_for

T = TypeVar("T")
log = structlog.get_logger("worker.run")
ConnectorFactory = Callable[[Customer, ProductMapping], Connector]
Clock = Callable[[], dt.datetime]


class SchemaDrift(RetentionError):
    """The product database no longer matches its mapping."""


_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def active_runs() -> set[str]:
    """Ids of the runs in progress in this process (a reconciliation leaves them alone)."""
    with _ACTIVE_LOCK:
        return set(_ACTIVE)


@contextmanager
def _active(run_id: str) -> Iterator[None]:
    with _ACTIVE_LOCK:
        _ACTIVE.add(run_id)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(run_id)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.transient


def _log_retry(attempt: int, wait: float, error: BaseException) -> None:
    log.warning("db.retry", attempt=attempt, wait_seconds=round(wait, 2), error=str(error))


class Runner:
    """Runs customer × product pairs; the same code serves `run --once` and the daemon."""

    def __init__(
        self,
        catalogue: Catalogue,
        bus: EventBus,
        connect: ConnectorFactory,
        *,
        pepper: bytes,
        clock: Clock,
        stop: threading.Event | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        gatekeeper: Gatekeeper | None = None,
        checkpointer: Checkpointer | None = None,
        reconciler: Reconciler | None = None,
        leases: Leases | None = None,
        scheduled: bool = False,
    ) -> None:
        self.catalogue = catalogue
        self.bus = bus
        self.connect = connect
        self.pepper = pepper
        self.clock = clock
        self.stop = stop or threading.Event()
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        # Without a state database nothing is held or approved: only for counting (plan).
        self.gatekeeper = gatekeeper or Gatekeeper(None, bus, clock)
        self.checkpointer = checkpointer
        self.reconciler = reconciler
        # Real runs take the pair's lease for its tick first (worker/leases.py). A scheduled
        # run (the daemon, `run --once --scheduled`) skips a pair already done in its tick.
        self.leases = leases
        self.scheduled = scheduled
        self._held = threading.local()

    def _retry(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn`, retrying transient database errors within the retry budget."""
        return self.retry.call(fn, *args, transient=_transient, on_retry=_log_retry)

    def run(
        self, customer: Customer, mapping: ProductMapping, now: dt.datetime, *, dry_run: bool
    ) -> RunReport:
        """Do (or, with dry_run, only count) what is due for one customer × product.

        A real run with leases first takes the pair's lease for the tick `now` falls in;
        when another process holds it (or, for a scheduled run, finished the pair in that
        tick), nothing runs and the report's `skipped` says why. Raises StateError when the
        lease cannot be taken.
        """
        if dry_run or self.leases is None:
            return self._one(customer, mapping, now, dry_run=dry_run, lease=None)
        tick = pair_tick(customer, mapping, now)
        taken = self.leases.take(customer.customer, mapping.product, tick, again=not self.scheduled)
        if isinstance(taken, Busy):
            return RunReport(
                "",
                customer.customer,
                mapping.product,
                Outcome.SUCCEEDED,
                False,
                skipped=Skipped(taken.why, taken.holder, taken.tick, taken.wait_seconds),
            )
        outcome: Outcome | None = None
        try:
            with taken.kept():
                report = self._one(customer, mapping, now, dry_run=False, lease=taken)
            outcome = report.outcome
        except UnexpectedRunError as exc:
            outcome = exc.report.outcome
            raise
        finally:
            self._end_lease(taken, outcome)
        return report

    def _one(
        self,
        customer: Customer,
        mapping: ProductMapping,
        now: dt.datetime,
        *,
        dry_run: bool,
        lease: Lease | None,
    ) -> RunReport:
        run_id = uuid.uuid4().hex
        self._held.lease = lease
        try:
            with bind_run(run_id, customer.customer, mapping.product), _active(run_id):
                return self._run(run_id, customer, mapping, now, dry_run=dry_run)
        finally:
            self._held.lease = None

    @staticmethod
    def _end_lease(lease: Lease, outcome: Outcome | None) -> None:
        """Done for the tick when the run succeeded or failed (the next tick tries again);
        released when it was interrupted, so another process may finish it in this tick.
        A failure to record it is logged: the lease then simply expires."""
        done = outcome in (Outcome.SUCCEEDED, Outcome.FAILED) and not lease.lost
        try:
            lease.end(done=done)
        except RetentionError as exc:
            log.warning(
                "lease.end_failed",
                customer=lease.customer,
                product=lease.product,
                tick=lease.tick.isoformat(),
                error=str(exc),
            )

    def check_stop(self) -> None:
        """Between batches: raise RunInterrupted when a stop was asked for, or when this
        run's lease was lost (taken over, or not renewed in time: worker/leases.py)."""
        if self.stop.is_set():
            raise RunInterrupted()
        lease: Lease | None = getattr(self._held, "lease", None)
        if lease is not None and lease.lost:
            log.warning(
                "lease.lost",
                customer=lease.customer,
                product=lease.product,
                tick=lease.tick.isoformat(),
                why=lease.lost,
                detail="the run stops before its next batch; the new holder goes on",
            )
            raise RunInterrupted()

    def _run(
        self,
        run_id: str,
        customer: Customer,
        mapping: ProductMapping,
        now: dt.datetime,
        *,
        dry_run: bool,
    ) -> RunReport:
        names = {"run_id": run_id, "customer": customer.customer, "product": mapping.product}
        report = RunReport(run_id, customer.customer, mapping.product, Outcome.SUCCEEDED, dry_run)
        started = time.monotonic()
        connector: Connector | None = None
        unexpected: BaseException | None = None
        try:
            document = policy_document(self.catalogue, customer, mapping)
            policy = fingerprint(document)
            self.bus.publish(
                RunStarted(at=self.clock(), dry_run=dry_run, policy=policy, as_of=now, **names)
            )
            if not dry_run:
                self.gatekeeper.remember_policy(policy, document, self.clock())
            connector = self._open(customer, mapping)
            drift = self._verify(connector, mapping)
            if self.reconciler is not None and not dry_run:
                lease = getattr(self._held, "lease", None)
                self.reconciler.settle(
                    connector,
                    customer,
                    mapping,
                    settled_by=run_id,
                    active=active_runs(),
                    gone=lease.taken_from if lease is not None else None,
                )
            holds = self.gatekeeper.active_holds(customer.customer, mapping.product)
            rules = effective_rules(self.catalogue, customer, mapping)
            by_id = {r.id: r for r in rules}
            failed: list[str] = []
            gone: list[Target] = []  # a plan's earlier delete rules (Target.gone)
            counted = self._count(connector, customer, mapping, rules, now)
            for rule in rules:  # one rule's failure does not stop the others (isolation.py)
                table = rule.subject.table
                if table in drift:
                    failed.append(rule_failed(report, rule.id, table, SchemaDrift(drift[table])))
                    continue
                also = overlapping(rule, by_id, now, customer.timezone)
                try:
                    self._rule(
                        connector, customer, mapping, rule, now, report, holds, also, gone, counted
                    )
                except ConnectorError as exc:
                    if not rule_failure(exc):
                        raise
                    failed.append(rule_failed(report, rule.id, table, exc))
            if failed:
                report.outcome, report.error = Outcome.FAILED, "; ".join(failed)
            elif report.blocked:
                report.outcome = Outcome.PARTIAL
        except RunInterrupted:
            report.outcome = Outcome.INTERRUPTED
        except (RetentionError, ConnectorError) as exc:
            report.outcome, report.error = Outcome.FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001  (one pair's bug must not stop the others)
            report.outcome = Outcome.FAILED
            report.error = f"unexpected {type(exc).__name__} (see the log for the traceback)"
            unexpected = exc
        finally:
            if connector is not None:
                connector.close()
        try:
            self.bus.publish(
                RunFinished(
                    outcome=report.outcome,
                    at=self.clock(),
                    duration_seconds=time.monotonic() - started,
                    processed={(r.rule, r.action): dict(r.changed) for r in report.rules},
                    error=report.error,
                    dry_run=dry_run,
                    **names,
                )
            )
        except RetentionError as exc:  # the trail could not record the end: say so, go on
            report.outcome = Outcome.FAILED
            report.error = f"{report.error}; {exc}" if report.error else str(exc)
        else:
            self._checkpoint()
        if unexpected is not None:
            raise UnexpectedRunError(report) from unexpected
        return report

    def _checkpoint(self) -> None:
        """Sign and publish the chain's head after a run's end was recorded; a failure is
        logged, never the run's (its changes are all in the trail already)."""
        if self.checkpointer is None:
            return
        try:
            made = self.checkpointer.make(self.clock())
        except RetentionError as exc:
            log.exception("audit.checkpoint_failed", error=str(exc))
            return
        self.bus.publish(
            CheckpointMade(
                seq=made.seq,
                hash=made.hash,
                at=made.at,
                key_id=made.key_id,
                signature=made.signature,
            )
        )

    def _open(self, customer: Customer, mapping: ProductMapping) -> Connector:
        try:
            connector = self.connect(customer, mapping)
            self._retry(connector.open)
        except ConnectorError:
            self.bus.publish(ConnectorStatus(customer.customer, mapping.product, up=False))
            raise
        self.bus.publish(ConnectorStatus(customer.customer, mapping.product, up=True))
        return connector

    def _verify(self, connector: Connector, mapping: ProductMapping) -> dict[str, str]:
        """Each subject table whose schema does not match the mapping (its dependents, bases
        and related tables included), with the message that fails its rules; raises
        SchemaDrift when none matches (nothing could run)."""
        found: dict[str, list[str]] = {}
        for table in tables_for(mapping):
            problems = [p for p in self._retry(connector.verify, [table]) if p.fatal]
            if problems:
                found[table.name] = [str(p) for p in problems]

        def drift(listed: list[str]) -> str:
            return (
                f"the {mapping.product} database does not match config/products/"
                f"{mapping.product}.yaml: {'; '.join(dict.fromkeys(listed))}; fix the mapping "
                "or migrate the database"
            )

        if found and len(found) == len(mapping.subjects):
            raise SchemaDrift(drift([p for listed in found.values() for p in listed]))
        return {table: drift(listed) for table, listed in found.items()}

    def _rule(
        self,
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
    ) -> None:
        """Count a rule's backlog, ask the gate, then (unless dry) work through it in batches.

        The rule's figures join the report before the first batch, so a run that is
        stopped or fails halfway still reports what it changed. A rule the gate stops (a
        legal hold, an approval to wait for) changes nothing; the run goes on with the next.
        In a dry run, `gone` collects the targets of the pair's delete rules that would run,
        and each later rule reads related tables without their rows (see `Target.gone`).
        """
        chosen = customer.products[mapping.product]
        cutoff = rule_cutoff(rule, now, customer.timezone)
        keeper = self.gatekeeper
        approval = keeper.approval(customer.customer, mapping.product, rule.id)
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
            backlog = self._retry(connector.backlog, target)
        hasher = KeyHasher(self.pepper, customer.customer, mapping.product, target.table.name)
        held_keys = self._held_records(connector, target, holds, hasher, mapping)
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
            table_rows=lambda: self._retry(connector.count_rows, target),
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
            today=max(cutoff.today, rule_cutoff(rule, self.clock(), customer.timezone).today),
            eligible=backlog.count,
            lag_seconds=self._lag(rule, backlog.oldest, backlog.count, now, customer.timezone),
            held=backlog.count if gate.state == "held" else held,
            gate=gate.state,
            why=gate.why,
            reasons=gate.reasons,
            approval_id=gate.approval.approval_id if gate.approval else None,
        )
        report.rules.append(plan)
        names = {"run_id": report.run_id, "customer": customer.customer, "product": mapping.product}
        self._evaluated(plan, names)
        if report.dry_run and gone is not None and gate.proceed and plan.action == "delete":
            gone.append(target)
        if not gate.proceed:
            self.bus.publish(
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
            plan.would_change = self._retry(connector.preview, would, Change(plan.action))
        if report.dry_run or backlog.count - held == 0:
            return
        run_batches(self, connector, customer, mapping, rule, target, plan, names, hasher)
        if gate.approval is not None:
            keeper.used(report.run_id, gate.approval)
        remaining = self._retry(connector.backlog, target)
        lag = self._lag(rule, remaining.oldest, remaining.count, now, customer.timezone)
        # The backlog left behind, so the eligible and lag gauges show what is still owed.
        self._evaluated(replace(plan, eligible=remaining.count, lag_seconds=lag), names)

    def _count(
        self,
        connector: Connector,
        customer: Customer,
        mapping: ProductMapping,
        rules: Sequence[EffectiveRule],
        now: dt.datetime,
    ) -> dict[str, tuple[Target, Backlog]]:
        """Every rule's backlog at its own cutoff, in one statement (connectors.sqlcount),
        by rule id with the target counted. A rule uses its count only when its target is
        that one (an approval can move the cutoff) and no row has changed in this run yet;
        otherwise it counts again. Nothing is counted here when a cutoff cannot be computed
        (the rule reports that itself, in turn)."""
        chosen = customer.products[mapping.product]
        by_id = {r.id: r for r in rules}
        try:
            targets = {
                r.id: target_for(
                    r,
                    mapping,
                    chosen,
                    rule_cutoff(r, now, customer.timezone),
                    overlapping(r, by_id, now, customer.timezone),
                )
                for r in rules
            }
        except (RetentionError, ValueError, OverflowError):
            return {}
        found = self._retry(sqlcount.backlogs, connector, list(targets.values()))
        return {ident: (t, b) for (ident, t), b in zip(targets.items(), found, strict=True)}

    def _held_records(
        self,
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
        size = self.batch_size or mapping.batch_size
        after: Key | None = None
        found: set[Key] = set()
        while True:
            keys = self._retry(connector.select_expired, target, after, size)
            if not keys:
                return frozenset(found)
            held = holds.held(target.table.name, (hasher(k) for k in keys))
            found.update(k for k in keys if hasher(k) in held)
            after = keys[-1]

    def _evaluated(self, plan: RulePlan, names: Mapping[str, str]) -> None:
        self.bus.publish(
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
                **names,
            )
        )

    @staticmethod
    def _lag(
        rule: EffectiveRule,
        oldest: dt.date | dt.datetime | None,
        count: int,
        now: dt.datetime,
        timezone: str,
    ) -> float:
        if count == 0:
            return 0.0
        if rule.customer_date is not None:
            oldest = rule.customer_date_value
        return overdue_seconds(oldest, rule.period, now, timezone)
