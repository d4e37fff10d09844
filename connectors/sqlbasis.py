"""SQL for the mapping language in the SQL connector: time bases and row conditions.

A time basis is a column of the row, the first of several that is not NULL (COALESCE), or an
aggregate over a related table (`Aggregated`): the latest end date with "all ended" semantics —
a related row without an end date keeps the row — or the earliest value. Every one of them is
judged with `connectors.dates`, so odd values are kept everywhere, on every database.

A row condition is one test of one column, false on NULL (except IS NULL), compared the way
the database compares that column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors import dates
from connectors.base import (
    Aggregated,
    BasisSpec,
    Condition,
    FirstOf,
    Op,
    Problem,
    SchemaError,
    Table,
    Target,
)
from connectors.sqlbind import Bind
from connectors.tenantrange import integer_range

TableOf = Callable[[str], sa.Table]
TenantOn = Callable[[sa.FromClause], ColumnElement[bool] | None]
"""The tenant filter of any table or alias that has the tenant column, else None."""


def basis_value(
    spec: BasisSpec, table: sa.FromClause, table_of: TableOf, tenant_on: TenantOn
) -> ColumnElement[Any]:
    """The basis of each row of `table` as one SQL expression (a column, COALESCE, or a
    correlated aggregate over the related table)."""
    if isinstance(spec, str):
        return table.c[spec]
    if isinstance(spec, FirstOf):
        first = table.c[spec.columns[0]]
        return sa.func.coalesce(*(table.c[c] for c in spec.columns), type_=first.type)
    related, link = _related(spec, table, table_of, tenant_on)
    column = related.c[spec.column]
    value = sa.func.max(column) if spec.latest else sa.func.min(column)
    return sa.select(value).where(link).scalar_subquery()


def _related(
    spec: Aggregated, table: sa.FromClause, table_of: TableOf, tenant_on: TenantOn
) -> tuple[sa.FromClause, ColumnElement[bool]]:
    related = table_of(spec.table).alias()
    clauses: list[ColumnElement[bool]] = [
        related.c[own] == table.c[parent] for own, parent in spec.references
    ]
    tenant = tenant_on(related)
    if tenant is not None:
        clauses.append(tenant)
    return related, sa.and_(*clauses)


def expired(
    spec: BasisSpec,
    table: sa.FromClause,
    target: Target,
    dialect: str,
    table_of: TableOf,
    tenant_on: TenantOn,
    cutoff: Bind | None = None,
) -> ColumnElement[bool]:
    """SQL true for a row whose basis is a readable date before the target's cutoff (with
    `cutoff`, a per-customer parameter: `connectors.dates.expired`)."""
    value = basis_value(spec, table, table_of, tenant_on)
    past = dates.expired(value, target, dialect, cutoff)
    if not isinstance(spec, Aggregated):
        return past
    related, link = _related(spec, table, table_of, tenant_on)
    some = sa.exists().where(link)
    clauses: list[ColumnElement[bool]] = [some, past]
    if spec.latest:  # all ended: no related row without an end date
        clauses.append(sa.not_(sa.exists().where(link, related.c[spec.column].is_(None))))
    found = sa.and_(*clauses)
    if spec.if_none is None:
        return found
    none_past = dates.expired(table.c[spec.if_none], target, dialect, cutoff)
    # The column's own test first: a database evaluates AND's terms in order and stops at
    # the first false one, so a row still inside its period costs no sub-select here.
    return sa.or_(found, sa.and_(sa.not_(some), none_past))


def oldest(
    spec: BasisSpec, table: sa.FromClause, dialect: str, table_of: TableOf, tenant_on: TenantOn
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(MIN expression, the basis expression it reads) for the backlog's oldest value."""
    value = basis_value(spec, table, table_of, tenant_on)
    if isinstance(spec, Aggregated) and spec.if_none is not None:
        none = table.c[spec.if_none]
        value = sa.func.coalesce(value, none, type_=value.type)
    return dates.oldest(value, dialect), value


def condition(
    cond: Condition, table: sa.FromClause, dialect: str | None = None
) -> ColumnElement[bool]:
    """One row condition as SQL; SchemaError when its value cannot be the column's type.

    On SQLite a date-time column holds text in whatever form was written (`2025-12-31
    23:30:00`, with fractions, with a `T`), and text comparison would put `…23:30:00` before
    the driver's `…23:30:00.000000`: both sides are compared as `julianday()` instants
    there (SQLite docs, "Date And Time Functions"), as PostgreSQL and MariaDB compare them.
    """
    column: ColumnElement[Any] = table.c[cond.column]
    if cond.op is Op.IS_NULL:
        return column.is_(None)
    if cond.op is Op.NOT_NULL:
        return column.is_not(None)
    as_instant = dialect == "sqlite" and isinstance(column.type, sa.DateTime)
    if cond.op in (Op.IN, Op.NOT_IN):
        values: list[Any] = [typed(v, column, cond) for v in cond.value]
        if as_instant:
            column, values = _julian(column), [_julian(v) for v in values]
        if cond.op is Op.IN:
            return column.in_(values)
        return sa.and_(column.is_not(None), column.not_in(values))
    typed_value = typed(cond.value, column, cond)
    value: ColumnElement[Any] = sa.literal(typed_value, type_=column.type)
    if as_instant:
        column, value = _julian(column), _julian(typed_value)
    tests: dict[Op, Callable[[], ColumnElement[bool]]] = {
        Op.EQ: lambda: column == value,
        Op.NE: lambda: sa.and_(column.is_not(None), column != value),
        Op.LT: lambda: column < value,
        Op.LE: lambda: column <= value,
        Op.GT: lambda: column > value,
        Op.GE: lambda: column >= value,
    }
    return tests[cond.op]()


def _julian(value: Any) -> ColumnElement[Any]:
    """SQLite's `julianday()` of a column, or of a date-time written as ISO text (UTC)."""
    if isinstance(value, dt.datetime):
        value = value.isoformat(sep=" ")
    return sa.func.julianday(value)


def typed(
    value: Any, column: sa.ColumnElement[Any], cond: Condition, dialect: str | None = None
) -> Any:
    """`value` as the column's type holds it; SchemaError saying what to write otherwise.

    A whole number must lie within the integer column's range on `dialect` (its declared
    width: INTEGER is 32 bits on PostgreSQL and MariaDB; any column 64 bits on SQLite, and
    when `dialect` is None), and a text holds no NUL character: the database would refuse
    the statement (PostgreSQL `integer out of range`, SQLite's driver an OverflowError).
    """
    kind = column.type
    where = f"the condition on {cond.column} ({cond.op} {value!r})"
    if isinstance(value, str) and "\x00" in value:
        raise SchemaError(
            f"the condition on {cond.column} holds a NUL character (\\0), which PostgreSQL "
            "refuses in any text and no stored text holds; remove it"
        )
    try:
        if isinstance(kind, sa.Boolean):
            if isinstance(value, bool):
                return value
        elif isinstance(kind, sa.DateTime):
            if isinstance(value, str):
                return _instant(dt.datetime.fromisoformat(value), aware=bool(kind.timezone))
        elif isinstance(kind, sa.Date):
            if isinstance(value, str):
                return dt.date.fromisoformat(value)
        elif isinstance(kind, sa.Integer):
            if isinstance(value, int) and not isinstance(value, bool):
                low, high = integer_range(kind, dialect or "sqlite") or (-(2**63), 2**63 - 1)
                if not low <= value <= high:
                    raise SchemaError(
                        f"{where} is beyond the column's type {kind} (whole numbers from {low} "
                        f"to {high}): no row holds it and the database would refuse the "
                        "comparison; write a value within that range"
                    )
                return value
        elif isinstance(kind, sa.Numeric | sa.Float):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return decimal.Decimal(str(value)) if isinstance(kind, sa.Numeric) else value
        elif isinstance(kind, sa.String):
            if isinstance(value, str):
                return value
        else:
            return value
    except ValueError:
        pass
    raise SchemaError(f"{where} does not fit the column's type {kind}: write a {_kind_hint(kind)}")


def _instant(value: dt.datetime, *, aware: bool) -> dt.datetime:
    """A condition's date-time as the column compares it, the same on every backend: a column
    without a time zone holds UTC (the worker pins its sessions to UTC), so a value with an
    offset is converted to UTC and its offset dropped; a column with a time zone gets an
    aware value (a value without an offset is UTC). MariaDB and SQLite would otherwise drop
    the offset and compare the wall-clock time."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC) if aware else value
    utc = value.astimezone(dt.UTC)
    return utc if aware else utc.replace(tzinfo=None)


def _kind_hint(kind: Any) -> str:
    if isinstance(kind, sa.Boolean):
        return "true or false"
    if isinstance(kind, sa.DateTime):
        return "date-time as text, e.g. '2026-01-31T00:00:00'"
    if isinstance(kind, sa.Date):
        return "date as text, e.g. '2026-01-31'"
    if isinstance(kind, sa.Integer):
        return "whole number"
    if isinstance(kind, sa.Numeric | sa.Float):
        return "number"
    return "text"


def verify_spec(
    spec: Table, existing: set[str], table_of: TableOf, dialect: str | None = None
) -> list[Problem]:
    """The mapping language of one table against the live schema: related time bases
    (table, references, a date column), row conditions (column, a value of its type),
    related rows (table, references, masked columns), and a key that a primary key or a
    unique index proves (a key that is not unique would let one keyed hash stand for
    several rows) on NOT NULL columns (a unique index allows many NULLs)."""
    if spec.name not in existing:
        return []  # reported by the table check
    table = table_of(spec.name)
    problems: list[Problem] = []
    for basis in spec.bases:
        problems += _verify_linked(basis.table, basis.references, table, existing, table_of)
        if basis.table in existing:
            column = table_of(basis.table).c.get(basis.column)
            if column is None:
                problems.append(Problem(basis.table, basis.column, "column is missing"))
            elif not isinstance(column.type, sa.Date | sa.DateTime):
                problems.append(
                    Problem(
                        basis.table,
                        basis.column,
                        f"a time basis must be a DATE or TIMESTAMP column, not {column.type}",
                    )
                )
    for cond in spec.conditions:
        if cond.column not in table.c:
            problems.append(
                Problem(spec.name, cond.column, "column is missing from the table", part="where")
            )
            continue
        values = cond.value if cond.op in (Op.IN, Op.NOT_IN) else [cond.value]
        for value in values if cond.op not in (Op.IS_NULL, Op.NOT_NULL) else []:
            try:
                typed(value, table.c[cond.column], cond, dialect)
            except SchemaError as exc:
                problems.append(Problem(spec.name, cond.column, str(exc), part="where"))
                break
    for rel in spec.related:
        problems += _verify_linked(rel.table, rel.references, table, existing, table_of)
        if rel.table in existing:
            related = table_of(rel.table)
            problems += [
                Problem(rel.table, m.column, "column is missing from the table")
                for m in rel.masks
                if m.column not in related.c
            ]
    if spec.key and all(k in table.c for k in spec.key) and not _unique(table, spec.key):
        problems.append(
            Problem(
                spec.name,
                None,
                f"the key ({', '.join(spec.key)}) is not a primary key or a unique index, so "
                "it may name several rows (a partial unique index, `… WHERE …`, proves "
                "nothing about the rows outside it); map a key the table proves unique, or "
                "`key: []` for a table a delete rule clears without a key",
            )
        )
    for name in spec.key:
        column = table.c.get(name)
        if column is not None and column.nullable and not column.primary_key:
            problems.append(
                Problem(
                    spec.name,
                    name,
                    "this key column allows NULL: a key must be NOT NULL (a "
                    "unique index allows many NULLs, and a row with a NULL key part can be named "
                    f"neither in the audit nor by a legal hold); make {spec.name}.{name} NOT NULL "
                    "(after giving its NULL rows a value), or map another key (the primary key)",
                )
            )
    return problems


def _verify_linked(
    name: str,
    references: tuple[tuple[str, str], ...],
    parent: sa.Table,
    existing: set[str],
    table_of: TableOf,
) -> list[Problem]:
    if name not in existing:
        return [Problem(name, None, "table is missing from the database")]
    linked = table_of(name)
    found = [
        Problem(name, own, "column is missing from the table")
        for own, _ in references
        if own not in linked.c
    ]
    found += [
        Problem(parent.name, theirs, f"referenced by {name} but missing from the table")
        for _, theirs in references
        if theirs not in parent.c
    ]
    return found


def _unique(table: sa.Table, key: tuple[str, ...]) -> bool:
    """True when the primary key, a unique constraint or a unique index lies within `key`.

    A partial unique index (`CREATE UNIQUE INDEX … WHERE …`, PostgreSQL and SQLite; e.g.
    unique among rows not archived) does not count: rows outside its predicate may share
    the key, so a key it "proves" can name a kept row, or another tenant's, with the row
    that expired."""
    wanted = set(key)
    pk = {c.name for c in table.primary_key.columns}
    if pk and pk <= wanted:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            columns = {c.name for c in constraint.columns}
            if columns and columns <= wanted:
                return True
    for index in table.indexes:
        columns = {c.name for c in index.columns}
        if index.unique and columns and columns <= wanted and not _partial(index):
            return True
    return False


def _partial(index: sa.Index) -> bool:
    """True for an index with a predicate (reflected as the dialect's `where` option)."""
    return any(
        index.dialect_options[name].get("where") is not None
        for name in ("postgresql", "sqlite")
        if name in index.dialect_options
    )


def key_value(text: str, column: sa.ColumnElement[Any]) -> Any:
    """An operator's text for one key part, as the key column's type holds it; SchemaError
    saying what to write when it is no value of that type."""
    kind = column.type
    raw = text.strip()
    if not raw:
        raise SchemaError(f"an empty text is no value of {column.name}; give the key part")
    try:
        if isinstance(kind, sa.Boolean):
            return {"true": True, "false": False, "1": True, "0": False}[raw.lower()]
        if isinstance(kind, sa.Integer):
            return int(raw)
        if isinstance(kind, sa.Uuid):
            value = uuid.UUID(raw)
            return value if kind.as_uuid else str(value)
        if isinstance(kind, sa.DateTime):
            return dt.datetime.fromisoformat(raw)
        if isinstance(kind, sa.Date):
            return dt.date.fromisoformat(raw)
        if isinstance(kind, sa.Numeric):
            return decimal.Decimal(raw)
    except (ValueError, KeyError, decimal.InvalidOperation):
        raise SchemaError(
            f"{text!r} is not a value of {column.name} ({kind}); write a {_kind_hint(kind)}"
        ) from None
    return text


def key_candidates(text: str, column: sa.ColumnElement[Any]) -> list[Any]:
    """The values one key part may be stored as: its typed value; for a text column also the
    usual spellings of a UUID the text names (a UUID kept as text: 32 hex digits on SQLite,
    36 characters elsewhere, in either case)."""
    value = key_value(text, column)
    if not isinstance(column.type, sa.String) or isinstance(column.type, sa.Uuid):
        return [value]
    try:
        named = uuid.UUID(text.strip())
    except ValueError:
        return [value]
    spelled = [str(named), named.hex]
    return list(dict.fromkeys([value, *spelled, *(s.upper() for s in spelled)]))
