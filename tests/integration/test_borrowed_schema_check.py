"""An idle run may borrow a recent schema check of its database; a run that changes rows,
settles or reports drift reads the catalog itself (worker/drift.py SchemaCheck).

On SQLite, PostgreSQL and MariaDB: with `schema_reuse_seconds`, a run with nothing due
makes no catalog query when another run of the same database made one within that many
seconds (by the process's monotonic clock, injected here); a run with a row due reads it
again before its first change; drift is only ever reported from a run's own read; drift
that landed within those seconds stops the run that would change rows; and a connector
refuses any change while its check is borrowed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import sqlschemaview, sqlstamp
from connectors.base import Change, ConnectorError
from connectors.engines import Engines
from connectors.sql import SqlConnector
from demo.schemas import create_schema
from tests.integration.test_gathered_races import crashed_run, pair_a, run_a
from tests.integration.test_settle_reads import nothing, settle_a
from tests.integration.test_shared_engines import KDV, TENANT, VL, _alter
from tests.integration.test_shared_engines import _run as run_flexkids
from tests.rows import flexkids_row
from tests.support import NOW, PEPPER, fixture_config, insert, snapshot
from worker.app import ConnectorFactory
from worker.configload import Config
from worker.events import Outcome
from worker.policy import effective_rules, rule_cutoff
from worker.reconcile import Settled
from worker.runreport import RunReport
from worker.state import StateStore
from worker.targets import tables_for, target_for

REUSE = 30.0


class Clock:
    """A monotonic clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stamps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The dialect of every catalog fingerprint query of mapped tables made, in order (not
    the foreign keys' second read, `Engines.foreign_keys`, which asks for no table)."""
    made: list[str] = []
    real = sqlstamp.stamp

    def counted(conn: sa.Connection, names: list[str]) -> sqlstamp.Stamp | None:
        if names:
            made.append(conn.dialect.name)
        return real(conn, names)

    monkeypatch.setattr(sqlstamp, "stamp", counted)
    return made


@pytest.fixture
def flexkids(any_db_url: str) -> Iterator[dict[str, str]]:
    """The shared FlexKids database: one expired invoice of VL, none of KDV (idle)."""
    create_schema(any_db_url, "flexkids")
    insert(any_db_url, "invoice", [flexkids_row("invoice", 1, TENANT[VL], dt.date(2015, 1, 1))])
    yield {"FLEXKIDS_DATABASE_URL": any_db_url}


def _run(
    config: Config,
    env: dict[str, str],
    engines: Engines,
    state: StateStore,
    customer: str,
    reuse: float = REUSE,
    *,
    dry_run: bool = False,
) -> RunReport:
    """`test_shared_engines._run`, borrowing a check at most REUSE seconds old by default."""
    return run_flexkids(config, env, engines, state, customer, reuse, dry_run=dry_run)


def test_an_idle_run_borrows_a_recent_check_and_no_older_one(
    flexkids: dict[str, str], state: StateStore, stamps: list[str]
) -> None:
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    first = _run(config, flexkids, engines, state, KDV)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert len(stamps) == 1
    clock.now += REUSE
    second = _run(config, flexkids, engines, state, KDV)
    assert second.outcome is Outcome.SUCCEEDED, second.error
    assert second.changed == 0
    assert len(stamps) == 1  # nothing due: the first run's check, REUSE seconds old, served
    clock.now += 0.5
    third = _run(config, flexkids, engines, state, KDV)
    assert third.outcome is Outcome.SUCCEEDED, third.error
    assert len(stamps) == 2  # older than REUSE seconds: read again


def test_a_run_with_a_row_due_reads_the_schema_itself_before_changing_it(
    flexkids: dict[str, str], state: StateStore, stamps: list[str]
) -> None:
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    assert len(stamps) == 1
    clock.now += 1
    report = _run(config, flexkids, engines, state, VL)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.changed == 1
    assert len(stamps) == 2  # borrowed for the count, read again before the delete
    assert (1,) not in snapshot(url)["invoice"]


def test_drift_within_the_borrowed_seconds_stops_the_run_that_would_change_rows(
    flexkids: dict[str, str], state: StateStore
) -> None:
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    _alter(url, "ALTER TABLE invoice DROP COLUMN iban")
    before = snapshot(url)
    clock.now += 1
    report = _run(config, flexkids, engines, state, VL)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert "does not match" in report.error and "invoice.iban" in report.error
    assert snapshot(url) == before  # VL's expired invoice is still there


def test_drift_is_reported_only_from_the_runs_own_read(
    flexkids: dict[str, str], state: StateStore, stamps: list[str]
) -> None:
    """A borrowed check that finds drift is made again: a schema fixed since the check
    it borrowed is not reported as drifted."""
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    _alter(url, "ALTER TABLE invoice DROP COLUMN iban")
    drifted = _run(config, flexkids, engines, state, KDV)
    assert drifted.outcome is Outcome.FAILED
    assert drifted.error is not None and "invoice.iban" in drifted.error
    _alter(url, "ALTER TABLE invoice ADD COLUMN iban VARCHAR(34)")
    clock.now += 1
    report = _run(config, flexkids, engines, state, KDV)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert len(stamps) == 2


def test_a_connector_refuses_changes_while_its_check_is_borrowed(
    flexkids: dict[str, str],
) -> None:
    config, engines = fixture_config(), Engines(clock=Clock())
    factory = ConnectorFactory(flexkids, PEPPER, engines)
    pairs = {c.customer: (c, p) for c, p in config.pairs() if p.product == "flexkids"}
    customer, mapping = pairs[VL]
    rules = effective_rules(config.catalogue, customer, mapping)
    (rule,) = [r for r in rules if r.subject.table == "invoice"]
    first, second = factory(*pairs[KDV]), factory(customer, mapping)
    assert isinstance(first, SqlConnector) and isinstance(second, SqlConnector)
    first.open()
    second.open()
    try:
        tables = tables_for(mapping)
        first.verify_each(tables)
        second.verify_each(tables, reuse_seconds=REUSE)
        read = second.schema_read()
        assert read is not None and read.borrowed
        cutoff = rule_cutoff(rule, NOW, customer.timezone)
        target = target_for(rule, mapping, customer.products["flexkids"], cutoff)
        with pytest.raises(ConnectorError, match="has not checked the schema itself"):
            second.apply(target, Change("delete"), [(1,)])
        with pytest.raises(ConnectorError, match="has not checked the schema itself"):
            second.delete_expired(target, 10)
        with pytest.raises(ConnectorError, match="has not checked the schema itself"):
            second.delete_next(target, None, 10)
        second.verify_each(tables)  # its own read
        read = second.schema_read()
        assert read is not None and not read.borrowed
        assert dict(second.apply(target, Change("delete"), [(1,)])) == {"invoice": 1}
    finally:
        first.close()
        second.close()


def test_settling_makes_the_runs_own_check_first_when_something_is_open(
    tmp_path: Path, state_url: str
) -> None:
    """A run settles an earlier run's work (reading the product database) only after its
    own schema check: `settle` calls `before` then, and only then."""
    _, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    try:
        run_a(config, env, store, nothing)
        checks: list[str] = []
        assert settle_a(config, env, store, lambda: checks.append("own")) == Settled(0, 0, 0)
        assert checks == []  # nothing open: the borrowed check stands
        crashed_run(store)
        assert settle_a(config, env, store, lambda: checks.append("own")) == Settled(0, 0, 1)
        assert checks == ["own"]
    finally:
        store.close()


def test_a_warm_check_compares_no_table_again(
    flexkids: dict[str, str], state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The problems a check finds are kept with the reflection: a warm run compares no
    table with its mapping again (its own read or a borrowed one alike); a new reflection
    (a dropped column) compares them again and finds the drift."""
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    compared: list[str] = []
    real = sqlschemaview.verify_table

    def counted(spec: Any, *args: Any) -> Any:
        compared.append(spec.name)
        return real(spec, *args)

    monkeypatch.setattr(sqlschemaview, "verify_table", counted)
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    assert "invoice" in compared
    compared.clear()
    clock.now += REUSE + 1  # its own read: the catalog unchanged
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    assert compared == []
    _alter(url, "ALTER TABLE invoice DROP COLUMN iban")
    clock.now += REUSE + 1
    report = _run(config, flexkids, engines, state, KDV)
    assert "invoice" in compared
    assert report.outcome is Outcome.FAILED
    assert report.error is not None and "invoice.iban" in report.error
