"""The joint check's selects nested in a rule's test read the outer row's customer only
(connectors/sqltogether.py), on PostgreSQL, the one database asked together.

A time basis read from a related table that has the tenant column (a parent's relation
ends when the last of their children leaves) nests a select in the rule's test, and that
select filters the related rows by the customer's tenant. In the joint statement each
customer's values are a row of `rw_customers`; a nested select that did not correlate to
that row read every customer's row as a table of its own, so a child of another customer
asked in the same statement counted as this parent's child. A parent whose own count is
due was then found "nothing due", and the run that took that answer kept the parent past
its period. Rows that only fill a statement up to its size are never checked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Aggregated, Table, Target
from connectors.sql import SqlConnector

PEPPER = b"p" * 32
CUTOFF = dt.date(2024, 1, 1)
OLD, RECENT = dt.date(2020, 1, 1), dt.date(2025, 6, 1)

PARENT = Table(
    "parent",
    key=("id",),
    dates=("ended_on",),
    tenant_column="org",
    bases=(Aggregated("child", (("parent_id", "id"),), "left_on", if_none="ended_on"),),
)


def _schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY, org INTEGER NOT NULL, ended_on DATE)"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, org INTEGER NOT NULL, "
                "parent_id INTEGER NOT NULL, left_on DATE)"
            )
        )
    engine.dispose()


def _rows(url: str, parents: list[dict[str, Any]], children: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM child"))
        conn.execute(sa.text("DELETE FROM parent"))
        if parents:
            conn.execute(sa.text("INSERT INTO parent VALUES (:id, :org, :ended_on)"), parents)
        if children:
            conn.execute(
                sa.text("INSERT INTO child VALUES (:id, :org, :parent_id, :left_on)"), children
            )
    engine.dispose()


def _target(org: int) -> Target:
    basis = PARENT.bases[0]
    return Target(PARENT, org, basis, CUTOFF, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def connector(pg_url: str) -> Any:
    _schema(pg_url)
    found = SqlConnector(pg_url, pepper=PEPPER)
    found.open()
    yield found, pg_url
    found.close()


def _own(connector: SqlConnector, org: int) -> bool:
    return connector.backlog(_target(org)).count > 0


def test_another_customers_child_of_the_parent_does_not_hide_the_parent_that_is_due(
    connector: tuple[SqlConnector, str],
) -> None:
    sql, url = connector
    # Customer 1's parent ended long ago and has no child of its own tenant; a child row
    # that points at it but belongs to customer 2, and has not left, is not its child.
    _rows(
        url,
        [{"id": 1, "org": 1, "ended_on": OLD}, {"id": 2, "org": 2, "ended_on": RECENT}],
        [{"id": 10, "org": 2, "parent_id": 1, "left_on": None}],
    )
    assert _own(sql, 1) is True
    answers = sql.due_together([[_target(1)], [_target(2)]])
    assert answers == [[True], [_own(sql, 2)]]


ORGS = st.integers(1, 4)
DAY = st.sampled_from([None, OLD, RECENT])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parents=st.lists(st.tuples(ORGS, DAY), min_size=1, max_size=6),
    children=st.lists(st.tuples(ORGS, st.integers(0, 5), DAY), max_size=8),
    asked=st.lists(ORGS, min_size=2, max_size=5, unique=True),
)
def test_each_customer_is_due_exactly_where_its_own_count_is_above_zero(
    connector: tuple[SqlConnector, str],
    parents: list[tuple[int, dt.date | None]],
    children: list[tuple[int, int, dt.date | None]],
    asked: list[int],
) -> None:
    """Any parents and children, children of any tenant pointing at any parent."""
    sql, url = connector
    _rows(
        url,
        [{"id": i, "org": org, "ended_on": day} for i, (org, day) in enumerate(parents)],
        [
            {"id": 100 + i, "org": org, "parent_id": p % len(parents), "left_on": day}
            for i, (org, p, day) in enumerate(children)
        ],
    )
    answers = sql.due_together([[_target(org)] for org in asked])
    assert answers == [[_own(sql, org)] for org in asked]


def test_rows_that_fill_the_statement_up_are_not_checked(
    connector: tuple[SqlConnector, str],
) -> None:
    """Two customers in a statement built for 100: the last one's EXISTS runs once, not
    99 times (the plan's loops of the parent scan)."""
    sql, url = connector
    _rows(url, [{"id": 1, "org": 1, "ended_on": RECENT}, {"id": 2, "org": 2, "ended_on": OLD}], [])
    loops: list[int] = []

    def explain(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if "rw_customers" in statement and not statement.startswith("EXPLAIN"):
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
            loops.extend(_scan_loops(plan.scalar_one()[0]["Plan"], "parent"))

    sa.event.listen(sql.engine, "before_cursor_execute", explain)
    try:
        assert sql.due_together([[_target(1)], [_target(2)]]) == [[False], [True]]
    finally:
        sa.event.remove(sql.engine, "before_cursor_execute", explain)
    assert loops and max(loops) == 2


def _scan_loops(node: dict[str, Any], table: str) -> list[int]:
    """The `Actual Loops` of every scan of `table` in an EXPLAIN (FORMAT JSON) plan node."""
    found = [int(node["Actual Loops"])] if node.get("Relation Name") == table else []
    for child in node.get("Plans", []):
        found.extend(_scan_loops(child, table))
    return found
