"""How the masked rows of a batch travel to one UPDATE: which columns they write, a flag for
a column only some rows write, the values bound through each column's type and, apart, those
bound as they are (text read raw from a date column). `connectors.sqlmaskset` and
`connectors.sqlmaskjson` build the statements from a `Plan`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import Key

Row = tuple[Key, Mapping[str, Any]]  # a key and the new value of each column it writes
ALIAS = "retention_masked"  # the rows' derived table (a name no product table is expected to have)


def is_date(column: sa.ColumnElement[Any]) -> bool:
    """True for a DATE, DATETIME or TIMESTAMP column (whose raw values may be text)."""
    return isinstance(column.type, sa.Date | sa.DateTime)


@dataclass(frozen=True)
class Plan:
    """Which columns the rows write and how each travels: `flagged` columns are written by
    some rows only (a per-row flag says which), `nulls` ones are set to NULL by every row that
    writes them (no values travel), `raw` ones carry values to bind as they are (a second,
    untyped column of values, its first non-NULL of the two written)."""

    rows: Sequence[Row]
    columns: tuple[sa.Column[Any], ...]
    flagged: frozenset[str]
    nulls: frozenset[str]
    raw: frozenset[str]
    dated: frozenset[str] = frozenset()  # the written columns that are date columns

    @classmethod
    def of(cls, table: sa.Table, rows: Sequence[Row]) -> Plan:
        writers: Counter[str] = Counter()  # how many rows write each column
        for _, values in rows:
            writers.update(values.keys())
        names = sorted(writers)
        columns = tuple(table.c[n] for n in names)
        flagged = {n for n in names if writers[n] < len(rows)}
        nulls = {n for n in names if all(v.get(n) is None for _, v in rows)}
        # Only a date column can carry raw values (`is_raw`): the others are not looked at.
        dated = frozenset(c.name for c in columns if is_date(c))
        raw = {n for n in dated if any(_raw(v.get(n)) for _, v in rows)}
        return cls(rows, columns, frozenset(flagged), frozenset(nulls), frozenset(raw), dated)

    def names(self, width: int) -> list[str]:
        """The derived table's column names: k<i> (keys), then per written column j s<j>
        (flag), c<j> (value), r<j> (raw value), each only where needed."""
        found = [f"k{i}" for i in range(width)]
        for j, column in enumerate(self.columns):
            found += [f"s{j}"] if column.name in self.flagged else []
            found += [] if column.name in self.nulls else [f"c{j}"]
            found += [f"r{j}"] if column.name in self.raw else []
        return found

    def values(self, row: Row) -> list[Any]:
        """One row's values, in the order of `names`."""
        key, written = row
        found = list(key)
        for column in self.columns:
            name = column.name
            value = written.get(name)
            raw = name in self.dated and _raw(value)  # `is_raw`, the column's type known
            if name in self.flagged:
                found.append(name in written)
            if name not in self.nulls:
                found.append(None if raw else value)
            if name in self.raw:
                found.append(value if raw else None)
        return found

    def assignments(
        self, source: sa.FromClause, raw_type: Any = None
    ) -> dict[sa.Column[Any], ColumnElement[Any]]:
        """SET column = its value in `source`, or the column itself where its flag is off.
        A raw value is cast to `raw_type(column)`, if given (PostgreSQL: the column's type)."""
        found: dict[sa.Column[Any], ColumnElement[Any]] = {}
        for j, column in enumerate(self.columns):
            value: ColumnElement[Any] = sa.null()
            if column.name not in self.nulls:
                value = source.c[f"c{j}"]
            if column.name in self.raw:
                raw: ColumnElement[Any] = source.c[f"r{j}"]
                raw = raw if raw_type is None else sa.cast(raw, raw_type(column))
                value = sa.func.coalesce(value, raw)
            if column.name in self.flagged:
                value = sa.case((source.c[f"s{j}"], value), else_=column)
            found[column] = value
        return found


def is_raw(column: sa.Column[Any], value: Any) -> bool:
    """A value bound as it is: a non-date (text) read raw from a date column."""
    return is_date(column) and _raw(value)


def _raw(value: Any) -> bool:
    """`is_raw` of a value of a date column."""
    return value is not None and not isinstance(value, dt.date)


def typed(name: str, column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
    """The type of the derived column `name` (of `column`): Boolean for a flag, NullType for
    raw values (bound as they are), else the key's or the written column's type."""
    if name[0] == "s":
        return sa.Boolean()
    if name[0] == "r":
        return sa.types.NullType()
    return column.type


def source_columns(key: Sequence[sa.Column[Any]], plan: Plan) -> list[tuple[str, sa.Column[Any]]]:
    """The derived table's column names (`Plan.names`), each with its key or written column."""
    return [
        (name, key[int(name[1:])] if name[0] == "k" else plan.columns[int(name[1:])])
        for name in plan.names(len(key))
    ]


def joined(
    key: Sequence[sa.Column[Any]], source: sa.FromClause, where: ColumnElement[bool] | None
) -> list[ColumnElement[bool]]:
    found = [k == source.c[f"k{i}"] for i, k in enumerate(key)]
    return found if where is None else [*found, where]


def alias(table: sa.Table) -> str:
    return ALIAS if table.name != ALIAS else f"{ALIAS}_rows"
