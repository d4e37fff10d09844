"""Reading each backend's plan (connectors/sqlplan.py) and judging it (connectors/sqladvice.py).

The plans are the ones PostgreSQL 15, MariaDB 10.11 and SQLite 3.40 printed for the selection
of expired rows (`SELECT id FROM child WHERE organisation_id = … AND left_on … ORDER BY id
LIMIT 500`), cut to the fields the reading uses; the tables are built in memory.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from connectors import sqlplan
from connectors.model import Aggregated, FirstOf
from connectors.sqladvice import judge
from connectors.sqlplan import PRIMARY_KEY, Access

ADVISED = "CREATE INDEX ix_child_organisation_id_left_on ON child (organisation_id, left_on);"


def child(*indexes: tuple[str, ...]) -> sa.Table:
    """`child` with a primary key `child_pkey` (id) and the indexes `ix_0`, `ix_1`, …"""
    table = sa.Table(
        "child",
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        sa.Column("organisation_id", sa.Integer),
        sa.Column("left_on", sa.Date),
        sa.PrimaryKeyConstraint("id", name="child_pkey"),
    )
    for i, columns in enumerate(indexes):
        sa.Index(f"ix_{i}", *(table.c[c] for c in columns))
    return table


def node(kind: str, *children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A node of PostgreSQL's JSON plan."""
    found: dict[str, Any] = {"Node Type": kind, **fields}
    if children:
        found["Plans"] = list(children)
    return found


def pg_plan(root: dict[str, Any]) -> str:
    return json.dumps([{"Plan": node("Limit", root)}])


# The 10,000,000-row case: the primary key read in order, tenant and date only filtered.
PRIMARY_KEY_IN_ORDER = node(
    "Index Scan",
    **{
        "Index Name": "child_pkey",
        "Relation Name": "child",
        "Filter": "((left_on >= '1900-01-01'::date) AND (organisation_id = 1))",
    },
)


def bitmap(*indexes: str, combined: str | None = None) -> dict[str, Any]:
    scans = [
        node("Bitmap Index Scan", **{"Index Name": name, "Index Cond": "(…)"}) for name in indexes
    ]
    below = [node(combined, *scans)] if combined else scans
    return node("Bitmap Heap Scan", *below, **{"Relation Name": "child"})


def test_postgresql_steps_name_the_indexes_and_whether_they_are_searched() -> None:
    seq = node("Seq Scan", **{"Relation Name": "child", "Filter": "(…)"})
    assert sqlplan.postgresql(pg_plan(seq), "child") == [Access("Seq Scan", True)]
    assert sqlplan.postgresql(pg_plan(PRIMARY_KEY_IN_ORDER), "child") == [
        Access("Index Scan", False, ("child_pkey",), searched=False)
    ]
    ordered = bitmap("ix_0", "ix_1", combined="BitmapAnd")
    assert sqlplan.postgresql(json.loads(pg_plan(ordered)), "child") == [
        Access("Bitmap Heap Scan", False, ("ix_0", "ix_1"), searched=True)
    ]
    either = sqlplan.postgresql(pg_plan(bitmap("ix_0", "ix_1", combined="BitmapOr")), "child")
    assert either[0].union
    assert sqlplan.postgresql(pg_plan(seq), "parent") == []
    with pytest.raises(ValueError):
        sqlplan.postgresql("{}", "child")


def test_postgresql_steps_of_a_sub_select_are_not_the_selections_own() -> None:
    """The FlexKids parent rule's kind: each parent's children read in a SubPlan."""
    children = node(
        "Index Scan",
        **{"Index Name": "child_left", "Relation Name": "child", "Index Cond": "(…)"},
    )
    sub = node("Result", node("Limit", children, **{"Parent Relationship": "InitPlan"}))
    sub["Parent Relationship"] = "SubPlan"
    parents = node("Index Scan", sub, **{"Index Name": "parent_pkey", "Relation Name": "parent"})
    assert sqlplan.postgresql(pg_plan(parents), "child") == []
    assert [s.indexes for s in sqlplan.postgresql(pg_plan(parents), "parent")] == [("parent_pkey",)]


def test_mariadb_rows_of_the_outer_query_by_access_type() -> None:
    def row(kind: str, key: str | None, **more: str) -> dict[str, Any]:
        return {"select_type": "SIMPLE", "table": "child", "type": kind, "key": key, **more}

    rows = [
        row("ALL", None),
        row("index", "PRIMARY"),
        row("ref", "child_org"),
        row("range", "ix_child_organisation_id_left_on"),
        row("index_merge", "ix_0,ix_1", Extra="Using union(ix_0,ix_1); Using where"),
        {"select_type": "DEPENDENT SUBQUERY", "table": "child", "type": "ALL", "key": None},
        {"select_type": "SIMPLE", "table": "parent", "type": "ALL", "key": None},
    ]
    assert sqlplan.mariadb(rows, "child") == [
        Access("type=ALL", True),
        Access("type=index", False, (PRIMARY_KEY,), searched=False),
        Access("type=ref", False, ("child_org",), searched=True),
        Access("type=range", False, ("ix_child_organisation_id_left_on",), searched=True),
        Access("type=index_merge", False, ("ix_0", "ix_1"), searched=True, union=True),
    ]


def test_sqlite_steps_in_every_form_it_prints() -> None:
    steps = [
        (2, 0, "SCAN child"),
        (3, 0, "SCAN TABLE child"),  # SQLite before 3.36
        (4, 0, "SCAN child USING COVERING INDEX ix_0"),
        (5, 0, "SEARCH child USING INDEX child_org (organisation_id=?)"),
        (6, 0, "SEARCH child USING INTEGER PRIMARY KEY (rowid>?)"),
        (7, 0, "SEARCH child USING AUTOMATIC COVERING INDEX (organisation_id=?)"),
        (8, 0, "CORRELATED SCALAR SUBQUERY 1"),
        (9, 8, "SEARCH child USING INDEX child_left (left_on>?)"),
        (10, 0, "USE TEMP B-TREE FOR ORDER BY"),
    ]
    assert sqlplan.sqlite(steps, "child") == [
        Access("SCAN", True),
        Access("SCAN", True),
        Access("SCAN", False, ("ix_0",), searched=False),
        Access("SEARCH", False, ("child_org",), searched=True),
        Access("SEARCH", False, (PRIMARY_KEY,), searched=True),
        Access("SEARCH through an automatic index", False),
    ]


PG = postgresql.dialect()


@pytest.mark.parametrize(
    ("steps", "reads"),
    [
        pytest.param([Access("Seq Scan", True)], "reads the whole table", id="table-scan"),
        pytest.param(
            sqlplan.postgresql(pg_plan(PRIMARY_KEY_IN_ORDER), "child"),
            "reads the whole of child_pkey (id) in its order",
            id="primary-key-filtered",
        ),
        pytest.param(
            [Access("Bitmap Heap Scan", False, ("ix_0",), searched=True)],
            "searches ix_0 (organisation_id)",
            id="one-column-bitmap",
        ),
        pytest.param(
            [Access("Bitmap Heap Scan", False, ("ix_0", "ix_1"), searched=True)],
            "searches ix_0 (organisation_id) and ix_1 (left_on)",
            id="bitmap-and",
        ),
    ],
)
def test_a_plan_through_no_serving_index_gets_the_create_index(
    steps: list[Access], reads: str
) -> None:
    verdict = judge(
        child(("organisation_id",), ("left_on",)), steps, "organisation_id", "left_on", PG
    )
    assert verdict.reads == reads and verdict.served is False
    assert verdict.creates == ADVISED
    assert verdict.advice == (
        f"no index on (organisation_id, left_on) serves the selection (the plan {reads}); "
        f"create one: {ADVISED}"
    )


def test_a_plan_searching_an_index_on_tenant_then_basis_gets_none() -> None:
    table = child(("organisation_id",), ("organisation_id", "id", "left_on"))
    steps = [Access("Index Scan", False, ("ix_1",), searched=True)]
    verdict = judge(table, steps, "organisation_id", "left_on", PG)
    assert verdict.served is True and verdict.advice is None and verdict.note is None
    assert verdict.reads == "searches ix_1 (organisation_id, id, left_on)"
    whole = [Access("Index Only Scan", False, ("ix_1",), searched=False)]  # no Index Cond
    assert judge(table, whole, "organisation_id", "left_on", PG).served is False


def test_an_unused_serving_index_is_not_advised_again() -> None:
    """The plan passes the index on (tenant, basis) by: refresh the statistics."""
    table = child(("organisation_id", "left_on"))
    verdict = judge(table, [Access("Seq Scan", True)], "organisation_id", "left_on", PG)
    assert verdict.served is False and verdict.creates is None
    assert verdict.advice == (
        "ix_0 (organisation_id, left_on) would serve the selection, but the plan reads the "
        "whole table: refresh the database's statistics of child (ANALYZE) and explain again"
    )


def test_without_a_tenant_column_an_index_leading_with_the_basis_serves() -> None:
    steps = [Access("type=range", False, ("ix_0",), searched=True)]
    assert judge(child(("left_on",)), steps, None, "left_on", mysql.dialect()).served is True
    verdict = judge(child(("id", "left_on")), [], None, "left_on", mysql.dialect())
    assert verdict.served is None and verdict.note is not None  # no step reads the table
    scan = judge(child(), [Access("type=ALL", True)], None, "left_on", mysql.dialect())
    assert scan.creates == "CREATE INDEX ix_child_left_on ON child (left_on);"


def test_union_of_searches_needs_every_index_to_serve() -> None:
    table = child(("organisation_id", "left_on"), ("left_on",))
    both = Access("Bitmap Heap Scan", False, ("ix_0", "ix_1"), searched=True)
    assert judge(table, [both], "organisation_id", "left_on", PG).served is True
    union = Access("Bitmap Heap Scan", False, ("ix_0", "ix_1"), searched=True, union=True)
    assert judge(table, [union], "organisation_id", "left_on", PG).served is False


def test_sqlite_is_served_by_an_index_leading_with_the_tenant_column() -> None:
    """SQLite reads the date through its date functions: no index serves it there."""
    search = [Access("SEARCH", False, ("ix_0",), searched=True)]
    verdict = judge(
        child(("organisation_id",)), search, "organisation_id", "left_on", sqlite.dialect()
    )
    assert verdict.served is True and verdict.note is not None and verdict.advice is None
    scan = judge(child(), [Access("SCAN", True)], "organisation_id", "left_on", sqlite.dialect())
    assert scan.creates == ADVISED
    alone = judge(child(), [Access("SCAN", True)], None, "left_on", sqlite.dialect())
    assert alone.served is None and alone.advice is None
    assert alone.note == (
        "no index advised: SQLite reads the time basis through its date functions, which no "
        "index serves"
    )


@pytest.mark.parametrize(
    ("basis", "note"),
    [
        pytest.param(
            Aggregated("stay", (("child_id", "id"),), "ended_on"),
            "the time basis is the latest stay.ended_on of each row's related rows, which no "
            "index of child serves",
            id="related",
        ),
        pytest.param(
            FirstOf(("left_on", "id")),
            "the time basis is the first set of (left_on, id), which no index serves",
            id="first-of",
        ),
        pytest.param(None, "the rule has no time basis in the table (a customer date)", id="none"),
    ],
)
def test_a_basis_no_index_of_the_table_serves_gets_a_reason_not_advice(
    basis: Any, note: str
) -> None:
    verdict = judge(child(), [Access("Seq Scan", True)], "organisation_id", basis, PG)
    assert verdict.served is None and verdict.advice is None and verdict.creates is None
    assert verdict.note == f"no index advised: {note}"
    assert verdict.scans and verdict.reads == "reads the whole table"


def test_an_expression_index_does_not_lead_with_a_column() -> None:
    table = child()
    sa.Index("ix_expr", sa.func.lower(table.c.left_on), table.c.organisation_id, table.c.left_on)
    steps = [Access("Index Scan", False, ("ix_expr",), searched=True)]
    assert judge(table, steps, "organisation_id", "left_on", PG).served is False
