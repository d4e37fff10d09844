"""An in-memory connector with the same contract, for fast unit tests of the worker.

Rows are dicts in lists, per table. Dates compare as Python dates; naive datetimes are
taken as UTC, like the SQL connector does.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.anonymise import is_pseudonym, mask_value
from connectors.base import (
    Backlog,
    Change,
    ColumnMask,
    Connector,
    ConnectorError,
    Dependent,
    Key,
    Mask,
    Problem,
    Table,
    Target,
)

Row = dict[str, Any]


class MemoryConnector(Connector):
    """Tables held in memory. `fail_next` makes the next call raise (fault injection)."""

    def __init__(self, tables: Mapping[str, list[Row]], *, pepper: bytes = b"") -> None:
        self.tables: dict[str, list[Row]] = {k: copy.deepcopy(v) for k, v in tables.items()}
        self._pepper = pepper
        self.is_open = False
        self.fail_next: ConnectorError | None = None

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def open(self) -> None:
        self._maybe_fail()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def ping(self) -> None:
        self._maybe_fail()

    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        problems: list[Problem] = []
        pending = list(tables)
        while pending:
            spec = pending.pop(0)
            # Dependents are checked like tables (for the columns that reference the parent).
            pending += [
                Table(
                    d.table,
                    key=(),
                    columns=(*d.columns, *(c for c, _ in d.references)),
                    dependents=d.dependents,
                )
                for d in spec.dependents
            ]
            rows = self.tables.get(spec.name)
            if rows is None:
                problems.append(Problem(spec.name, None, "table is missing from the database"))
                continue
            columns = set(rows[0]) if rows else set()
            wanted = [*spec.key, *spec.columns, *spec.dates]
            wanted += [spec.tenant_column] if spec.tenant_column else []
            for column in dict.fromkeys(wanted):
                if rows and column not in columns:
                    problems.append(Problem(spec.name, column, "column is missing from the table"))
            for column in spec.dates:
                if any(not isinstance(r.get(column), dt.date | None) for r in rows):
                    message = "a time basis must be a DATE or TIMESTAMP column"
                    problems.append(Problem(spec.name, column, message))
        return problems

    def _matches(self, row: Row, target: Target) -> bool:
        spec = target.table
        if spec.tenant_column is not None and row.get(spec.tenant_column) != target.tenant:
            return False
        if target.basis is None:
            if not target.everything:
                return False
        else:
            value = row.get(target.basis)
            if value is None or not _before(value, target):
                return False
        if target.masks and all(_done(m, row.get(m.column)) for m in target.masks):
            return False
        return _key(row, spec.key) not in target.held

    def backlog(self, target: Target) -> Backlog:
        self._maybe_fail()
        rows = [r for r in self.tables[target.table.name] if self._matches(r, target)]
        basis = target.basis
        oldest = min((r[basis] for r in rows), default=None) if basis else None
        return Backlog(len(rows), oldest)

    def count_rows(self, target: Target) -> int:
        self._maybe_fail()
        column = target.table.tenant_column
        rows = self.tables[target.table.name]
        return sum(1 for r in rows if column is None or r.get(column) == target.tenant)

    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        self._maybe_fail()
        keys = sorted(
            _key(r, target.table.key)
            for r in self.tables[target.table.name]
            if self._matches(r, target)
        )
        if after is not None:
            keys = [k for k in keys if k > after]
        return keys[:limit]

    def apply(self, target: Target, change: Change, keys: Sequence[Key]) -> Mapping[str, int]:
        self._maybe_fail()
        snapshot = copy.deepcopy(self.tables)  # one transaction: all or nothing
        try:
            counts = self._apply(target, change, set(keys))
        except Exception:
            self.tables = snapshot
            raise
        return counts

    def _apply(self, target: Target, change: Change, wanted: set[Key]) -> dict[str, int]:
        rows = [
            r
            for r in self.tables[target.table.name]
            if _key(r, target.table.key) in wanted and self._matches(r, target)
        ]
        if change is Change.ANONYMISE:
            return {target.table.name: self._anonymise(rows, target.masks)}
        counts: dict[str, int] = {}
        if change is Change.DELETE:
            for dep in target.table.dependents:
                self._delete_dependent(dep, rows, counts)
        gone = {id(r) for r in rows}
        self.tables[target.table.name] = [
            r for r in self.tables[target.table.name] if id(r) not in gone
        ]
        counts[target.table.name] = counts.get(target.table.name, 0) + len(rows)
        return counts

    def _delete_dependent(self, dep: Dependent, parents: list[Row], counts: dict[str, int]) -> None:
        refs = {tuple(p[pc] for _, pc in dep.references) for p in parents}
        rows = [r for r in self.tables[dep.table] if tuple(r[c] for c, _ in dep.references) in refs]
        for child in dep.dependents:
            self._delete_dependent(child, rows, counts)
        gone = {id(r) for r in rows}
        self.tables[dep.table] = [r for r in self.tables[dep.table] if id(r) not in gone]
        counts[dep.table] = counts.get(dep.table, 0) + len(rows)

    def _anonymise(self, rows: list[Row], masks: Sequence[ColumnMask]) -> int:
        changed = 0
        for row in rows:
            touched = False
            for mask in masks:
                new = mask_value(mask, row.get(mask.column), self._pepper)
                if new != row.get(mask.column):
                    row[mask.column] = new
                    touched = True
            changed += touched
        return changed


def _key(row: Row, key: Sequence[str]) -> Key:
    return tuple(row[k] for k in key)


def _before(value: Any, target: Target) -> bool:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware < target.cutoff_instant
    return bool(value < target.cutoff_date)


def _done(mask: ColumnMask, value: Any) -> bool:
    if value is None:
        return True
    if mask.mask is Mask.FIXED:
        return bool(value == mask.text)
    if mask.mask is Mask.YEAR:
        return bool(value.month == 1 and value.day == 1)
    if mask.mask is Mask.POSTCODE_DIGITS:
        return len(str(value)) <= 4 and all(c in "0123456789" for c in str(value))
    if mask.mask is Mask.KEYED_HASH:
        return is_pseudonym(str(value))
    return False
