"""Assembly: settings + configuration + state + subscribers + runner, for the CLI and daemon.

The only module that knows how the parts fit together; every part stays testable alone.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from connectors.base import Connector, ConnectorError, Target, Timeouts
from connectors.engines import Engines, process_engines
from connectors.reach import BadDatabaseUrl
from connectors.registry import make_connector
from worker.audit import AuditTrail
from worker.batchsize import LearnedSizes
from worker.checkpoints import Checkpointer, Signer
from worker.config import Customer, ProductMapping
from worker.configload import Config
from worker.errors import SettingsError
from worker.events import EventBus, PairSkipped
from worker.gate import Gatekeeper, HistoryRecorder
from worker.idleends import IdleEnds
from worker.leases import Leases
from worker.policy import EffectiveRule, effective_rules
from worker.reconcile import Reconciler, open_work
from worker.retry import RetryPolicy
from worker.rulework import rule_targets
from worker.run import Clock, Runner
from worker.runreport import RunReport, UnexpectedRunError
from worker.runstate import active_runs
from worker.settings import DEFAULT_LEASE_SECONDS, product_timeouts, read_secret
from worker.state import StateStore
from worker.status import StatusRecorder
from worker.together import Together

log = structlog.get_logger("worker")


def utc_now() -> dt.datetime:
    """The one place the worker reads the clock; everything else takes time as an argument."""
    return dt.datetime.now(dt.UTC)


def url_variable(customer: Customer, mapping: ProductMapping) -> str:
    """The environment variable holding the database URL of a customer × product."""
    chosen = customer.products[mapping.product]
    ref = chosen.database if mapping.tenancy.per_customer else mapping.database
    if ref is None:  # configload rejects this; kept for the type checker
        raise SettingsError(f"{customer.customer} × {mapping.product} names no database")
    return ref.url_env


def database_url(customer: Customer, mapping: ProductMapping, env: Mapping[str, str]) -> str:
    variable = url_variable(customer, mapping)
    url = read_secret(env, variable)
    if not url:
        raise ConnectorError(
            f"set {variable} (or {variable}_FILE) to the database URL of {mapping.product} "
            f"for {customer.customer}"
        )
    return url


class ConnectorFactory:
    """Builds the connector of a customer × product from the environment.

    Its sessions run under the product mapping's `timeouts`, else the process settings
    (RETENTION_LOCK_TIMEOUT_SECONDS, RETENTION_STATEMENT_TIMEOUT_SECONDS in `env`), and
    client-side connect and read bounds derived from them (`connectors.reach`). A URL the
    worker cannot use raises BadDatabaseUrl naming its variable, before any connection. Every
    connector shares engines and reflected schemas through `engines`, by default the
    process's (`connectors.engines.process_engines`): customers of one shared database use
    one engine.
    """

    def __init__(
        self, env: Mapping[str, str], pepper: bytes, engines: Engines | None = None
    ) -> None:
        self.env = env
        self.pepper = pepper
        self.engines = engines if engines is not None else process_engines()
        self.lock_seconds, self.statement_seconds = product_timeouts(env)

    def timeouts(self, mapping: ProductMapping) -> Timeouts:
        """The timeouts of `mapping`'s sessions, in seconds."""
        return Timeouts(
            lock_seconds=mapping.timeouts.lock_seconds or self.lock_seconds,
            statement_seconds=mapping.timeouts.statement_seconds or self.statement_seconds,
        )

    def __call__(self, customer: Customer, mapping: ProductMapping) -> Connector:
        url = database_url(customer, mapping, self.env)
        try:
            connector = make_connector(
                mapping.connector,
                url,
                pepper=self.pepper,
                timeouts=self.timeouts(mapping),
                engines=self.engines,
            )
        except ValueError as exc:
            raise ConnectorError(f"{mapping.product}: {exc}") from None
        except BadDatabaseUrl as exc:
            variable = url_variable(customer, mapping)
            raise BadDatabaseUrl(f"{variable} is not usable: {exc}") from None
        key = getattr(connector, "engine_key", None)
        if isinstance(key, str):  # a changed URL frees the engine of the old one
            self.engines.assign((customer.customer, mapping.product), key)
        return connector

    def retain(self, pairs: Iterable[tuple[Customer, ProductMapping]]) -> int:
        """Keep the engines of `pairs` (the configuration in force) and dispose every other
        (after a reload: removed customers, changed URLs or timeouts). A pair whose URL is
        not set is skipped. Returns the engines disposed."""
        owners: dict[Hashable, str] = {}
        for customer, mapping in pairs:
            try:
                connector = make_connector(
                    mapping.connector,
                    database_url(customer, mapping, self.env),
                    pepper=self.pepper,
                    timeouts=self.timeouts(mapping),
                )
            except (ConnectorError, ValueError, SettingsError):
                continue
            key = getattr(connector, "engine_key", None)
            if isinstance(key, str):
                owners[(customer.customer, mapping.product)] = key
        return self.engines.retain(owners)


@dataclass
class PairSelection:
    customer: str | None = None
    product: str | None = None

    def pick(self, config: Config) -> list[tuple[Customer, ProductMapping]]:
        return [
            (c, p)
            for c, p in config.pairs()
            if (self.customer is None or c.customer == self.customer)
            and (self.product is None or p.product == self.product)
        ]


def build_runner(
    config: Config,
    env: Mapping[str, str],
    bus: EventBus,
    *,
    pepper: bytes,
    clock: Clock = utc_now,
    stop: threading.Event | None = None,
    batch_size: int | None = None,
    retry: RetryPolicy | None = None,
    store: StateStore | None = None,
    signer: Signer | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    scheduled: bool = False,
    engines: Engines | None = None,
    learned_sizes: LearnedSizes | None = None,
    schema_reuse_seconds: float = 0.0,
) -> Runner:
    """A Runner over the environment's databases; `batch_size` overrides the mappings'.

    `retry` defaults to 60 s of retries of transient errors (see `worker.retry`). `store`
    holds the legal holds, approvals and rule history the run obeys; only a dry run may go
    without one (nothing is then held or approved). With a store, every run ends with a
    checkpoint of the audit chain, signed by `signer` when given, and every real run first
    takes its pair's lease for the tick, lasting `lease_seconds` unless renewed; a
    `scheduled` runner (the daemon's, `run --once --scheduled`) also skips pairs another
    process already finished in that tick (worker/leases.py). Connectors share the
    engines of `engines`, by default the process's. Tuned batch sizes carry over between
    runners given the same `learned_sizes` (worker/batchsize.py; by default the runner's own).
    A real run that changes nothing may borrow a check of its database's schema another
    run made at most `schema_reuse_seconds` before (worker/drift.py; 0: never).
    """
    return Runner(
        config.catalogue,
        bus,
        ConnectorFactory(env, pepper, engines),
        pepper=pepper,
        clock=clock,
        stop=stop,
        batch_size=batch_size,
        retry=retry,
        gatekeeper=Gatekeeper(store, bus, clock),
        checkpointer=Checkpointer(store, signer) if store is not None else None,
        reconciler=(
            Reconciler(store, bus, config.catalogue, pepper, clock) if store is not None else None
        ),
        leases=Leases(store, lease_seconds) if store is not None else None,
        scheduled=scheduled,
        learned_sizes=learned_sizes,
        schema_reuse_seconds=schema_reuse_seconds,
    )


def reconcile_all(
    config: Config,
    env: Mapping[str, str],
    bus: EventBus,
    store: StateStore,
    *,
    pepper: bytes,
    clock: Clock = utc_now,
    engines: Engines | None = None,
) -> int:
    """At start: settle every configured pair that a crash left with open batches or runs.

    Returns the pairs settled. A pair whose database cannot be reached now is logged and
    left for its next run (which settles first).
    """
    pairs = {(c.customer, p.product): (c, p) for c, p in config.pairs()}
    todo = open_work(store, pairs)
    if not todo:
        return 0
    factory = ConnectorFactory(env, pepper, engines)
    reconciler = Reconciler(store, bus, config.catalogue, pepper, clock)
    label = f"reconcile-{uuid.uuid4().hex}"
    done = 0
    for key in sorted(todo):
        customer, mapping = pairs[key]
        try:
            connector = factory(customer, mapping)
            connector.open()
        except ConnectorError as exc:
            log.warning("reconcile.unreachable", customer=key[0], product=key[1], error=str(exc))
            continue
        try:
            reconciler.settle(connector, customer, mapping, settled_by=label, active=active_runs())
            done += 1
        except ConnectorError as exc:
            log.warning("reconcile.failed", customer=key[0], product=key[1], error=str(exc))
        finally:
            connector.close()
    return done


def subscribe_state(bus: EventBus, store: StateStore, clock: Clock = utc_now) -> None:
    """Subscribe what writes a real run to the state database: the audit trail (required:
    no batch without its intent), the rule history the breaker reads, and the status the
    metrics are rebuilt from after a restart."""
    bus.subscribe(AuditTrail(store, clock), required=True)
    bus.subscribe(HistoryRecorder(store))
    bus.subscribe(StatusRecorder(store))


def run_pairs(
    runner: Runner,
    pairs: Iterable[tuple[Customer, ProductMapping]],
    now: dt.datetime,
    *,
    dry_run: bool,
    wait: bool = False,
    announce: bool = True,
) -> list[RunReport]:
    """Run every pair; one pair's failure is reported and never stops the next.

    A pair another process holds or finished in its tick is skipped, and (with `announce`)
    published as PairSkipped, once. With `wait` (`run --once`), pairs held by another
    process are asked for again (see `_due`) until that process has finished them or this
    one has taken over its expired lease; so when this returns, every pair is done for the
    tick unless a stop was asked for.

    Customers of one shared database are asked together whether anything is due (not in a
    dry run; worker/together.py): a run found with nothing due then makes no count. The last
    records of runs that wrote nothing to the state database are written together, several
    runs in one transaction (worker/idleends.py), all of them before this returns.
    """
    pairs = list(pairs)
    reports: list[RunReport] = []
    waiting: list[tuple[float, Customer, ProductMapping]] = []
    runner.together = _together(runner, pairs, dry_run=dry_run, now=now)
    if not dry_run and len(pairs) > 1:
        runner.idle_ends = IdleEnds(runner.checkpointer, runner.clock)
    try:
        _run_all(
            runner, pairs, now, reports, waiting, dry_run=dry_run, wait=wait, announce=announce
        )
    finally:
        runner.together = None
        ends, runner.idle_ends = runner.idle_ends, None
        if ends is not None:
            ends.flush()
    return reports


def _together(
    runner: Runner,
    pairs: Sequence[tuple[Customer, ProductMapping]],
    *,
    dry_run: bool,
    now: dt.datetime,
) -> Together | None:
    """The joint "nothing due" answers of this call's pairs (worker/together.py): not for
    a plan or dry run, a single pair, or with RETENTION_SCHEMA_REUSE_SECONDS at 0."""
    if dry_run or len(pairs) < 2 or runner.schema_reuse_seconds <= 0:
        return None
    catalogue = runner.catalogue

    def rules_of(customer: Customer, mapping: ProductMapping) -> Sequence[EffectiveRule]:
        return effective_rules(catalogue, customer, mapping)

    def targets_of(
        customer: Customer, mapping: ProductMapping, rules: Sequence[EffectiveRule]
    ) -> dict[str, Target]:
        return rule_targets(customer, mapping, rules, now)

    engines = getattr(runner.connect, "engines", None)  # its monotonic clock, as drift.py's
    return Together(
        pairs,
        runner.schema_reuse_seconds,
        connect=runner.connect,
        rules_of=rules_of,
        targets_of=targets_of,
        monotonic=engines.clock if isinstance(engines, Engines) else time.monotonic,
    )


def _run_all(
    runner: Runner,
    pairs: Sequence[tuple[Customer, ProductMapping]],
    now: dt.datetime,
    reports: list[RunReport],
    waiting: list[tuple[float, Customer, ProductMapping]],
    *,
    dry_run: bool,
    wait: bool,
    announce: bool,
) -> None:
    """`run_pairs`' loop: every pair, then those held by another process again."""
    for customer, mapping in pairs:
        if runner.stop.is_set():
            break
        report = _run_one(runner, customer, mapping, now, dry_run=dry_run)
        if report.skipped is not None and announce:
            runner.bus.publish(_skip_event(report))
        if wait and report.skipped is not None and report.skipped.why == "held":
            waiting.append((_due(runner, report.skipped.wait_seconds), customer, mapping))
        else:
            reports.append(report)
    while waiting and not runner.stop.is_set():
        waiting.sort(key=lambda item: item[0])
        due, customer, mapping = waiting.pop(0)
        if runner.idle_ends is not None:  # the waiting runs' records are not kept waiting
            runner.idle_ends.flush()
        if runner.stop.wait(max(0.0, due - time.monotonic()) + WAIT_MARGIN_SECONDS):
            break
        report = _run_one(runner, customer, mapping, now, dry_run=dry_run)
        if report.skipped is not None and report.skipped.why == "held":
            waiting.append((_due(runner, report.skipped.wait_seconds), customer, mapping))
        else:
            reports.append(report)


WAIT_MARGIN_SECONDS = 0.25
"""Asked again this long after a holder's lease would expire (it may have been renewed)."""


def _due(runner: Runner, wait_seconds: float) -> float:
    """When (monotonic) to ask again for a pair another process holds: when its lease would
    expire, or after a sixth of the lease time (at least 1 s) if that is sooner, so a
    holder that finishes early is noticed soon without asking for every pair every second."""
    lease = runner.leases.seconds if runner.leases is not None else wait_seconds
    return time.monotonic() + min(wait_seconds, max(1.0, lease / 6))


def _run_one(
    runner: Runner, customer: Customer, mapping: ProductMapping, now: dt.datetime, *, dry_run: bool
) -> RunReport:
    try:
        return runner.run(customer, mapping, now, dry_run=dry_run)
    except UnexpectedRunError as exc:
        log.exception(
            "run.crashed",
            customer=customer.customer,
            product=mapping.product,
            run_id=exc.report.run_id,
        )
        return exc.report


def _skip_event(report: RunReport) -> PairSkipped:
    skipped = report.skipped
    if skipped is None:  # callers check; kept for the type checker
        raise ValueError(f"{report.customer} × {report.product} was not skipped")
    return PairSkipped(report.customer, report.product, skipped.tick, skipped.why, skipped.holder)
