"""The joint check (connectors/sqltogether.py) answers for each customer exactly what its own
count says, for rules of every kind of test at once, on PostgreSQL.

Each example draws rows of a parent table, of a related table with the tenant column (a
parent's relation ends when the last of its children leaves, or with its first child's
end), of a related table without it, and of the parent itself (a parent's own related
parent); rules whose time basis is the row's own date or instant, the first of two dates,
or any of those related aggregates (latest or earliest, with or without a fallback to the
row's own date, through one or two references, with or without the tenant), with another
rule's cutoff to be past as well (`also`), row conditions and masks whose rows already
masked are left out; and customers of integer or text tenants (text ones that differ only
by case), each with its own cutoffs, 2 to 101 in one call (one statement, or two). A
child may point at another tenant's parent. Each customer's answer for each rule must be
`SqlConnector.backlog(target).count > 0`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Aggregated, Basis, Condition, FirstOf, Op, Table, Target
from connectors.model import ColumnMask, Mask
from connectors.sql import SqlConnector

pytestmark = pytest.mark.postgres

PEPPER = b"p" * 32
PARENT = Table("parent", key=("id",), dates=("ended_on",), tenant_column="org")
TENANTS: dict[str, list[Any]] = {"integer": [1, 2, 3], "varchar(8)": ["kdv-a", "KDV-A", "kdv-b"]}
DAY = st.sampled_from(
    [None, dt.date(1850, 1, 1), dt.date(2019, 5, 5), dt.date(2021, 6, 1), dt.date(2026, 1, 1)]
)
CUTOFF = st.sampled_from([dt.date(2020, 1, 1), dt.date(2022, 1, 1), dt.date(2030, 1, 1)])
ZONE = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone.min])
BASES: list[Any] = [
    "ended_on",
    "seen_at",
    FirstOf(("other_on", "ended_on")),
    Aggregated("child", (("parent_id", "id"),), "left_on"),
    Aggregated("child", (("parent_id", "id"),), "left_on", if_none="ended_on"),
    Aggregated("child", (("parent_id", "id"),), "left_on", latest=False, if_none="other_on"),
    Aggregated("child", (("parent_id", "id"), ("org", "org")), "left_on", if_none="ended_on"),
    Aggregated("child", (("parent_id", "id"), ("pid2", "id")), "left_on", latest=False),
    Aggregated("note", (("parent_id", "id"),), "written_on", if_none="ended_on"),
    Aggregated("parent", (("ref_id", "id"),), "ended_on", if_none="other_on"),
]
WHERE = [(), (Condition("status", Op.EQ, "done"),), (Condition("status", Op.IN, ("done", "x")),)]
MASKS = [(), (ColumnMask("name", Mask.NULL),), (ColumnMask("name", Mask.FIXED, text="#"),)]


@pytest.fixture(params=list(TENANTS))
def connector(
    request: pytest.FixtureRequest, pg_url: str
) -> Iterator[tuple[SqlConnector, str, str]]:
    """An open connector on a fresh schema whose tenant columns are of the type given."""
    kind = request.param
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        for statement in (
            f"CREATE TABLE parent (id INTEGER PRIMARY KEY, org {kind} NOT NULL, ended_on DATE, "
            "other_on DATE, seen_at TIMESTAMPTZ, status TEXT, name TEXT, ref_id INTEGER)",
            f"CREATE TABLE child (id INTEGER PRIMARY KEY, org {kind} NOT NULL, "
            "parent_id INTEGER, pid2 INTEGER, left_on DATE)",
            "CREATE TABLE note (id INTEGER PRIMARY KEY, parent_id INTEGER, written_on DATE)",
        ):
            conn.execute(sa.text(statement))
    engine.dispose()
    found = SqlConnector(pg_url, pepper=PEPPER)
    found.open()
    yield found, kind, pg_url
    found.close()


def _seed(url: str, parents: list[Any], children: list[Any], notes: list[Any]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("note", "child", "parent"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(
            sa.text(
                "INSERT INTO parent VALUES (:id, :org, :ended_on, :other_on, :seen_at, "
                ":status, :name, :ref_id)"
            ),
            parents,
        )
        if children:
            conn.execute(
                sa.text("INSERT INTO child VALUES (:id, :org, :parent_id, :pid2, :left_on)"),
                children,
            )
        if notes:
            conn.execute(sa.text("INSERT INTO note VALUES (:id, :parent_id, :written_on)"), notes)
    engine.dispose()


def _instant(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(23, 30), tzinfo=dt.UTC)


RULE = st.tuples(
    st.sampled_from(range(len(BASES))),
    st.sampled_from(range(len(BASES))),
    st.sampled_from(range(len(WHERE))),
    st.sampled_from(range(len(MASKS))),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parents=st.lists(
        st.tuples(st.integers(0, 2), DAY, DAY, st.sampled_from([None, "done", "open"])),
        min_size=1,
        max_size=6,
    ),
    children=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6), DAY), max_size=8),
    notes=st.lists(st.tuples(st.integers(0, 6), DAY), max_size=4),
    rules=st.lists(RULE, min_size=1, max_size=3),
    customers=st.lists(st.tuples(st.integers(0, 2), CUTOFF, ZONE, CUTOFF), min_size=2, max_size=5),
    many=st.booleans(),
)
def test_each_customer_is_due_exactly_where_its_own_count_is_above_zero(
    connector: tuple[SqlConnector, str, str],
    parents: list[tuple[int, Any, Any, Any]],
    children: list[tuple[int, int, Any]],
    notes: list[tuple[int, Any]],
    rules: list[tuple[int, int, int, int]],
    customers: list[tuple[int, dt.date, dt.tzinfo, dt.date]],
    many: bool,
) -> None:
    sql, kind, url = connector
    tenants = TENANTS[kind]
    _seed(
        url,
        [
            {
                "id": i,
                "org": tenants[org],
                "ended_on": day,
                "other_on": other,
                "seen_at": _instant(day),
                "status": status,
                "name": "#" if i % 2 else f"n{i}",
                "ref_id": (i + 1) % (len(parents) + 1),
            }
            for i, (org, day, other, status) in enumerate(parents)
        ],
        [
            {"id": i, "org": tenants[org], "parent_id": p, "pid2": p, "left_on": day}
            for i, (org, p, day) in enumerate(children)
        ],
        [{"id": i, "parent_id": p, "written_on": day} for i, (p, day) in enumerate(notes)],
    )
    if many:  # 101 customers: two statements, the second one padded up to 100 rows
        customers = [customers[i % len(customers)] for i in range(101)]

    def aims(tenant: Any, day: dt.date, zone: dt.tzinfo, other: dt.date) -> list[Target]:
        instant = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        return [
            Target(
                PARENT,
                tenant,
                BASES[basis],
                day,
                instant,
                also=(Basis(BASES[more], other, dt.datetime.combine(other, dt.time(), dt.UTC)),),
                where=WHERE[where],
                masks=MASKS[masks],
            )
            for basis, more, where, masks in rules
        ]

    asked = [aims(tenants[org], day, zone, other) for org, day, zone, other in customers]
    answers = sql.due_together(asked)
    assert answers is not None
    own: dict[tuple[Target, ...], list[bool]] = {}
    for targets, answer in zip(asked, answers, strict=True):
        key = tuple(targets)
        if key not in own:
            own[key] = [sql.backlog(t).count > 0 for t in targets]
        assert answer == own[key]
