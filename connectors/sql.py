"""The generic SQL connector: SQLAlchemy Core over reflected tables, driven by a mapping.

Identifiers come from reflection, never from strings pasted into SQL. Works on PostgreSQL
(psycopg 3), MariaDB/MySQL (pymysql) and SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors.anonymise import done_clause, mask_value
from connectors.base import (
    Backlog,
    Change,
    Connector,
    ConnectorError,
    Dependent,
    Key,
    Problem,
    SchemaError,
    Table,
    Target,
)
from connectors.errors import wrap_errors


class SqlConnector(Connector):
    """One product database, reached through a SQLAlchemy URL."""

    def __init__(self, url: str | sa.URL, *, pepper: bytes, **engine_options: Any) -> None:
        self._url = sa.make_url(url)
        self._pepper = pepper
        self._engine_options = engine_options
        self._engine: Engine | None = None
        self._metadata = sa.MetaData()

    def __repr__(self) -> str:
        return f"SqlConnector({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    # --- lifetime --------------------------------------------------------------------

    def open(self) -> None:
        if self._engine is not None:
            return
        with wrap_errors(f"cannot open {self.safe_url}"):
            self._engine = sa.create_engine(self._url, pool_pre_ping=True, **self._engine_options)
        try:
            self.ping()
        except ConnectorError:
            self.close()  # else the next open() would return early, as if connected
            raise

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._metadata = sa.MetaData()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ConnectorError("the connector is not open; call open() first")
        return self._engine

    def ping(self) -> None:
        with wrap_errors(f"cannot reach {self.safe_url}"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- schema ----------------------------------------------------------------------

    def _table(self, name: str) -> sa.Table:
        found = self._metadata.tables.get(name)
        if found is not None:
            return found
        with wrap_errors(f"cannot read the schema of table {name}"):
            try:
                return sa.Table(name, self._metadata, autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise SchemaError(f"table {name} does not exist") from None

    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        names: list[str] = []
        pending: list[Table | Dependent] = list(tables)
        while pending:
            item = pending.pop()
            names.append(item.name if isinstance(item, Table) else item.table)
            pending.extend(item.dependents)
        with wrap_errors("cannot inspect the schema"):
            existing = set(sa.inspect(self.engine).get_table_names())
            wanted = sorted({n for n in names if n in existing} - set(self._metadata.tables))
            if wanted:  # one bulk reflection instead of several queries per table
                self._metadata.reflect(bind=self.engine, only=wanted)
        problems: list[Problem] = []
        for spec in tables:
            problems.extend(self._verify_table(spec, existing))
        return problems

    def _verify_table(self, spec: Table, existing: set[str]) -> list[Problem]:
        if spec.name not in existing:
            return [Problem(spec.name, None, "table is missing from the database")]
        table = self._table(spec.name)
        problems: list[Problem] = []
        wanted = [*spec.key, *spec.columns, *spec.dates]
        if spec.tenant_column:
            wanted.append(spec.tenant_column)
        for column in dict.fromkeys(wanted):
            if column not in table.c:
                problems.append(Problem(spec.name, column, "column is missing from the table"))
        for column in spec.dates:
            if column in table.c and not isinstance(table.c[column].type, sa.Date | sa.DateTime):
                problems.append(
                    Problem(
                        spec.name,
                        column,
                        f"a time basis must be a DATE or TIMESTAMP column, not "
                        f"{table.c[column].type}",
                    )
                )
        indexed = {next(iter(ix.columns)).name for ix in table.indexes if ix.columns}
        indexed.update(table.primary_key.columns.keys()[:1])
        for column in spec.dates:
            if column in table.c and column not in indexed:
                problems.append(
                    Problem(
                        spec.name,
                        column,
                        "no index on this time basis: selections will scan the table",
                        fatal=False,
                    )
                )
        for dep in spec.dependents:
            problems.extend(self._verify_dependent(dep, spec.name, existing))
        return problems

    def _verify_dependent(self, dep: Dependent, parent: str, existing: set[str]) -> list[Problem]:
        sub = Table(
            dep.table,
            key=(),
            columns=(*dep.columns, *(c for c, _ in dep.references)),
            dependents=dep.dependents,
        )
        problems = self._verify_table(sub, existing)
        if dep.table in existing:
            parent_table = self._table(parent)
            for _, parent_col in dep.references:
                if parent_col not in parent_table.c:
                    problems.append(
                        Problem(
                            parent,
                            parent_col,
                            f"referenced by {dep.table} but missing from the table",
                        )
                    )
        return problems

    # --- selection -------------------------------------------------------------------

    def _key_cols(self, table: sa.Table, target: Target) -> list[sa.Column[Any]]:
        return [table.c[name] for name in target.table.key]

    def _expired(self, table: sa.Table, target: Target) -> ColumnElement[bool]:
        """Tenant, cutoff, holds and (for anonymise) not yet done."""
        clauses: list[ColumnElement[bool]] = []
        if target.table.tenant_column is not None:
            if target.tenant is None:
                raise ConnectorError("a shared table needs the customer's tenant value")
            clauses.append(table.c[target.table.tenant_column] == target.tenant)
        if target.basis is None:
            clauses.append(sa.true() if target.everything else sa.false())
        else:
            column = table.c[target.basis]
            clauses.append(column < _cutoff_for(column, target))
        if target.masks:
            clauses.append(
                sa.not_(sa.and_(*(done_clause(m, table.c[m.column]) for m in target.masks)))
            )
        if target.held:
            clauses.append(sa.not_(_key_in(self._key_cols(table, target), target.held)))
        return sa.and_(*clauses)

    def backlog(self, target: Target) -> Backlog:
        table = self._table(target.table.name)
        oldest: ColumnElement[Any] = (
            sa.func.min(table.c[target.basis]) if target.basis else sa.null()
        )
        query = (
            sa.select(sa.func.count(), oldest)
            .select_from(table)
            .where(self._expired(table, target))
        )
        with (
            wrap_errors(f"cannot count expired rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            count, first = conn.execute(query).one()
        return Backlog(int(count), _as_date(first))

    def count_rows(self, target: Target) -> int:
        table = self._table(target.table.name)
        query = sa.select(sa.func.count()).select_from(table)
        if target.table.tenant_column is not None:
            query = query.where(table.c[target.table.tenant_column] == target.tenant)
        with (
            wrap_errors(f"cannot count the rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            return int(conn.execute(query).scalar_one())

    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        table = self._table(target.table.name)
        keys = self._key_cols(table, target)
        query = sa.select(*keys).where(self._expired(table, target))
        if after is not None:
            query = query.where(_key_after(keys, after))
        query = query.order_by(*keys).limit(limit)
        with (
            wrap_errors(f"cannot select expired rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            return [tuple(row) for row in conn.execute(query)]

    # --- changes ---------------------------------------------------------------------

    def apply(self, target: Target, change: Change, keys: Sequence[Key]) -> Mapping[str, int]:
        if not keys:
            return {}
        table = self._table(target.table.name)
        where = sa.and_(_key_in(self._key_cols(table, target), keys), self._expired(table, target))
        with wrap_errors(f"cannot {change} rows of {table.name}"), self.engine.begin() as conn:
            if change is Change.ANONYMISE:
                return self._anonymise(conn, table, target, where)
            counts: dict[str, int] = {}
            if change is Change.DELETE:
                parent = sa.select(table).where(where).subquery()
                for dep in target.table.dependents:
                    self._delete_dependent(conn, dep, parent, counts)
            result = conn.execute(sa.delete(table).where(where))
            counts[table.name] = counts.get(table.name, 0) + result.rowcount
            return counts

    def _delete_dependent(
        self, conn: Connection, dep: Dependent, parent: sa.Subquery, counts: dict[str, int]
    ) -> None:
        table = self._table(dep.table)
        own = [table.c[c] for c, _ in dep.references]
        ref = [parent.c[p] for _, p in dep.references]
        if len(own) == 1:
            where: ColumnElement[bool] = own[0].in_(sa.select(ref[0]))
        else:
            where = sa.tuple_(*own).in_(sa.select(*ref))
        if dep.dependents:
            # Grandchildren first, while the rows they point at still exist.
            sub = sa.select(table).where(where).subquery()
            for child in dep.dependents:
                self._delete_dependent(conn, child, sub, counts)
        result = conn.execute(sa.delete(table).where(where))
        counts[dep.table] = counts.get(dep.table, 0) + result.rowcount

    def _anonymise(
        self, conn: Connection, table: sa.Table, target: Target, where: ColumnElement[bool]
    ) -> dict[str, int]:
        keys = [table.c[k] for k in target.table.key]
        masked = [table.c[m.column] for m in target.masks]
        rows = conn.execute(sa.select(*keys, *masked).where(where).with_for_update()).all()
        updates: list[dict[str, Any]] = []
        n_keys = len(keys)
        for row in rows:
            new: dict[str, Any] = {}
            for mask, value in zip(target.masks, row[n_keys:], strict=True):
                replaced = mask_value(mask, value, self._pepper)
                if replaced != value:
                    new[f"v_{mask.column}"] = replaced
            if new:
                new.update({f"k_{k.name}": v for k, v in zip(keys, row[:n_keys], strict=True)})
                updates.append(new)
        if not updates:
            return {table.name: 0}
        # One statement per set of changed columns (executemany), keyed by primary key.
        changed = 0
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for item in updates:
            by_shape.setdefault(tuple(sorted(item)), []).append(item)
        for shape, items in by_shape.items():
            columns = [name[2:] for name in shape if name.startswith("v_")]
            stmt = (
                sa.update(table)
                .where(*(k == sa.bindparam(f"k_{k.name}") for k in keys))
                .values({c: sa.bindparam(f"v_{c}") for c in columns})
            )
            if target.table.tenant_column is not None:
                stmt = stmt.where(table.c[target.table.tenant_column] == target.tenant)
            conn.execute(stmt, items)
            changed += len(items)
        return {table.name: changed}


def _cutoff_for(column: sa.Column[Any], target: Target) -> Any:
    kind = column.type
    if isinstance(kind, sa.DateTime):
        if getattr(kind, "timezone", False):
            return target.cutoff_instant
        return target.cutoff_instant.astimezone(dt.UTC).replace(tzinfo=None)
    return target.cutoff_date


def _as_date(value: Any) -> dt.date | dt.datetime | None:
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value)  # SQLite aggregates lose the column type
    try:
        return dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
    except ValueError:
        return None


def _key_in(columns: Sequence[sa.Column[Any]], keys: Any) -> ColumnElement[bool]:
    keys = list(keys)
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.tuple_(*columns).in_(keys)


def _key_after(columns: Sequence[sa.Column[Any]], after: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        first: ColumnElement[bool] = columns[0] > after[0]
        return first
    return sa.tuple_(*columns) > sa.tuple_(*(sa.literal(v) for v in after))
