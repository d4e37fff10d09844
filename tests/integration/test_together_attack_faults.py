"""Customers asked together (worker/together.py) when something goes wrong, on PostgreSQL.

- A customer whose tenant value does not convert, first, in the middle or last: it fails
  alone, as when counting alone, and the others are still answered (the first one too:
  connectors/sqltogether.py must not send the statement without its values).
- A joint statement that fails (here: any database error; in production a statement
  timeout of a joint statement over customers with large tables is the likely one): each
  customer then counts itself, as before, and the joint statement is not sent again by
  every following customer (each would wait for the same failure first).
- Drift between the joint statement and a later customer's run (a column the rules read
  dropped, renamed or retyped, the table dropped): the later customer's run reports it as
  it does when counting alone, and as before the joint check with a borrowed schema check
  (its count failed, then its own check found the drift). Known and not fixed: see the
  xfail reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.engines import Engines
from connectors.sql import SqlConnector
from tests.integration import together_support as ts
from tests.support import PEPPER
from worker.app import ConnectorFactory
from worker.policy import effective_rules
from worker.rulework import rule_targets
from worker.state import StateStore

pytestmark = pytest.mark.postgres

TENANTS = range(1, 13)
DUE = {8}


def _seed(url: str) -> None:
    rows = [{"id": t, "org": t, "left_on": "2026-10-01"} for t in TENANTS]
    rows += [{"id": 100 + t, "org": t, "left_on": "2019-01-01"} for t in DUE]
    ts.execute(
        url,
        "DROP TABLE IF EXISTS child",
        "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
        "name varchar(50), left_on date)",
        "INSERT INTO child (id, org, left_on) VALUES (:id, :org, CAST(:left_on AS date))",
        params=rows,
    )


def _config(tmp_path: Path, broken: int | None = None) -> Any:
    customers = {
        f"c{t:02d}": ts.customer_text("'3xyz'" if t == broken else str(t)) for t in TENANTS
    }
    return ts.config_of(tmp_path / "config", ts.SIMPLE, customers)


@pytest.mark.parametrize("broken", [1, 6, 12])
def test_a_tenant_value_that_does_not_convert_fails_that_customer_alone(
    tmp_path: Path, pg_url: str, broken: int
) -> None:
    together, alone = ts.both_ticks(
        tmp_path, pg_url, lambda: _seed(pg_url), _config(tmp_path, broken)
    )
    ts.assert_equivalent(together, alone)
    assert [c for c, r in together.reports.items() if r.error] == [f"c{broken:02d}/kids"]
    assert together.joint == ts.joint_statements(len(TENANTS))  # 8 customers, then 4
    assert together.counts == alone.counts - (len(TENANTS) - len(DUE) - 1) == len(DUE)


def test_the_first_customer_not_converting_leaves_the_others_answered(
    tmp_path: Path, pg_url: str
) -> None:
    """At the connector: `due_together` answers None for the customer whose tenant does not
    convert and the others their flags, wherever it stands (here first); None for each
    when none converts."""
    _seed(pg_url)
    config = _config(tmp_path, broken=1)
    pairs = list(config.pairs())
    engines = Engines()
    factory = ConnectorFactory({ts.ENV: pg_url}, PEPPER, engines)
    connector = factory(*pairs[0])
    assert isinstance(connector, SqlConnector)
    connector.open()
    try:
        aims = []
        for customer, mapping in pairs[:3]:
            rules = effective_rules(config.catalogue, customer, mapping)
            aims.append(list(rule_targets(customer, mapping, rules, ts.NOW).values()))
        answers = connector.due_together(aims)
        nobody = connector.due_together([aims[0], aims[0]])
    finally:
        connector.close()
        engines.dispose()
    assert answers == [None, [False], [False]]
    assert nobody == [None, None]


def test_a_joint_statement_that_fails_is_not_sent_again_by_every_customer(
    tmp_path: Path, pg_url: str
) -> None:
    config = _config(tmp_path)
    tries: list[str] = []

    def fail(_conn: Any, _cursor: Any, statement: str, params: Any, *_a: Any) -> Any:
        if ts.JOINT in statement:
            tries.append(statement)
            return "SELECT * FROM rw_no_such_table", params  # the database refuses it
        return statement, params

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", fail, retval=True)
    try:
        together = ts.one_tick(
            tmp_path, "together", pg_url, lambda: _seed(pg_url), config, reuse=ts.REUSE
        )
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fail)
    alone = ts.one_tick(tmp_path, "alone", pg_url, lambda: _seed(pg_url), config, reuse=0)
    assert ts.figures(together.reports) == ts.figures(alone.reports)
    assert together.rows == alone.rows
    assert together.counts == len(TENANTS)  # each counted itself
    assert len(tries) == 1  # not once per customer (11 here)


def _drift_tick(
    tmp_path: Path, url: str, config: Any, label: str, reuse: float, marker: str, ddl: str
) -> ts.Tick:
    """A tick in which `ddl` runs right after the first statement holding `marker` (the
    first customer's joint check, or its count)."""
    database = sa.make_url(url).database
    done: list[bool] = []

    def act(conn: Any, _c: Any, statement: str, *_a: Any) -> None:
        if conn.engine.url.database == database and marker in statement and not done:
            done.append(True)
            ts.execute(url, ddl)

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", act)
    try:
        return ts.one_tick(tmp_path, label, url, lambda: _seed(url), config, reuse=reuse)
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", act)


DRIFT = {
    "drop-basis": "ALTER TABLE child DROP COLUMN left_on",
    "rename-basis": "ALTER TABLE child RENAME COLUMN left_on TO gone_on",
    "retype-basis": "ALTER TABLE child ALTER COLUMN left_on TYPE text",
    "drop-table": "DROP TABLE child",
}


@pytest.mark.parametrize("ddl", list(DRIFT))
def test_drift_after_the_joint_statement_is_missed_only_by_runs_that_change_nothing(
    tmp_path: Path, pg_url: str, ddl: str
) -> None:
    """As documented (docs/operations.md, "Customers asked together"): a run that takes a
    joint "nothing due" reads nothing else of its database, so drift that landed after the
    joint statement, within RETENTION_SCHEMA_REUSE_SECONDS, goes unreported by it, as by a
    run that borrowed its schema check; it changes nothing, and the next run reports it.
    Customers asked after the drift count themselves (their joint statement fails) and
    report it at once."""
    config = _config(tmp_path)
    together = _drift_tick(tmp_path, pg_url, config, "together", ts.REUSE, ts.JOINT, DRIFT[ddl])
    missed = [c for c, r in together.reports.items() if r.error is None]
    assert missed  # the customers answered before the drift
    assert all(together.reports[c].changed == 0 for c in missed)
    reported = [c for c, r in together.reports.items() if r.error is not None]
    assert reported  # those asked after it
    store = StateStore(f"sqlite:///{tmp_path / 'state-next.db'}")
    store.migrate()
    try:
        later = ts.tick(config, {ts.ENV: pg_url}, store, reuse=ts.REUSE)
    finally:
        store.close()
    assert all(r.error is not None and r.changed == 0 for r in later.values())
