"""The measured variants: one raw DELETE, the worker (real Runner, real audit), naive per-row.

Each function times only the deletion (plus, for the worker, everything a real run does
around it: connect, verify the schema, count backlogs, audit every batch) and returns a
Timing. The caller seeds the table before and verifies the result after each call.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.data import TENANT, WrongResult
from bench.database import BenchError
from worker.app import build_runner, run_pairs, url_variable
from worker.audit import AuditTrail
from worker.config import Customer, ProductMapping
from worker.configload import Config, load_config
from worker.events import EventBus, Outcome
from worker.policy import effective_rules, rule_cutoff
from worker.runreport import RunReport
from worker.state import StateStore

REPO = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
PEPPER = b"bench-pepper-0123456789abcdef"
CUSTOMER = "kdv-zonnestraal"
PRODUCT = "flexkids"
TABLE = "invoice"

_CUTOFF = sa.bindparam("cutoff", type_=sa.Date())
BASELINE_SQL = sa.text(
    "DELETE FROM invoice WHERE organisation_id = :tenant AND invoice_date < :cutoff"
).bindparams(_CUTOFF)
NAIVE_SELECT = sa.text(
    "SELECT id FROM invoice WHERE organisation_id = :tenant AND invoice_date < :cutoff "
    "ORDER BY id LIMIT :limit"
).bindparams(_CUTOFF)
NAIVE_DELETE = sa.text("DELETE FROM invoice WHERE id = :id")


def _clock() -> dt.datetime:
    return NOW


@dataclass(frozen=True)
class Setup:
    """The shipped configuration, the pair under test and its invoice rule's cutoff."""

    config: Config
    customer: Customer
    mapping: ProductMapping
    rule: str
    cutoff: dt.date


@dataclass(frozen=True)
class Timing:
    seconds: float
    rows: int
    peak_bytes: int | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf


def load_setup(config_dir: Path = REPO / "config") -> Setup:
    """Load config/ and find kdv-zonnestraal × flexkids and its invoice delete rule."""
    config = load_config(config_dir)
    config.raise_for_problems()
    customer = config.customers.get(CUSTOMER)
    mapping = config.products.get(PRODUCT)
    if customer is None or mapping is None or PRODUCT not in customer.products:
        raise BenchError(f"{config_dir} has no customer {CUSTOMER} with product {PRODUCT}")
    rules = [
        r
        for r in effective_rules(config.catalogue, customer, mapping)
        if r.subject.table == TABLE and str(r.action) == "delete"
    ]
    if len(rules) != 1:
        raise BenchError(f"expected one delete rule on {PRODUCT}.{TABLE}, found {len(rules)}")
    cutoff = rule_cutoff(rules[0], NOW, customer.timezone)
    return Setup(config, customer, mapping, rules[0].id, cutoff.date)


def baseline(engine: sa.Engine, cutoff: dt.date) -> Timing:
    """One DELETE statement in one transaction: the floor of what the database can do."""
    gc.collect()
    started = time.perf_counter()
    with engine.begin() as conn:
        rows = conn.execute(BASELINE_SQL, {"tenant": TENANT, "cutoff": cutoff}).rowcount
    return Timing(time.perf_counter() - started, rows)


def naive(engine: sa.Engine, cutoff: dt.date, sample: int) -> tuple[Timing, frozenset[int]]:
    """Select up to `sample` expired ids, then delete each in its own transaction."""
    gc.collect()
    started = time.perf_counter()
    with engine.connect() as conn:
        ids = list(
            conn.scalars(NAIVE_SELECT, {"tenant": TENANT, "cutoff": cutoff, "limit": sample})
        )
    for row_id in ids:
        with engine.begin() as conn:
            conn.execute(NAIVE_DELETE, {"id": row_id})
    return Timing(time.perf_counter() - started, len(ids)), frozenset(ids)


def worker(
    url: str,
    setup: Setup,
    batch_size: int,
    state_dir: Path,
    *,
    expected: int,
    trace_memory: bool = False,
) -> Timing:
    """A real run of kdv-zonnestraal × flexkids, as `retention-worker run --once` does it.

    The audit trail goes to a fresh, migrated SQLite state database (migration not timed).
    With `trace_memory`, tracemalloc runs during the run and its peak is returned; it slows
    Python code down, so the caller does not use such runs for throughput.
    """
    state = StateStore(f"sqlite:///{state_dir / f'state-{uuid.uuid4().hex}.db'}")
    try:
        state.migrate()
        bus = EventBus()
        bus.subscribe(AuditTrail(state, _clock), required=True)
        env = {url_variable(setup.customer, setup.mapping): url}
        runner = build_runner(
            setup.config, env, bus, pepper=PEPPER, clock=_clock, batch_size=batch_size
        )
        pairs = [(setup.customer, setup.mapping)]
        gc.collect()
        peak: int | None = None
        if trace_memory:
            tracemalloc.start()
        try:
            started = time.perf_counter()
            reports = run_pairs(runner, pairs, NOW, dry_run=False)
            seconds = time.perf_counter() - started
            if trace_memory:
                peak = tracemalloc.get_traced_memory()[1]
        finally:
            if trace_memory:
                tracemalloc.stop()
        audited = state.audit_count()
    finally:
        state.close()
    _check_report(reports, setup, batch_size, expected, audited)
    return Timing(seconds, expected, peak)


def _check_report(
    reports: list[RunReport], setup: Setup, batch_size: int, expected: int, audited: int
) -> None:
    if len(reports) != 1:
        raise BenchError(f"expected one run report, got {len(reports)}")
    report = reports[0]
    if report.outcome is not Outcome.SUCCEEDED:
        raise BenchError(f"the worker run ended {report.outcome}: {report.error}")
    deleted = sum(p.changed.get(TABLE, 0) for p in report.rules if p.rule == setup.rule)
    if deleted != expected or report.changed != expected:
        raise WrongResult(
            f"the worker reported {deleted} invoices deleted ({report.changed} rows changed "
            f"in all), expected {expected}"
        )
    batches = math.ceil(expected / batch_size)
    if audited < 2 + 2 * batches:  # run started/finished, intent + applied per batch
        raise WrongResult(
            f"the audit trail holds {audited} records; {batches} batches need at least "
            f"{2 + 2 * batches}"
        )
