"""One run of one customer × product: plan, then batches through the connector, as events.

    backlogs of all rules (one statement) → per rule: gate → (dry run stops here)
        → for each batch: intent → apply → applied → the backlog left

A rule is counted again before its gate when an earlier rule of the run changed rows.

A batch is applied only after its intent is in the audit trail (the audit subscriber is
required: when it fails, the run stops before touching the product database). Each batch
is one transaction. The stop token is checked between batches: a stop request lets the
batch in flight finish, then ends the run as interrupted; the next run resumes, because
it simply selects what is still expired.

The work of each rule (count, gate, batches) is in worker/rulework.py; this module holds
the run's frame: the lease, the connector's lifetime, schema drift and the run's events.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import structlog

from connectors.base import Connector, ConnectorError, Target
from worker.batches import RunInterrupted
from worker.batchsize import LearnedSizes
from worker.batchsteps import OutcomeRefused
from worker.checkpoints import Checkpointer, Queued
from worker.config import Catalogue, Customer, ProductMapping
from worker.drift import SchemaCheck, SchemaDrift
from worker.errors import RetentionError, StateError
from worker.events import (
    ConnectorStatus,
    EventBus,
    Outcome,
    RunFinished,
    RunStarted,
)
from worker.fingerprint import policy_text, text_fingerprint
from worker.gate import Gatekeeper
from worker.idleends import IdleEnds
from worker.isolation import rule_failed, rule_failure
from worker.leases import Busy, Lease, Leases, pair_tick
from worker.logging import bind_run
from worker.pairstate import PAIR_STATE_COLUMNS, PairState, pair_state_of, read_pair_state
from worker.policy import effective_rules
from worker.reconcile import Reconciler
from worker.retry import RetryPolicy
from worker.rulework import count_backlogs, run_rule
from worker.runend import RunEnds
from worker.runreport import RunReport, Skipped, UnexpectedRunError
from worker.runstate import active, active_runs, idle
from worker.state.gather import Gathering, gathering
from worker.targets import overlapping
from worker.together import Together

T = TypeVar("T")
log = structlog.get_logger("worker.run")
ConnectorFactory = Callable[[Customer, ProductMapping], Connector]
Clock = Callable[[], dt.datetime]


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.transient


def _log_retry(attempt: int, wait: float, error: BaseException) -> None:
    log.warning("db.retry", attempt=attempt, wait_seconds=round(wait, 2), error=str(error))


class Runner(RunEnds):
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
        learned_sizes: LearnedSizes | None = None,
        schema_reuse_seconds: float = 0.0,
    ) -> None:
        self.catalogue = catalogue
        self.bus = bus
        self.connect = connect
        self.pepper = pepper
        self.clock = clock
        self.stop = stop or threading.Event()
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        # Tuned batch sizes per database and table, for the next run there (batchsize.py):
        # the daemon hands every job's runner its own, so they carry over between jobs.
        self.learned_sizes = learned_sizes if learned_sizes is not None else LearnedSizes()
        # Without a state database nothing is held or approved: only for counting (plan).
        self.gatekeeper = gatekeeper or Gatekeeper(None, bus, clock)
        self.checkpointer = checkpointer
        self.reconciler = reconciler
        # Real runs take the pair's lease for its tick first (worker/leases.py). A scheduled
        # run (the daemon, `run --once --scheduled`) skips a pair already done in its tick.
        self.leases = leases
        self.scheduled = scheduled
        # A real run may borrow a schema check this recent while it changes nothing
        # (worker/drift.py SchemaCheck); 0: every run checks the schema itself.
        self.schema_reuse_seconds = schema_reuse_seconds
        self.together: Together | None = None  # set by run_pairs (worker/together.py)
        # Idle runs' last records, written together (worker/idleends.py): set by run_pairs.
        self.idle_ends: IdleEnds | None = None
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

        With `idle_ends` set, a run that wrote nothing to the state database may hand its
        last records (and its lease's end) over to be written with other idle runs'
        (worker/idleends.py); they are written when enough runs wait or a run that wrote
        anything ends here, and the report's outcome is final only then.
        """
        self._held.handed = False
        try:
            return self._leased(customer, mapping, now, dry_run=dry_run)
        finally:
            ends = self.idle_ends
            if ends is not None and (ends.full() or not self._held.handed):
                ends.flush()

    def _leased(
        self, customer: Customer, mapping: ProductMapping, now: dt.datetime, *, dry_run: bool
    ) -> RunReport:
        if dry_run or self.leases is None:
            return self._one(customer, mapping, now, dry_run=dry_run, lease=None)
        tick = pair_tick(customer, mapping, now)
        pair = {"customer": customer.customer, "product": mapping.product}
        # The pair's state is read by the statement that takes the lease, where it can be.
        also = PAIR_STATE_COLUMNS if self.leases.store is self.gatekeeper.store else ()
        try:
            taken = self.leases.take(
                customer.customer,
                mapping.product,
                tick,
                again=not self.scheduled,
                also=also,
                also_params=pair,
            )
        except StateError as exc:
            # A transient failure was retried without the read (`Leases.take`), within the
            # take's one retry budget: the take's own failure, as without the read.
            if not also or exc.transient:
                raise
            # Taken without the read, which is then made apart: a failure of that read
            # fails this run alone, as it always did, and not the lease.
            taken = self.leases.take(
                customer.customer, mapping.product, tick, again=not self.scheduled
            )
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
        keeping = ExitStack()
        keeping.enter_context(taken.kept())

        def release(outcome: Outcome | None) -> None:
            """After the run's last records: stop renewing the lease, end it if they did not."""
            keeping.close()
            self._end_lease(taken, outcome)

        self._held.release = release
        try:
            report = self._one(customer, mapping, now, dry_run=False, lease=taken)
            outcome = report.outcome
        except UnexpectedRunError as exc:
            outcome = exc.report.outcome
            raise
        finally:
            if self._held.__dict__.pop("release", None) is not None:  # not handed over
                release(outcome)
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
            with (
                bind_run(run_id, customer.customer, mapping.product),
                active(run_id),
                gathering(run_id) as gathered,
            ):
                return self._run(run_id, customer, mapping, now, gathered, dry_run=dry_run)
        finally:
            self._held.lease = None

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
        gathered: Gathering,
        *,
        dry_run: bool,
    ) -> RunReport:
        names = {"run_id": run_id, "customer": customer.customer, "product": mapping.product}
        report = RunReport(run_id, customer.customer, mapping.product, Outcome.SUCCEEDED, dry_run)
        started = time.monotonic()
        connector: Connector | None = None
        unexpected: BaseException | None = None
        try:
            document = policy_text(self.catalogue, customer, mapping)
            policy = text_fingerprint(document)
            self.bus.publish(
                RunStarted(at=self.clock(), dry_run=dry_run, policy=policy, as_of=now, **names)
            )
            if not dry_run:
                self.gatekeeper.remember_policy(policy, document, self.clock())
            connector = self._open(customer, mapping)
            reuse = 0.0 if dry_run else self.schema_reuse_seconds
            check = SchemaCheck(connector, mapping, self._retry, reuse_seconds=reuse)
            # One read for whether there is open work, a hold or an approval to read.
            lease = getattr(self._held, "lease", None)
            if lease is not None and lease.also is not None:
                known: PairState | None = pair_state_of(lease.also)
                lease.also = None  # read once, for this run
            else:
                known = read_pair_state(self.gatekeeper.store, customer.customer, mapping.product)
            if self.reconciler is not None and not dry_run:
                lease = getattr(self._held, "lease", None)
                self.reconciler.settle(
                    connector,
                    customer,
                    mapping,
                    settled_by=run_id,
                    active=active_runs(),
                    gone=lease.taken_from if lease is not None else None,
                    before=check.confirm,
                    anything_open=known.open_work if known is not None else None,
                )
                if known is not None and known.open_work:
                    # Settling read the product database meanwhile, for as long as it took:
                    # holds and approvals are read after it, in full, as they always were.
                    known = None
            holds = self.gatekeeper.active_holds(customer.customer, mapping.product, known)
            rules = effective_rules(self.catalogue, customer, mapping)
            by_id = {r.id: r for r in rules}
            failed: list[str] = []
            gone: list[Target] = []  # a plan's earlier delete rules (Target.gone)
            # Not the rules of a drifted table (they fail below): their count may name a
            # column the reflection no longer has (a KeyError, not a ConnectorError).
            fit = [r for r in rules if r.subject.table not in check.drift]
            counted = count_backlogs(self, connector, customer, mapping, fit, now)
            approvals = self.gatekeeper.approvals_of(customer.customer, mapping.product, known)
            if not idle(counted, rules, approvals, holds) and check.confirm():
                counted = {}  # counted on a schema that has changed since: each rule counts
            drift = check.drift
            for rule in rules:  # one rule's failure does not stop the others (isolation.py)
                table = rule.subject.table
                if table in drift:
                    failed.append(rule_failed(report, rule.id, table, SchemaDrift(drift[table])))
                    continue
                also = overlapping(rule, by_id, now, customer.timezone)
                try:
                    run_rule(
                        self,
                        connector,
                        customer,
                        mapping,
                        rule,
                        now,
                        report,
                        holds,
                        also,
                        gone,
                        counted,
                        approvals,
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
        except OutcomeRefused as exc:  # taken over: as a run whose lease was lost
            report.outcome, report.error = Outcome.INTERRUPTED, str(exc)
        except (RetentionError, ConnectorError) as exc:
            report.outcome, report.error = Outcome.FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001  (one pair's bug must not stop the others)
            report.outcome = Outcome.FAILED
            report.error = f"unexpected {type(exc).__name__} (see the log for the traceback)"
            unexpected = exc
        finally:
            if connector is not None:
                connector.close()
        ended, duration = self.clock(), time.monotonic() - started
        queued: Queued | None = None
        failure: RetentionError | None = None
        try:
            self.bus.publish(
                RunFinished(
                    outcome=report.outcome,
                    at=ended,
                    duration_seconds=duration,
                    processed={(r.rule, r.action): dict(r.changed) for r in report.rules},
                    error=report.error,
                    dry_run=dry_run,
                    rules=len(report.rules),
                    rules_due=sum(1 for r in report.rules if r.due),
                    **names,
                )
            )
            # The run's bookkeeping that waited (start, policy, end, history, status) in
            # one transaction, unless a batch's intent carried it already; a real run's
            # checkpoint and lease end ride in it too.
            handing = unexpected is None and self._may_hand_over(gathered, report)
            queued = self._queue_end(report.outcome, dry_run, checkpoint=not handing)
            if handing and self._hand_over(gathered, report, ended, duration):
                return report
            gathered.flush()
        except RetentionError as exc:
            failure = exc
        self._recorded(report, ended, duration, dry_run, queued, failure)
        if unexpected is not None:
            raise UnexpectedRunError(report) from unexpected
        return report

    def _open(self, customer: Customer, mapping: ProductMapping) -> Connector:
        try:
            connector = self.connect(customer, mapping)
            self._retry(connector.open)
        except ConnectorError:
            self.bus.publish(ConnectorStatus(customer.customer, mapping.product, up=False))
            raise
        self.bus.publish(ConnectorStatus(customer.customer, mapping.product, up=True))
        return connector
