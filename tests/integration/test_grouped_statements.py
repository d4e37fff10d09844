"""The grouped backlog count is built once per shape and reused for every customer with its
own tenant and cutoffs (connectors.sqlbind), on SQLite, PostgreSQL and MariaDB.

Each customer's counts from the cached statement equal those of its own statement built
without the cache (`backlog`, target by target) and the rows as seeded say; a tenant value
that does not convert exactly is refused for that customer although the statement is
cached; a schema that drifted (a new reflection) and a mapping that changed get a new
statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.sql import visitors

from connectors.base import (
    Aggregated,
    Basis,
    Condition,
    FirstOf,
    Op,
    Target,
    TenantValueError,
)
from connectors.engines import Engines
from connectors.sql import SqlConnector
from connectors.sqlcount import backlogs
from connectors.sqlread import grouped_cache
from tests.contract.backends import PEPPER, PERSON, SEED, TEXT_CHILD, SqlBackend

TEXT_TENANTS = ["kdv-a", "KDV-A", "kdv-á", "kdv-a ", "1042", "01042", "1042b", "nobody"]
DAYS = st.dates(dt.date(2017, 1, 1), dt.date(2026, 1, 1))
ZONES = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone.min])


def cutoff(day: dt.date, zone: dt.tzinfo) -> tuple[dt.date, dt.datetime]:
    """A cutoff date and an instant near it (another zone's midnight), as rules make them."""
    return day, dt.datetime.combine(day, dt.time(), tzinfo=zone)


def targets(person: int, text: str, cuts: Sequence[tuple[dt.date, dt.datetime]]) -> list[Target]:
    """One customer's targets, of one shape whatever the tenants and cutoffs: date and
    timestamp bases, a first-of, a related basis, another rule's cutoff (`also`), a text
    tenant."""
    (day, instant), (day2, instant2) = cuts[0], cuts[1]
    membership = Aggregated("membership", (("person_id", "id"),), "ended_on")

    def aim(basis: Any, **kw: Any) -> Target:
        return Target(PERSON, person, basis, day, instant, **kw)

    return [
        aim("left_on"),
        aim("last_seen_at"),
        aim(FirstOf(("left_on", "last_seen_at"))),
        aim(membership),
        aim(
            "left_on",
            also=(Basis("last_seen_at", day2, instant2), Basis(membership, day2, instant2)),
        ),
        aim("left_on", where=(Condition("name", Op.EQ, "Eva Smit"),)),
        Target(TEXT_CHILD, text, "left_on", day2, instant2),
    ]


def expected_left_on(person: int, day: dt.date) -> int:
    """Rows of `person`'s tenant whose left_on is a date from 1900 on before `day`."""
    return sum(
        1
        for row in SEED["person"]
        if row["tenant"] == person and row["left_on"] is not None and row["left_on"] < day
    )


@pytest.fixture
def backend(any_db_url: str) -> Iterator[SqlBackend]:
    """The contract's seeded schema in a fresh database, with an open SqlConnector."""
    found = SqlBackend(any_db_url)
    try:
        yield found
    finally:
        found.close()


def statement_of(connector: SqlConnector, aims: Sequence[Target]) -> sa.Select[Any]:
    """The grouped statement `backlogs` runs for `aims` (cached or built now)."""
    return connector._grouped(aims)[0]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customers=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, "1", "2"]),
            st.sampled_from(TEXT_TENANTS),
            st.lists(st.tuples(DAYS, ZONES), min_size=2, max_size=2),
        ),
        min_size=2,
        max_size=4,
    )
)
def test_each_customer_counts_its_own_rows_from_one_statement(
    backend: SqlBackend, customers: list[tuple[Any, str, list[tuple[dt.date, dt.tzinfo]]]]
) -> None:
    """Customers of one shape, each with its tenants and cutoffs: one statement for all,
    each customer's counts those of its own targets counted one by one without the cache
    (and for the date basis, those the seeded rows say)."""
    connector = backend.connector
    assert isinstance(connector, SqlConnector)
    statements = set()
    for person, text, cuts in customers:
        aims = targets(person, text, [cutoff(day, zone) for day, zone in cuts])
        together = backlogs(connector, aims)
        assert together == [connector.backlog(t) for t in aims]
        assert together[0].count == expected_left_on(int(person), cuts[0][0])
        statements.add(id(statement_of(connector, aims)))
    assert len(statements) == 1


def test_a_tenant_value_is_checked_for_each_customer_of_a_cached_statement(
    backend: SqlBackend,
) -> None:
    """The statement is cached after the first customer; a later customer whose tenant
    value does not convert exactly to the column is still refused, and changes no count."""
    connector = backend.connector
    cuts = [cutoff(dt.date(2024, 1, 1), dt.UTC)] * 2
    assert backlogs(connector, targets(1, "kdv-a", cuts))[0].count == 5
    for wrong in ("01", "1.0", True, 1.5):
        with pytest.raises(TenantValueError):
            backlogs(connector, targets(wrong, "kdv-a", cuts))
    assert backlogs(connector, targets("2", "kdv-a", cuts))[0].count == 2


def tables_in(statement: sa.Select[Any]) -> set[sa.Table]:
    """Every reflected table `statement` reads (aliases resolved)."""
    return {e for e in visitors.iterate(statement) if isinstance(e, sa.Table)}


def test_a_schema_that_drifted_or_a_changed_mapping_gets_a_new_statement(
    backend: SqlBackend,
) -> None:
    """With the process's shared reflection: the cached statement serves the next customer;
    after the table changed (another reflection), and for a mapping with another condition,
    the statement is built anew, on the new tables, and counts right."""
    engines = Engines()
    connector = SqlConnector(backend.url, pepper=PEPPER, engines=engines)
    connector.open()
    try:
        cuts = [cutoff(dt.date(2024, 1, 1), dt.UTC)] * 2
        connector.verify_each([PERSON, TEXT_CHILD])
        first = targets(1, "kdv-a", cuts)
        before = statement_of(connector, first)
        assert statement_of(connector, targets(2, "KDV-A", cuts)) is before
        old = connector._table("person")
        assert old in tables_in(before)

        with sa.create_engine(backend.url).begin() as conn:
            conn.execute(sa.text("ALTER TABLE person ADD COLUMN shoe_size INTEGER"))
        connector.verify_each([PERSON, TEXT_CHILD])  # the fingerprint changed: reflected again
        new = connector._table("person")
        assert new is not old
        after = statement_of(connector, first)
        assert after is not before
        assert new in tables_in(after) and old not in tables_in(after)
        assert grouped_cache(new) is not grouped_cache(old)
        assert backlogs(connector, first) == [connector.backlog(t) for t in first]

        other = (Condition("name", Op.NE, "Eva Smit"),)
        changed = [replace(t, where=other) if t.table is PERSON else t for t in first]
        assert statement_of(connector, changed) is not after
        assert backlogs(connector, changed) == [connector.backlog(t) for t in changed]
    finally:
        connector.close()
        engines.dispose()


def test_held_keys_are_never_taken_from_the_cache(backend: SqlBackend) -> None:
    """A target with held keys is built for itself every time (its keys are no parameter of
    a shape), and counts without them."""
    connector = backend.connector
    cuts = [cutoff(dt.date(2024, 1, 1), dt.UTC)] * 2
    aims = targets(1, "kdv-a", cuts)
    held = [replace(aims[0], held=frozenset({(1,)})), *aims[1:]]
    cache = grouped_cache(connector._table("person"))
    size = len(cache)
    assert statement_of(connector, held) is not statement_of(connector, held)
    assert len(cache) == size
    assert backlogs(connector, held)[0].count == backlogs(connector, aims)[0].count - 1
