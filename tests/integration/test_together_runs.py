"""A tick's customers of one shared PostgreSQL database asked together whether anything is
due (worker/together.py, connectors/sqltogether.py), through `run_pairs` as `run --once`.

Customers found with nothing due make no count of their own; customers with rows due count
and change them as before; the outcome (rows, reports, audit) is the one of runs that each
count alone; an answer older than RETENTION_SCHEMA_REUSE_SECONDS (by the process's
monotonic clock, injected here) is not taken; rows that become due after the joint
statement wait for the next tick; a customer whose tenant value is wrong fails alone, as
before; a dry run is never asked together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.engines import Engines
from demo.schemas import create_schema
from tests.integration import test_borrowed_schema_check as borrowed
from tests.integration import together_support as ts
from tests.rows import flexkids_row
from tests.support import NOW, PEPPER, copy_config, insert, snapshot
from worker.app import build_runner, run_pairs
from worker.audit import AuditTrail
from worker.configload import Config, load_config
from worker.events import EventBus, Outcome
from worker.runreport import RunReport
from worker.state import StateStore

pytestmark = pytest.mark.postgres

REUSE = 30.0
TENANTS = list(range(3001, 3013))  # 12 customers on the shared FlexKids database
DUE = {3003, 3008}  # one expired, paid invoice each; the others have only recent ones
JOINT, COUNT = "rw_customers", "backlog_0"  # the joint statement; a customer's own count

Clock = borrowed.Clock


def name(tenant: int) -> str:
    return f"kdv-{tenant}"


def config_of(tmp_path: Path, broken: int | None = None) -> Config:
    """The tests' configuration with a customer per tenant of TENANTS on FlexKids; the
    customer of `broken` gets a tenant value its column cannot hold."""
    root = copy_config(tmp_path)
    for existing in (root / "customers").glob("*.yaml"):
        existing.unlink()  # only this test's customers
    for tenant in TENANTS:
        value = "'3xyz'" if tenant == broken else str(tenant)
        (root / "customers" / f"{name(tenant)}.yaml").write_text(
            f"customer: {name(tenant)}\ntimezone: Europe/Amsterdam\n"
            f"products:\n  flexkids:\n    tenant: {value}\n",
            encoding="utf-8",
        )
    config = load_config(root)
    config.raise_for_problems()
    return config


@pytest.fixture
def shared(pg_url: str) -> Iterator[dict[str, str]]:
    """The shared FlexKids database: an expired invoice of each tenant in DUE, a recent
    one of every tenant."""
    create_schema(pg_url, "flexkids")
    rows = [flexkids_row("invoice", t, t, dt.date(2025, 6, 1)) for t in TENANTS]
    rows += [flexkids_row("invoice", 100 + t, t, dt.date(2015, 1, 1)) for t in sorted(DUE)]
    insert(pg_url, "invoice", rows)
    yield {"FLEXKIDS_DATABASE_URL": pg_url}


def tick(
    config: Config,
    env: dict[str, str],
    state: StateStore,
    *,
    reuse: float = REUSE,
    engines: Engines | None = None,
    dry_run: bool = False,
) -> dict[str, RunReport]:
    """`run --once` of every FlexKids pair of `config`: the reports by customer."""
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: NOW), required=True)
    runner = build_runner(
        config,
        env,
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        store=state,
        engines=engines if engines is not None else Engines(),
        schema_reuse_seconds=reuse,
    )
    pairs = [(c, p) for c, p in config.pairs() if p.product == "flexkids"]
    return {r.customer: r for r in run_pairs(runner, pairs, NOW, dry_run=dry_run)}


def figures(reports: dict[str, RunReport]) -> dict[str, Any]:
    """What a tick decided, per customer: outcome, error, and each rule's figures."""
    return {
        c: (r.outcome, r.error, [(p.rule, p.eligible, p.held, p.gate, p.changed) for p in r.rules])
        for c, r in reports.items()
    }


def test_idle_customers_make_no_count_and_the_tick_decides_as_when_each_counts_alone(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    config = config_of(tmp_path)
    with ts.statements(pg_url) as seen:
        together = tick(config, shared, state)
    assert {c: r.outcome for c, r in together.items()} == {
        name(t): Outcome.SUCCEEDED for t in TENANTS
    }
    assert {c for c, r in together.items() if r.changed} == {name(t) for t in DUE}
    # 12 customers: the first asks 7 along (FIRST), the ninth the last 3 (then up to 14).
    assert sum(JOINT in s for s in seen) == 2
    assert sum(COUNT in s for s in seen) == len(DUE)  # only the customers with rows due
    after = snapshot(pg_url)["invoice"]

    # The same tick again from the same rows, each customer counting alone.
    with sa.create_engine(pg_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM invoice"))
    insert(pg_url, "invoice", [flexkids_row("invoice", t, t, dt.date(2025, 6, 1)) for t in TENANTS])
    insert(
        pg_url,
        "invoice",
        [flexkids_row("invoice", 100 + t, t, dt.date(2015, 1, 1)) for t in sorted(DUE)],
    )
    with ts.statements(pg_url) as seen:
        alone = tick(config, shared, state, reuse=0)
    assert sum(JOINT in s for s in seen) == 0
    assert sum(COUNT in s for s in seen) == len(TENANTS)
    assert figures(alone) == figures(together)
    assert snapshot(pg_url)["invoice"] == after


def test_a_tick_where_most_customers_have_rows_due_soon_stops_asking(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    """Asking along a customer with rows due saves nothing (it counts itself) and costs the
    database its EXISTS: after a check that found most of its customers due, the next ones
    are not asked (worker/together.py PAUSE)."""
    config = config_of(tmp_path)
    insert(
        pg_url,
        "invoice",
        [flexkids_row("invoice", 200 + t, t, dt.date(2015, 1, 1)) for t in TENANTS if t not in DUE],
    )
    with ts.statements(pg_url) as seen:
        reports = tick(config, shared, state)
    assert all(r.outcome is Outcome.SUCCEEDED and r.changed for r in reports.values())
    assert sum(JOINT in s for s in seen) == 1  # the first 8 were all due: no more asking
    assert sum(COUNT in s for s in seen) == len(TENANTS)


def test_an_answer_older_than_the_reuse_seconds_is_not_taken(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    config, clock = config_of(tmp_path), Clock()
    engines = Engines(clock=clock)

    def later(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip() == "SELECT 1":  # a run opens its connector: REUSE + 1 s later
            clock.now += REUSE + 1

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", later)
    try:
        with ts.statements(pg_url) as seen:
            reports = tick(config, shared, state, engines=engines)
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", later)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports.values())
    joint = sum(JOINT in s for s in seen)
    # Each joint check answers its asker only; every other customer asks again.
    assert joint == len(TENANTS) - 1  # the last customer has nobody left to ask with
    assert sum(COUNT in s for s in seen) == len(DUE) + 1  # the DUE ones and the last one


def test_rows_that_become_due_after_the_joint_check_wait_for_the_next_tick(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    config = config_of(tmp_path)
    late = TENANTS[5]  # asked along by the first customer (worker/together.py FIRST)
    written: list[int] = []

    def restore(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if JOINT in statement and not written:  # another application writes meanwhile
            written.append(999)
            insert(pg_url, "invoice", [flexkids_row("invoice", 999, late, dt.date(2015, 1, 1))])

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", restore)
    try:
        first = tick(config, shared, state)
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", restore)
    assert first[name(late)].changed == 0  # found with nothing due a moment earlier
    assert (999,) in snapshot(pg_url)["invoice"]
    second = tick(config, shared, state, reuse=0)
    assert second[name(late)].changed == 1
    assert (999,) not in snapshot(pg_url)["invoice"]


def test_a_customer_whose_tenant_value_is_wrong_fails_alone(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    broken = TENANTS[4]
    config = config_of(tmp_path, broken=broken)
    reports = tick(config, shared, state)
    assert reports[name(broken)].outcome is Outcome.FAILED
    assert reports[name(broken)].error is not None
    others = {c: r for c, r in reports.items() if c != name(broken)}
    assert all(r.outcome is Outcome.SUCCEEDED for r in others.values())
    assert {c for c, r in others.items() if r.changed} == {name(t) for t in DUE}


def test_a_dry_run_is_never_asked_together(
    tmp_path: Path, shared: dict[str, str], state: StateStore, pg_url: str
) -> None:
    config = config_of(tmp_path)
    with ts.statements(pg_url) as seen:
        reports = tick(config, shared, state, dry_run=True)
    assert sum(JOINT in s for s in seen) == 0
    assert sum(COUNT in s for s in seen) == len(TENANTS)
    assert all(r.changed == 0 for r in reports.values())
