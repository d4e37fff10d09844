"""Customers of one shared database asked together which rules have rows due
(connectors/sqltogether.py), on SQLite, PostgreSQL and MariaDB.

On PostgreSQL each customer's answer for each target is exactly "its own count is above
0", whatever its tenant (integer tenants given as text, text tenants that differ only by
case, accent, a trailing space or leading zeros) and cutoffs; more customers than one
statement holds are asked in several; a customer whose tenant value does not convert gets
no answer (its own count says why) and the others still do. SQLite and MariaDB are not
asked together (None): there each customer counts itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import sqltogether
from connectors.base import Target
from connectors.sql import SqlConnector
from tests.contract.backends import SqlBackend
from tests.integration import test_grouped_statements as grouped
from tests.integration.test_grouped_statements import DAYS, TEXT_TENANTS, ZONES, cutoff, targets

backend = grouped.backend

CUSTOMERS = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 3, 4, "1", "2"]),
        st.sampled_from(TEXT_TENANTS),
        st.lists(st.tuples(DAYS, ZONES), min_size=2, max_size=2),
    ),
    min_size=2,
    max_size=6,
)


def own(connector: SqlConnector, aims: list[Target]) -> list[bool]:
    """Whether each target's own count (built without any cache) is above 0."""
    return [connector.backlog(t).count > 0 for t in aims]


def statements(connector: SqlConnector) -> list[str]:
    """A list that fills with every statement the connector's engine runs from now on."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(connector.engine, "before_cursor_execute", note)
    return seen


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(customers=CUSTOMERS)
def test_each_customer_is_due_exactly_where_its_own_count_is_above_zero(
    backend: SqlBackend, customers: list[tuple[Any, str, list[tuple[dt.date, dt.tzinfo]]]]
) -> None:
    connector = backend.connector
    assert isinstance(connector, SqlConnector)
    aims = [
        targets(person, text, [cutoff(day, zone) for day, zone in cuts])
        for person, text, cuts in customers
    ]
    answers = connector.due_together(aims)
    if connector.dialect != "postgresql":
        assert answers is None
        return
    assert answers == [own(connector, a) for a in aims]


def test_the_seeded_rows_are_found_due_and_a_cutoff_before_them_finds_none(
    backend: SqlBackend,
) -> None:
    """Not every answer False nor every answer True: one cutoff after the seeded rows, one
    before all of them, for the same tenants."""
    connector = backend.connector
    late = [cutoff(dt.date(2030, 1, 1), dt.UTC)] * 2
    early = [cutoff(dt.date(1901, 1, 1), dt.UTC)] * 2
    answers = connector.due_together([targets(1, "kdv-a", late), targets(1, "kdv-a", early)])
    if connector.dialect != "postgresql":
        assert answers is None
        return
    assert answers is not None
    assert answers[0] is not None and answers[0][0] is True
    assert answers[1] == [False] * len(targets(1, "kdv-a", early))


@pytest.mark.parametrize("any_db_url", ["postgresql"], indirect=True)
def test_more_customers_than_one_statement_holds_are_asked_in_several(
    backend: SqlBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = backend.connector
    assert isinstance(connector, SqlConnector)
    monkeypatch.setattr(sqltogether, "chunk_size", lambda _slots: 3)
    days = [dt.date(2018, 1, 1), dt.date(2021, 6, 1), dt.date(2024, 1, 1), dt.date(2030, 1, 1)]
    aims = [
        targets(1 + i % 4, TEXT_TENANTS[i % len(TEXT_TENANTS)], [cutoff(days[i % 4], dt.UTC)] * 2)
        for i in range(8)
    ]
    seen = statements(connector)
    answers = connector.due_together(aims)
    assert answers == [own(connector, a) for a in aims]
    assert sum("rw_customers" in s for s in seen) == 3  # 3 + 3 + 2 customers


@pytest.mark.parametrize("any_db_url", ["postgresql"], indirect=True)
def test_a_customer_whose_tenant_does_not_convert_gets_no_answer_and_the_others_do(
    backend: SqlBackend,
) -> None:
    connector = backend.connector
    cuts = [cutoff(dt.date(2024, 1, 1), dt.UTC)] * 2
    aims = [targets(1, "kdv-a", cuts), targets("01", "kdv-a", cuts), targets(2, "kdv-a", cuts)]
    answers = connector.due_together(aims)
    assert answers == [own(connector, aims[0]), None, own(connector, aims[2])]


@pytest.mark.parametrize("any_db_url", ["postgresql"], indirect=True)
def test_customers_of_another_shape_are_not_asked_together(backend: SqlBackend) -> None:
    connector = backend.connector
    cuts = [cutoff(dt.date(2024, 1, 1), dt.UTC)] * 2
    first = targets(1, "kdv-a", cuts)
    assert connector.due_together([first, first[:-1]]) is None
    assert connector.due_together([first]) is None  # one customer: its own count


def test_a_value_of_a_type_that_cannot_be_carried_exactly_is_not_asked() -> None:
    assert sqltogether.cast_type(sa.String(5)).__class__ is sa.Text
    assert sqltogether.cast_type(sa.CHAR(3)).__class__ is sa.Text
    numeric = sqltogether.cast_type(sa.Numeric(10, 2))
    assert isinstance(numeric, sa.Numeric) and numeric.precision is None
    assert isinstance(sqltogether.cast_type(sa.BigInteger()), sa.BigInteger)
    assert isinstance(sqltogether.cast_type(sa.Date()), sa.Date)
    assert sqltogether.cast_type(sa.Float()) is None
    assert sqltogether.cast_type(sa.Boolean()) is None
    assert sqltogether.cast_type(sa.LargeBinary()) is None
