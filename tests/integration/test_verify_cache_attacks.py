"""Attacks on the problems a schema check keeps with the shared reflection
(connectors/sqlschemaview.py `verify_each`): two table specs that compare equal but are
checked differently must not share what a check found.

A condition's value is a bool, a whole number, a float or a text (worker/config/language.py
`Scalar`), and `1 == True == 1.0` in Python: `equals: 1` and `equals: true` make equal
`Condition`s with equal hashes, yet `sqlbasis.typed` accepts only one of them for a column
(a boolean for a BOOLEAN column, a whole number for an INTEGER one). A configuration reload
that fixes `equals: true` to `equals: 1` on an INTEGER column (or two mappings of one
database that differ so) must be checked again, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from connectors.base import Condition, Op, Problem, Table
from connectors.engines import Engines
from connectors.sql import SqlConnector
from tests.integration.test_borrowed_schema_check import Clock, flexkids
from tests.integration.test_shared_engines import KDV
from tests.support import PEPPER, fixture_config
from worker.app import ConnectorFactory
from worker.targets import tables_for

shared_flexkids = flexkids
KEPT = "retention_worker.verified"  # where a reflection keeps the problems found


@pytest.fixture
def two(
    shared_flexkids: dict[str, str],
) -> Iterator[tuple[SqlConnector, SqlConnector, list[Table]]]:
    """Two connectors of the shared FlexKids database on one `Engines`, and its specs."""
    config, engines = fixture_config(), Engines(clock=Clock())
    factory = ConnectorFactory(shared_flexkids, PEPPER, engines)
    ((customer, mapping),) = [
        (c, p) for c, p in config.pairs() if p.product == "flexkids" and c.customer == KDV
    ]
    first, second = factory(customer, mapping), factory(customer, mapping)
    assert isinstance(first, SqlConnector) and isinstance(second, SqlConnector)
    first.open()
    second.open()
    try:
        yield first, second, list(tables_for(mapping))
    finally:
        first.close()
        second.close()


def _with(tables: list[Table], value: object) -> list[Table]:
    """`tables` with a condition `amount_cents = value` (`IN value`, for a tuple) on the
    invoice table."""
    cond = Condition("amount_cents", Op.IN if isinstance(value, tuple) else Op.EQ, value)
    return [
        dataclasses.replace(t, conditions=(*t.conditions, cond)) if t.name == "invoice" else t
        for t in tables
    ]


def _where(found: list[list[Problem]]) -> list[str]:
    return [str(p) for problems in found for p in problems if "amount_cents" in str(p)]


@pytest.mark.parametrize(
    "good, bad", [(1, True), (1, 1.0), ((2, 1), (2, True))], ids=["bool", "float", "in"]
)
def test_equal_conditions_of_other_types_are_checked_again(
    two: tuple[SqlConnector, SqlConnector, list[Table]], good: object, bad: object
) -> None:
    first, second, tables = two
    assert _where(first.verify_each(_with(tables, bad)))  # not a whole number: a problem
    assert _where(second.verify_each(_with(tables, good))) == []  # a whole number: none
    assert _where(first.verify_each(_with(tables, bad)))  # and the other way round


class _Cleared(dict[object, object]):
    """Kept problems that another thread clears (at VERIFIED_PER_SCHEMA entries) right
    after this one found its key among them."""

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        self.clear()
        return found


def test_kept_problems_cleared_by_another_thread_meanwhile(
    two: tuple[SqlConnector, SqlConnector, list[Table]],
) -> None:
    """The daemon's runs share the kept problems: a lookup must not find a key and then
    read it after another run cleared them (a KeyError failed the run)."""
    first, second, tables = two
    expected = first.verify_each(tables)
    info = first._shared["invoice"].metadata.info
    info[KEPT] = _Cleared(info[KEPT])
    assert second.verify_each(tables) == expected
