"""Assembly: settings + configuration + state + subscribers + runner, for the CLI and daemon.

The only module that knows how the parts fit together; every part stays testable alone.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import structlog

from connectors.base import Connector, ConnectorError, Timeouts
from connectors.engines import Engines, process_engines
from connectors.registry import make_connector
from worker.audit import AuditTrail
from worker.checkpoints import Checkpointer, Signer
from worker.config import Customer, ProductMapping
from worker.configload import Config
from worker.errors import SettingsError
from worker.events import EventBus
from worker.gate import Gatekeeper, HistoryRecorder
from worker.reconcile import Reconciler, open_work
from worker.retry import RetryPolicy
from worker.run import Clock, Runner, active_runs
from worker.runreport import RunReport, UnexpectedRunError
from worker.settings import product_timeouts, read_secret
from worker.state import StateStore
from worker.status import StatusRecorder

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
    (RETENTION_LOCK_TIMEOUT_SECONDS, RETENTION_STATEMENT_TIMEOUT_SECONDS in `env`). Every
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
    engines: Engines | None = None,
) -> Runner:
    """A Runner over the environment's databases; `batch_size` overrides the mappings'.

    `retry` defaults to 60 s of retries of transient errors (see `worker.retry`). `store`
    holds the legal holds, approvals and rule history the run obeys; only a dry run may go
    without one (nothing is then held or approved). With a store, every run ends with a
    checkpoint of the audit chain, signed by `signer` when given. Connectors share the
    engines of `engines`, by default the process's.
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
) -> list[RunReport]:
    """Run every pair; one pair's failure is reported and never stops the next."""
    reports: list[RunReport] = []
    for customer, mapping in pairs:
        if runner.stop.is_set():
            break
        try:
            reports.append(runner.run(customer, mapping, now, dry_run=dry_run))
        except UnexpectedRunError as exc:
            log.exception(
                "run.crashed",
                customer=customer.customer,
                product=mapping.product,
                run_id=exc.report.run_id,
            )
            reports.append(exc.report)
    return reports
