"""Which rows of the in-memory connector a `Target` selects: the Python twin of the SQL
predicates (`connectors.sqlread`).

The tenant value converted to the kind the tenant column holds, a row's time basis (its
column, the first of several, or a related table's latest or earliest value), the cutoffs
it must be past (the rule's and the other rules' of `Target.also`), row conditions with
SQL's NULL semantics, legal holds and anonymise's "already done". `MemoryRows` is a base of
`connectors.memory.MemoryConnector`, which holds the `tables` and the changes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from connectors.anonymise import mask_value
from connectors.base import (
    EARLIEST_BASIS,
    BasisSpec,
    ColumnMask,
    Condition,
    ConnectorError,
    FirstOf,
    Key,
    Op,
    SchemaError,
    Target,
)
from connectors.tenancy import TenantKind, exact_tenant, kind_of_value

Row = dict[str, Any]


class MemoryRows:
    """Row selection over `tables` (rows as dicts in lists, per table name)."""

    tables: dict[str, list[Row]]

    def _tenant(self, table: str, target: Target) -> Any:
        """The target's tenant value as `table` stores it (see `exact_tenant`)."""
        column = target.table.tenant_column
        if column is None or target.tenant is None:
            raise ConnectorError("a shared table needs the customer's tenant value")
        kinds = {kind_of_value(r[column]) for r in self.tables[table] if r.get(column) is not None}
        if None in kinds or len(kinds) > 1:
            raise SchemaError(
                f"the tenant column {table}.{column} holds values of mixed or unknown kinds; "
                "a tenant column must hold whole numbers, text or UUIDs"
            )
        kind = (kinds.pop() if kinds else kind_of_value(target.tenant)) or TenantKind.TEXT
        return exact_tenant(target.tenant, kind, f"{table}.{column}")

    def _same_tenant(self, row: Row, column: str, tenant: Any) -> bool:
        value = row.get(column)
        return type(value) is type(tenant) and bool(value == tenant)

    def _matches(self, row: Row, target: Target, tenant: Any = None) -> bool:
        spec = target.table
        if spec.tenant_column is not None and not self._same_tenant(
            row, spec.tenant_column, tenant
        ):
            return False
        if target.basis is None:
            if not target.everything:
                return False
        elif not self._past(row, target.basis, target, tenant):
            return False
        for other in target.also:  # the longest retention wins: past every overlapping rule
            if other.column is None:
                if not other.everything:
                    return False
                continue
            past = replace(
                target, cutoff_date=other.cutoff_date, cutoff_instant=other.cutoff_instant
            )
            if not self._past(row, other.column, past, tenant):
                return False
        if not all(_meets(row, c) for c in target.where):
            return False
        if target.masks and all(_done(m, row.get(m.column)) for m in target.masks):
            return False
        return _key(row, spec.key) not in target.held

    def _basis(
        self,
        row: Row,
        spec: BasisSpec,
        tenant: Any,
        column: str | None,
        gone: tuple[Target, ...] = (),
    ) -> Any:
        """The basis value of a row (None when unknown or, for "latest", not ended); related
        rows an earlier delete rule would delete (`gone`, in a plan) are left out."""
        if isinstance(spec, str):
            return row.get(spec)
        if isinstance(spec, FirstOf):
            return next((row[c] for c in spec.columns if row.get(c) is not None), None)
        related = [
            r
            for r in self.tables[spec.table]
            if all(r.get(own) == row.get(parent) for own, parent in spec.references)
            and (column is None or column not in r or self._same_tenant(r, column, tenant))
            and not any(self._gone(r, g) for g in gone if g.table.name == spec.table)
        ]
        if not related:
            return row.get(spec.if_none) if spec.if_none is not None else None
        values = [r.get(spec.column) for r in related]
        known: list[Any] = [v for v in values if v is not None]
        if spec.latest:
            return max(known) if len(known) == len(values) else None  # all ended
        return min(known) if known else None

    def _gone(self, row: Row, earlier: Target) -> bool:
        name = earlier.table.name
        tenant = self._tenant(name, earlier) if earlier.table.tenant_column else None
        return self._matches(row, earlier, tenant)

    def _past(self, row: Row, spec: BasisSpec, target: Target, tenant: Any) -> bool:
        value = self._basis(row, spec, tenant, target.table.tenant_column, target.gone)
        return isinstance(value, dt.date) and _known(value) and _before(value, target)

    def _expired(self, target: Target) -> list[Row]:
        name = target.table.name
        tenant = self._tenant(name, target) if target.table.tenant_column else None
        return [r for r in self.tables[name] if self._matches(r, target, tenant)]


def _key(row: Row, key: Sequence[str]) -> Key:
    return tuple(row[k] for k in key)


def _known(value: Any) -> bool:
    """A date or datetime from EARLIEST_BASIS on (anything else never expires)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) >= dt.datetime.combine(EARLIEST_BASIS, dt.time())
    return isinstance(value, dt.date) and value >= EARLIEST_BASIS


def _before(value: dt.date, target: Target) -> bool:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware < target.cutoff_instant
    return value < target.cutoff_date


def _same_text(value: Any, text: str) -> bool:
    """An operator's text read as the stored value's type (a stand-in for a column type)."""
    raw = text.strip()
    try:
        if isinstance(value, bool):
            return value == (raw.lower() in ("true", "1"))
        if isinstance(value, int):
            return value == int(raw)
        if isinstance(value, uuid.UUID):
            return value == uuid.UUID(raw)
        if isinstance(value, dt.datetime):
            return value == dt.datetime.fromisoformat(raw)
        if isinstance(value, dt.date):
            return value == dt.date.fromisoformat(raw)
    except ValueError:
        return False
    return bool(str(value) == text)


def _meets(row: Row, cond: Condition) -> bool:
    """A row condition in Python, with SQL's NULL semantics (false on NULL but IS NULL)."""
    value = row.get(cond.column)
    if cond.op is Op.IS_NULL:
        return value is None
    if cond.op is Op.NOT_NULL or value is None:
        return value is not None
    wanted: Any = cond.value
    if isinstance(value, dt.date) and isinstance(wanted, str):
        wanted = type(value).fromisoformat(wanted)
    elif isinstance(value, dt.date) and isinstance(wanted, list | tuple):
        wanted = [type(value).fromisoformat(w) for w in wanted]
    tests: dict[Op, Callable[[], Any]] = {
        Op.EQ: lambda: value == wanted,
        Op.NE: lambda: value != wanted,
        Op.IN: lambda: value in wanted,
        Op.NOT_IN: lambda: value not in wanted,
        Op.LT: lambda: value < wanted,
        Op.LE: lambda: value <= wanted,
        Op.GT: lambda: value > wanted,
        Op.GE: lambda: value >= wanted,
    }
    return bool(tests[cond.op]())


def _done(mask: ColumnMask, value: Any) -> bool:
    """Done when the mask maps the value to itself (the SQL test's meaning)."""
    return bool(mask_value(mask, value, b"") == value)
