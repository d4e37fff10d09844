"""An in-memory connector with the same contract, for fast unit tests of the worker.

Rows are dicts in lists, per table. Dates compare as Python dates; naive datetimes are
taken as UTC, like the SQL connector does. A basis that is not a date or datetime from
`EARLIEST_BASIS` on is unknown and never expires. The tenant column's kind (whole number,
text or UUID) is the kind of the values it holds, and a tenant value is converted to it
exactly, as the SQL connector converts to the column's type.
Which rows a target selects is in `connectors.memoryrows` (the base class `MemoryRows`);
this module holds the tables' lifetime, the schema checks and the changes.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence

from connectors.anonymise import mask_value
from connectors.base import (
    AmbiguousCommit,
    Applied,
    Backlog,
    Change,
    ColumnMask,
    Connector,
    ConnectorError,
    DateQuality,
    Dependent,
    ForeignKeyRef,
    Guard,
    Key,
    Prepare,
    Problem,
    RelatedRows,
    SchemaError,
    Table,
    TableSchema,
    Target,
)
from connectors.memoryrows import MemoryRows, Row, _done, _key, _known, _same_text
from connectors.tenantlinks import reference_problems


class MemoryConnector(MemoryRows, Connector):
    """Tables held in memory. `fail_next` makes the next call raise (fault injection)."""

    def __init__(self, tables: Mapping[str, list[Row]], *, pepper: bytes = b"") -> None:
        self.tables: dict[str, list[Row]] = {k: copy.deepcopy(v) for k, v in tables.items()}
        self._pepper = pepper
        self.is_open = False
        self.fail_next: ConnectorError | None = None
        # Fault injection: the next apply commits, then its reply is "lost".
        self.lose_commit_reply = False

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
                values = [r[column] for r in rows if r.get(column) is not None]
                if values and not any(isinstance(v, dt.date) for v in values):
                    message = "a time basis must be a DATE or TIMESTAMP column"
                    problems.append(Problem(spec.name, column, message))
        for spec in tables:
            problems.extend(reference_problems(spec))
        return problems

    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """Tables in memory have no foreign keys."""
        self._maybe_fail()
        return []

    def table_schema(self, table: str) -> TableSchema | None:
        """Tables in memory declare no types or constraints: nothing to check masks against."""
        self._maybe_fail()
        if table not in self.tables:
            raise SchemaError(f"table {table} does not exist")
        return None

    def date_quality(self, table: str, column: str) -> DateQuality:
        self._maybe_fail()
        values = [r.get(column) for r in self.tables[table]]
        return DateQuality(sum(v is not None and not _known(v) for v in values))

    def backlog(self, target: Target) -> Backlog:
        self._maybe_fail()
        rows = self._expired(target)
        basis = target.basis
        oldest = None
        if basis is not None and rows:
            name, column = target.table.name, target.table.tenant_column
            tenant = self._tenant(name, target) if column else None
            oldest = min(self._basis(r, basis, tenant, column, target.gone) for r in rows)
        return Backlog(len(rows), oldest)

    def preview(self, target: Target, change: Change) -> dict[str, int]:
        """What `apply` of every expired key would count, on a copy of the tables."""
        self._maybe_fail()
        saved = copy.deepcopy(self.tables)
        try:
            keys = {_key(r, target.table.key) for r in self._expired(target)}
            return dict(self._apply(target, change, keys, None)) if keys else {}
        finally:
            self.tables = saved

    def count_rows(self, target: Target) -> int:
        self._maybe_fail()
        name, column = target.table.name, target.table.tenant_column
        if column is None:
            return len(self.tables[name])
        tenant = self._tenant(name, target)
        return sum(1 for r in self.tables[name] if self._same_tenant(r, column, tenant))

    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        self._maybe_fail()
        keys = sorted(_key(r, target.table.key) for r in self._expired(target))
        if after is not None:
            keys = [k for k in keys if k > after]
        return keys[:limit]

    def apply(
        self,
        target: Target,
        change: Change,
        keys: Sequence[Key],
        *,
        guard: Guard | None = None,
        prepare: Prepare | None = None,
    ) -> Applied:
        self._maybe_fail()
        snapshot = copy.deepcopy(self.tables)  # one transaction: all or nothing
        try:
            applied = self._apply(target, change, set(keys), guard)
            if applied.changed_keys and prepare is not None:
                prepare(applied)
        except Exception:
            self.tables = snapshot
            raise
        if applied.changed_keys and self.lose_commit_reply:
            self.lose_commit_reply = False
            raise AmbiguousCommit("the reply to COMMIT was lost (fault injection)", applied)
        return applied

    def _apply(
        self, target: Target, change: Change, wanted: set[Key], guard: Guard | None
    ) -> Applied:
        spec = target.table
        rows = [r for r in self._expired(target) if _key(r, spec.key) in wanted]
        locked = [_key(r, spec.key) for r in rows]
        held = set(guard(locked)) if guard is not None and locked else set()
        rows = [r for r in rows if _key(r, spec.key) not in held]
        kept = tuple(sorted(held, key=repr))
        counts: dict[str, int] = {}
        if change is Change.ANONYMISE:
            changed = self._anonymise(rows, target.masks, spec.key)
            counts[spec.name] = len(changed)
            parents = [r for r in rows if _key(r, spec.key) in set(changed)]
            for rel in target.related:
                counts[rel.table] = self._related(rel, parents, target)
            return Applied(counts, changed, kept)
        if change is Change.DELETE:
            for dep in spec.dependents:
                self._delete_dependent(dep, rows, target, counts)
        gone = {id(r) for r in rows}
        self.tables[spec.name] = [r for r in self.tables[spec.name] if id(r) not in gone]
        counts[spec.name] = counts.get(spec.name, 0) + len(rows)
        return Applied(counts, [_key(r, spec.key) for r in rows], kept)

    def delete_expired(
        self, target: Target, limit: int, *, prepare: Prepare | None = None
    ) -> Applied:
        self._maybe_fail()
        name = target.table.name
        snapshot = copy.deepcopy(self.tables)
        rows = self._expired(target)[:limit]
        gone = {id(r) for r in rows}
        self.tables[name] = [r for r in self.tables[name] if id(r) not in gone]
        applied = Applied({name: len(rows)}, [tuple(r.values()) for r in rows])
        try:
            if rows and prepare is not None:
                prepare(applied)
        except Exception:
            self.tables = snapshot
            raise
        return applied

    def find_key(self, target: Target, parts: Sequence[str]) -> Key | None:
        self._maybe_fail()
        spec = target.table
        if len(parts) != len(spec.key):
            raise SchemaError(f"the key of {spec.name} has {len(spec.key)} part(s)")
        column = spec.tenant_column
        tenant = self._tenant(spec.name, target) if column else None
        for row in self.tables[spec.name]:
            if column and not self._same_tenant(row, column, tenant):
                continue
            key = _key(row, spec.key)
            if all(_same_text(v, p) for v, p in zip(key, parts, strict=True)):
                return key
        return None

    def remaining(self, target: Target, change: Change, keys: Sequence[Key]) -> set[Key]:
        self._maybe_fail()
        if not target.table.key:
            present = {tuple(r.values()) for r in self.tables[target.table.name]}
            return {k for k in keys if k in present}
        name, column, wanted = target.table.name, target.table.tenant_column, set(keys)
        tenant = self._tenant(name, target) if column else None
        found = set()
        for row in self.tables[name]:
            key = _key(row, target.table.key)
            if key not in wanted or (column and not self._same_tenant(row, column, tenant)):
                continue
            masked = change is Change.ANONYMISE and target.masks
            if masked and all(_done(m, row.get(m.column)) for m in target.masks):
                continue
            found.add(key)
        return found

    def scan_keys(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        self._maybe_fail()
        if not target.table.key:
            return (
                []
                if after is not None
                else [tuple(r.values()) for r in self.tables[target.table.name]]
            )
        name, column = target.table.name, target.table.tenant_column
        tenant = self._tenant(name, target) if column else None
        keys = sorted(
            _key(r, target.table.key)
            for r in self.tables[name]
            if column is None or self._same_tenant(r, column, tenant)
        )
        return [k for k in keys if after is None or k > after][:limit]

    def _related(self, rel: RelatedRows, parents: list[Row], target: Target) -> int:
        """Delete or mask the rows of a related table that point at the anonymised rows."""
        refs = {tuple(p[pc] for _, pc in rel.references) for p in parents}
        rows = [r for r in self.tables[rel.table] if tuple(r[c] for c, _ in rel.references) in refs]
        column = target.table.tenant_column
        if column is not None and any(column in r for r in self.tables[rel.table]):
            tenant = self._tenant(rel.table, target)
            rows = [r for r in rows if self._same_tenant(r, column, tenant)]
        if rel.change is Change.DELETE:
            gone = {id(r) for r in rows}
            self.tables[rel.table] = [r for r in self.tables[rel.table] if id(r) not in gone]
            return len(rows)
        pending = [r for r in rows if not all(_done(m, r.get(m.column)) for m in rel.masks)]
        self._anonymise(pending, rel.masks, ())
        return len(pending)

    def _delete_dependent(
        self, dep: Dependent, parents: list[Row], target: Target, counts: dict[str, int]
    ) -> None:
        refs = {tuple(p[pc] for _, pc in dep.references) for p in parents}
        rows = [r for r in self.tables[dep.table] if tuple(r[c] for c, _ in dep.references) in refs]
        column = target.table.tenant_column
        if column is not None and any(column in r for r in self.tables[dep.table]):
            tenant = self._tenant(dep.table, target)
            rows = [r for r in rows if self._same_tenant(r, column, tenant)]
        for child in dep.dependents:
            self._delete_dependent(child, rows, target, counts)
        gone = {id(r) for r in rows}
        self.tables[dep.table] = [r for r in self.tables[dep.table] if id(r) not in gone]
        counts[dep.table] = counts.get(dep.table, 0) + len(rows)

    def _anonymise(
        self, rows: list[Row], masks: Sequence[ColumnMask], key: Sequence[str]
    ) -> list[Key]:
        changed: list[Key] = []
        for row in rows:
            touched = False
            for mask in masks:
                new = mask_value(mask, row.get(mask.column), self._pepper)
                if new != row.get(mask.column):
                    row[mask.column] = new
                    touched = True
            if touched:
                changed.append(_key(row, key))
        return changed
