"""Which rows a `Target` selects in SQL, and the read-only statements over them.

The predicates every statement of the SQL connector shares (the exact tenant filter, the
time basis past its cutoff, the other rules' cutoffs, row conditions, holds, anonymise's
"not yet done") and the statements that only read: backlog counts, date quality,
row counts, the paged selection of expired keys and its EXPLAIN, key scans and key look-ups,
and which keys remain (read locked: `connectors.sqlremaining`). `SqlReads` is a base of
`connectors.sql.SqlConnector`, which supplies the engine, the reflected tables and the error
wrapping; the changes (`apply`, `delete_expired`) and the connector's lifetime stay there.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors import dates, sqlbasis, sqlbind, sqlcount, sqlexplain
from connectors.anonymise import done_clause
from connectors.base import (
    Aggregated,
    Backlog,
    BasisSpec,
    Change,
    Connector,
    ConnectorError,
    DateQuality,
    ForeignKeyRef,
    Key,
    SchemaError,
    Target,
)
from connectors.session import locking, reading
from connectors.sqladvice import judge
from connectors.sqlbind import Values
from connectors.sqlchange import key_in
from connectors.sqlexplain import Explained
from connectors.sqlremaining import keys_remaining, rows_remaining
from connectors.tenancy import tenant_clause

Grouped = tuple[sa.Select[Any], list[ColumnElement[Any] | None], sqlbind.Slots]
"""A grouped backlog count (connectors.sqlbind): the statement, each part's basis
expression, the per-customer parameters."""

GROUPED_PER_SCHEMA = 64
"""Grouped statements kept per reflected schema (shapes: about one per product mapping and
set of rules in force)."""


def grouped_cache(table: sa.Table) -> sqlbind.Cache[Grouped]:
    """The grouped statements built on `table`'s reflection, kept in its MetaData's `info`:
    they live as long as that reflection, and a new reflection (drift) starts empty."""
    found: sqlbind.Cache[Grouped] = table.metadata.info.setdefault(
        "retention_worker.grouped", sqlbind.Cache(GROUPED_PER_SCHEMA)
    )
    return found


class SqlReads(Connector):
    """The selection predicates and read-only statements of the SQL connector.

    Subclasses supply `engine`, `dialect`, `_table` (a reflected table by name, raising
    `SchemaError` when it does not exist), `foreign_keys_to`, `every_foreign_key_to` and
    `_wrap` (turns driver errors into `ConnectorError`s under the connector's `Timeouts`).
    """

    @property
    @abc.abstractmethod
    def engine(self) -> Engine:
        """The open engine; `ConnectorError` when the connector is not open."""

    @property
    @abc.abstractmethod
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: "postgresql", "mysql", "mariadb" or "sqlite"."""

    @abc.abstractmethod
    def _table(self, name: str) -> sa.Table:
        """The reflected table `name`; `SchemaError` when it does not exist."""

    @abc.abstractmethod
    def every_foreign_key_to(self, table: str) -> list[ForeignKeyRef]:
        """Every foreign key pointing at `table`, its own to itself included."""

    @abc.abstractmethod
    def _wrap(self, what: str) -> AbstractContextManager[None]:
        """A context that reraises driver errors as `ConnectorError`s saying `what` failed."""

    def _key_cols(self, table: sa.FromClause, target: Target) -> list[Any]:
        return [table.c[name] for name in target.table.key]

    def _tenant(
        self, table: sa.FromClause, target: Target, values: Values | None = None
    ) -> ColumnElement[bool] | None:
        """The exact tenant filter of `table` (or an alias of one), or None when it has no
        tenant column. With `values`, the tenant is a per-customer parameter (sqlbind)."""
        column = target.table.tenant_column
        if column is None or column not in table.c:
            return None
        if target.tenant is None:
            raise ConnectorError("a shared table needs the customer's tenant value")
        bind = values.tenant() if values is not None else None
        return tenant_clause(table.c[column], target.tenant, self.dialect, bind)

    def _scope(
        self, related: sa.FromClause, target: Target, values: Values | None = None
    ) -> ColumnElement[bool] | None:
        """The rows of a related table (an alias) that a time basis reads: the tenant's, and
        in a plan not those an earlier delete rule of the pair would delete (`Target.gone`;
        never with `values`, see connectors.sqlbind.shape)."""
        clauses = [c for c in [self._tenant(related, target, values)] if c is not None]
        original = getattr(related, "element", related)
        for earlier in target.gone:
            if earlier.table.name == getattr(original, "name", None):
                # CASE, not NOT: a row the earlier rule cannot judge (a NULL date) makes its
                # clause NULL, and NOT NULL would drop that row, which the run keeps.
                clauses.append(sa.case((self._expired(related, earlier), 1), else_=0) == 0)
        return sa.and_(*clauses) if clauses else None

    def _basis(
        self,
        spec: BasisSpec,
        table: sa.FromClause,
        target: Target,
        values: Values | None = None,
        also: int | None = None,
    ) -> ColumnElement[bool]:
        """SQL true for a row past `target`'s cutoff on the basis `spec`. With `values`, the
        tenant and the cutoff (the target's own, or that of `target.also[also]` in the root
        target) are per-customer parameters (connectors.sqlbind)."""
        return sqlbasis.expired(
            spec,
            table,
            target,
            self.dialect,
            self._table,
            lambda t: self._scope(t, target, values),
            values.cutoff(also) if values is not None else None,
        )

    def _expired(
        self, table: sa.FromClause, target: Target, values: Values | None = None
    ) -> ColumnElement[bool]:
        """Tenant, cutoff, holds and (for anonymise) not yet done; with `values`, the tenant
        and the cutoffs as per-customer parameters (connectors.sqlbind)."""
        clauses: list[ColumnElement[bool]] = []
        if target.table.tenant_column is not None:
            if target.table.tenant_column not in table.c:
                raise SchemaError(
                    f"table {target.table.name} has no tenant column {target.table.tenant_column}"
                )
            tenant = self._tenant(table, target, values)
            if tenant is not None:
                clauses.append(tenant)
        if target.basis is None:
            clauses.append(sa.true() if target.everything else sa.false())
        else:
            clauses.append(self._basis(target.basis, table, target, values))
        for i, other in enumerate(target.also):  # the longest retention wins: past every one
            if other.column is None:
                clauses.append(sa.true() if other.everything else sa.false())
            else:
                past = replace(
                    target, cutoff_date=other.cutoff_date, cutoff_instant=other.cutoff_instant
                )
                clauses.append(self._basis(other.column, table, past, values, i))
        clauses += [sqlbasis.condition(c, table, self.dialect) for c in target.where]
        if target.masks:
            done = [done_clause(m, table.c[m.column], self.dialect) for m in target.masks]
            clauses.append(sa.not_(sa.and_(*done)))
        if target.held:
            clauses.append(
                sa.not_(key_in(self._key_cols(table, target), target.held, self.dialect))
            )
        return sa.and_(*clauses)

    def backlog(self, target: Target) -> Backlog:
        query, basis = self._backlog_query(target)
        with (
            self._wrap(f"cannot count expired rows of {target.table.name}"),
            reading(self.engine) as conn,
        ):
            row = conn.execute(query).one()
        return sqlcount.read(row[0], row[1], basis)

    def backlogs(self, targets: Sequence[Target]) -> list[Backlog]:
        """`backlog` of each target, in order, in one statement (connectors.sqlcount), built
        once per shape of the targets and reused with each customer's values
        (connectors.sqlbind)."""
        if len(targets) < 2:
            return [self.backlog(t) for t in targets]
        statement, bases, params = self._grouped(targets)
        tables = ", ".join(sorted({t.table.name for t in targets}))
        with self._wrap(f"cannot count expired rows of {tables}"), reading(self.engine) as conn:
            row = conn.execute(statement, params).one()
        return sqlcount.backlogs_of(row, bases)

    def _grouped(
        self, targets: Sequence[Target]
    ) -> tuple[sa.Select[Any], list[ColumnElement[Any] | None], dict[str, Any]]:
        """The grouped count of `targets`, the basis each part's oldest value reads, and the
        parameters of these targets: from the cache of the first table's reflection when a
        statement of their shape on these very tables was built before (connectors.sqlbind),
        else built now (and kept)."""
        key = self._shape_key(targets)
        cache = grouped_cache(self._table(targets[0].table.name))
        found = cache.get(key) if key is not None else None
        if found is None:
            slots = sqlbind.Slots()
            parts = [self._backlog_query(t, slots.part(i, t)) for i, t in enumerate(targets)]
            found = (sqlcount.statement(parts), [basis for _, basis in parts], slots)
            if key is not None:
                cache.put(key, found)
        statement, bases, slots = found
        return statement, bases, slots.params(targets)

    def _shape_key(self, targets: Sequence[Target]) -> Hashable | None:
        """What a grouped statement of `targets` depends on besides each customer's values:
        the dialect, each target's shape, and the reflected tables it reads (by identity: a
        new reflection, after drift, gives new ones). None when a target has no shape."""
        shapes = [sqlbind.shape(t) for t in targets]
        if any(s is None for s in shapes):
            return None
        names: list[str] = []
        for target in targets:
            names.append(target.table.name)
            specs = [target.basis, *(b.column for b in target.also)]
            names += [s.table for s in specs if isinstance(s, Aggregated)]
        tables = tuple(self._table(n) for n in dict.fromkeys(names))
        return (self.dialect, tuple(shapes), tables)

    def _backlog_query(self, target: Target, values: Values | None = None) -> sqlcount.Part:
        table = self._table(target.table.name)
        oldest: ColumnElement[Any] = sa.null()
        basis: ColumnElement[Any] | None = None
        if target.basis is not None:
            oldest, basis = sqlbasis.oldest(
                target.basis,
                table,
                self.dialect,
                self._table,
                lambda t: self._scope(t, target, values),
            )
        query = (
            sa.select(sa.func.count().label(sqlcount.COUNT), oldest.label(sqlcount.OLDEST))
            .select_from(table)
            .where(self._expired(table, target, values))
        )
        return query, basis

    def date_quality(self, table: str, column: str) -> DateQuality:
        spec = self._table(table)
        if column not in spec.c:
            raise SchemaError(f"table {table} has no column {column}")
        basis = spec.c[column]
        query = sa.select(  # SUM(CASE …): MariaDB has no COUNT(*) FILTER (WHERE …)
            sa.func.sum(sa.case((dates.unknown(basis, self.dialect), 1), else_=0)),
            sa.func.sum(sa.case((dates.converted(basis, self.dialect), 1), else_=0)),
        ).select_from(spec)
        with self._wrap(f"cannot read the time basis {table}.{column}"), self.engine.connect() as c:
            unknown, converted = c.execute(query).one()
        return DateQuality(int(unknown or 0), int(converted or 0))

    def count_rows(self, target: Target) -> int:
        table = self._table(target.table.name)
        query = sa.select(sa.func.count()).select_from(table)
        tenant = self._tenant(table, target)
        if tenant is not None:
            query = query.where(tenant)
        with (
            self._wrap(f"cannot count the rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            return int(conn.execute(query).scalar_one())

    def _selection(self, target: Target, after: Key | None, limit: int) -> sa.Select[Any]:
        table = self._table(target.table.name)
        keys = self._key_cols(table, target)
        query = sa.select(*keys).where(self._expired(table, target))
        if after is not None:
            query = query.where(_key_after(keys, after))
        return query.order_by(*keys).limit(limit)

    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        table = self._table(target.table.name)
        query = self._selection(target, after, limit)
        with (
            self._wrap(f"cannot select expired rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            return [tuple(row) for row in conn.execute(query)]

    def explain(self, target: Target, limit: int) -> Explained | None:
        table = self._table(target.table.name)
        query = self._selection(target, None, limit) if target.table.key else None
        if query is None:  # a table without a key: the keyless delete's selection
            query = sa.select(*table.c).where(self._expired(table, target)).limit(limit)
        with (
            self._wrap(f"cannot explain the selection of {table.name}"),
            self.engine.connect() as conn,
        ):
            lines, steps = sqlexplain.explain(conn, query, table)
            rows = sqlexplain.estimated_rows(conn, table)
        tenant = target.table.tenant_column
        verdict = judge(table, steps, tenant, target.basis, self.engine.dialect)
        return Explained(tuple(lines), rows, verdict)

    def remaining(self, target: Target, change: Change, keys: Sequence[Key]) -> set[Key]:
        """See `Connector.remaining`: read under the lock a batch takes, so that a batch
        still in flight is waited for (connectors/sqlremaining.py)."""
        if not keys:
            return set()
        table = self._table(target.table.name)
        tenant = self._tenant(table, target)
        with self._wrap(f"cannot read rows of {table.name}"), locking(self.engine) as conn:
            if not target.table.key:
                return rows_remaining(conn, table, keys, tenant)
            not_done = None
            if change is Change.ANONYMISE and target.masks:
                done = [done_clause(m, table.c[m.column], self.dialect) for m in target.masks]
                not_done = sa.not_(sa.and_(*done))
            return keys_remaining(conn, self._key_cols(table, target), keys, tenant, not_done)

    def scan_keys(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        table = self._table(target.table.name)
        if not target.table.key:  # rows' values, all of them: a table without a key
            if after is not None:
                return []
            key_cols = list(table.c)
        else:
            key_cols = self._key_cols(table, target)
        query = sa.select(*key_cols)
        tenant = self._tenant(table, target)
        if tenant is not None:
            query = query.where(tenant)
        if after is not None:
            query = query.where(_key_after(key_cols, after))
        if target.table.key:
            query = query.order_by(*key_cols).limit(limit)
        with self._wrap(f"cannot read the keys of {table.name}"), self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def find_key(self, target: Target, parts: Sequence[str]) -> Key | None:
        table = self._table(target.table.name)
        key_cols = self._key_cols(table, target)
        if len(parts) != len(key_cols):
            raise SchemaError(
                f"the key of {table.name} has {len(key_cols)} part(s) "
                f"({', '.join(c.name for c in key_cols)}); give one value for each"
            )
        values = [
            sqlbasis.key_candidates(text, column)
            for text, column in zip(parts, key_cols, strict=True)
        ]
        query = sa.select(*key_cols).where(
            *(c.in_(v) for c, v in zip(key_cols, values, strict=True))
        )
        tenant = self._tenant(table, target)
        if tenant is not None:
            query = query.where(tenant)
        with self._wrap(f"cannot read rows of {table.name}"), self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return tuple(row) if row is not None else None


def _key_after(columns: Sequence[sa.Column[Any]], after: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        first: ColumnElement[bool] = columns[0] > after[0]
        return first
    return sa.tuple_(*columns) > sa.tuple_(*(sa.literal(v) for v in after))
