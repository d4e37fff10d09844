"""The generic SQL connector: SQLAlchemy Core over reflected tables, driven by a mapping.

Identifiers come from reflection, never from strings pasted into SQL. Works on PostgreSQL
(psycopg 3), MariaDB/MySQL (pymysql) and SQLite. How tenant values are compared lives in
`connectors.tenancy`, how odd time bases are read in `connectors.dates`, and how each session
is pinned (UTC, strict SQL mode, timeouts) in `connectors.session`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors import dates
from connectors.anonymise import done_clause, mask_value
from connectors.base import (
    Backlog,
    Change,
    Connector,
    ConnectorError,
    DateQuality,
    Dependent,
    Key,
    Problem,
    SchemaError,
    Table,
    Target,
    Timeouts,
)
from connectors.errors import wrap_errors
from connectors.masking import safe_url
from connectors.session import pin_sessions
from connectors.sqlverify import verify_table, verify_tenancy
from connectors.tenancy import tenant_clause

# Seconds to wait for a PostgreSQL server to accept a connection, unless the URL says.
CONNECT_TIMEOUT_SECONDS = 10


class SqlConnector(Connector):
    """One product database, reached through a SQLAlchemy URL.

    `timeouts` bound every statement of every session (see `Timeouts`); the defaults
    are the worker's. Extra keyword arguments go to `sqlalchemy.create_engine`.
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        pepper: bytes,
        timeouts: Timeouts | None = None,
        **engine_options: Any,
    ) -> None:
        try:
            self._url = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            # `from None`: the parser's message may repeat a part of the URL.
            raise ConnectorError(
                "the database URL is not valid; expected e.g. "
                "postgresql+psycopg://user:password@host:5432/db or "
                "mysql+pymysql://user:password@host:3306/db"
            ) from None
        self._pepper = pepper
        self._timeouts = timeouts or Timeouts()
        self._engine_options = engine_options
        self._engine: Engine | None = None
        self._metadata = sa.MetaData()

    def __repr__(self) -> str:
        return f"SqlConnector({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        """The URL fit to print: passwords and secret-named query options masked."""
        return safe_url(self._url)

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    def _wrap(self, what: str) -> AbstractContextManager[None]:
        return wrap_errors(what, self._timeouts)

    # --- lifetime --------------------------------------------------------------------

    def open(self) -> None:
        if self._engine is not None:
            return
        options = dict(self._engine_options)
        if (
            self._url.get_backend_name() == "postgresql"
            and "connect_timeout" not in self._url.query
        ):
            options.setdefault("connect_args", {}).setdefault(
                "connect_timeout", CONNECT_TIMEOUT_SECONDS
            )
        with self._wrap(f"cannot open {self.safe_url}"):
            engine = sa.create_engine(self._url, pool_pre_ping=True, **options)
            pin_sessions(engine, self._timeouts)
            self._engine = engine
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

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        with self._wrap(f"cannot reach {self.safe_url}"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- schema ----------------------------------------------------------------------

    def _table(self, name: str) -> sa.Table:
        found = self._metadata.tables.get(name)
        if found is not None:
            return found
        with self._wrap(f"cannot read the schema of table {name}"):
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
        with self._wrap(f"cannot inspect the schema of {', '.join(sorted(set(names)))}"):
            existing = set(sa.inspect(self.engine).get_table_names())
            wanted = sorted({n for n in names if n in existing} - set(self._metadata.tables))
            if wanted:  # one bulk reflection instead of several queries per table
                self._metadata.reflect(bind=self.engine, only=wanted)
        problems: list[Problem] = []
        for spec in tables:
            problems.extend(verify_table(spec, existing, self._table))
            problems.extend(verify_tenancy(spec, existing, self._table))
        return problems

    # --- selection -------------------------------------------------------------------

    def _key_cols(self, table: sa.Table, target: Target) -> list[sa.Column[Any]]:
        return [table.c[name] for name in target.table.key]

    def _tenant(self, table: sa.Table, target: Target) -> ColumnElement[bool] | None:
        """The exact tenant filter of `table`, or None when it has no tenant column."""
        column = target.table.tenant_column
        if column is None or column not in table.c:
            return None
        if target.tenant is None:
            raise ConnectorError("a shared table needs the customer's tenant value")
        return tenant_clause(table.c[column], target.tenant, self.dialect)

    def _expired(self, table: sa.Table, target: Target) -> ColumnElement[bool]:
        """Tenant, cutoff, holds and (for anonymise) not yet done."""
        clauses: list[ColumnElement[bool]] = []
        if target.table.tenant_column is not None:
            if target.table.tenant_column not in table.c:
                raise SchemaError(
                    f"table {table.name} has no tenant column {target.table.tenant_column}"
                )
            tenant = self._tenant(table, target)
            if tenant is not None:
                clauses.append(tenant)
        if target.basis is None:
            clauses.append(sa.true() if target.everything else sa.false())
        else:
            clauses.append(dates.expired(table.c[target.basis], target, self.dialect))
        if target.masks:
            done = [done_clause(m, table.c[m.column], self.dialect) for m in target.masks]
            clauses.append(sa.not_(sa.and_(*done)))
        if target.held:
            clauses.append(sa.not_(_key_in(self._key_cols(table, target), target.held)))
        return sa.and_(*clauses)

    def backlog(self, target: Target) -> Backlog:
        table = self._table(target.table.name)
        basis = table.c[target.basis] if target.basis else None
        oldest = dates.oldest(basis, self.dialect) if basis is not None else sa.null()
        query = (
            sa.select(sa.func.count(), oldest)
            .select_from(table)
            .where(self._expired(table, target))
        )
        with (
            self._wrap(f"cannot count expired rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            count, first = conn.execute(query).one()
        found = dates.read_oldest(first, basis) if basis is not None else None
        return Backlog(int(count), found)

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

    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        table = self._table(target.table.name)
        keys = self._key_cols(table, target)
        query = sa.select(*keys).where(self._expired(table, target))
        if after is not None:
            query = query.where(_key_after(keys, after))
        query = query.order_by(*keys).limit(limit)
        with (
            self._wrap(f"cannot select expired rows of {table.name}"),
            self.engine.connect() as conn,
        ):
            return [tuple(row) for row in conn.execute(query)]

    # --- changes ---------------------------------------------------------------------

    def apply(self, target: Target, change: Change, keys: Sequence[Key]) -> Mapping[str, int]:
        if not keys:
            return {}
        table = self._table(target.table.name)
        where = sa.and_(_key_in(self._key_cols(table, target), keys), self._expired(table, target))
        with self._wrap(f"cannot {change} rows of {table.name}"), self.engine.begin() as conn:
            if change is Change.ANONYMISE:
                return self._anonymise(conn, table, target, where)
            counts: dict[str, int] = {}
            if change is Change.DELETE:
                parent = sa.select(table).where(where).subquery()
                for dep in target.table.dependents:
                    self._delete_dependent(conn, dep, parent, target, counts)
            result = conn.execute(sa.delete(table).where(where))
            counts[table.name] = counts.get(table.name, 0) + result.rowcount
            return counts

    def _delete_dependent(
        self,
        conn: Connection,
        dep: Dependent,
        parent: sa.Subquery,
        target: Target,
        counts: dict[str, int],
    ) -> None:
        """Delete the rows of `dep` that point at `parent` rows, within the tenant.

        A dependent table with the tenant column is filtered by it too, so that rows of
        another tenant that share the referenced values are never reached.
        """
        table = self._table(dep.table)
        own = [table.c[c] for c, _ in dep.references]
        ref = [parent.c[p] for _, p in dep.references]
        if len(own) == 1:
            where: ColumnElement[bool] = own[0].in_(sa.select(ref[0]))
        else:
            where = sa.tuple_(*own).in_(sa.select(*ref))
        tenant = self._tenant(table, target)
        if tenant is not None:
            where = sa.and_(where, tenant)
        if dep.dependents:
            # Grandchildren first, while the rows they point at still exist.
            sub = sa.select(table).where(where).subquery()
            for child in dep.dependents:
                self._delete_dependent(conn, child, sub, target, counts)
        result = conn.execute(sa.delete(table).where(where))
        counts[dep.table] = counts.get(dep.table, 0) + result.rowcount

    def _anonymise(
        self, conn: Connection, table: sa.Table, target: Target, where: ColumnElement[bool]
    ) -> dict[str, int]:
        keys = [table.c[k] for k in target.table.key]
        masked = [table.c[m.column] for m in target.masks]
        # Masked values are read raw and converted here: a date column may hold values the
        # driver's or SQLAlchemy's date conversion cannot read (see connectors.dates).
        raw = [sa.type_coerce(c, sa.types.NullType()) for c in masked]
        rows = conn.execute(sa.select(*keys, *raw).where(where).with_for_update()).all()
        updates: list[dict[str, Any]] = []
        n_keys = len(keys)
        for row in rows:
            new: dict[str, Any] = {}
            for mask, column, stored in zip(target.masks, masked, row[n_keys:], strict=True):
                value = _as_python(stored, column)
                replaced = mask_value(mask, value, self._pepper)
                if replaced != value:
                    typed = isinstance(replaced, dt.date) or not _is_date(column)
                    new[f"{'v' if typed else 'r'}_{mask.column}"] = replaced
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
        tenant = self._tenant(table, target)
        for shape, items in by_shape.items():
            values: dict[str, Any] = {}
            for name in shape:
                if name.startswith("v_"):  # bound through the column's type
                    values[name[2:]] = sa.bindparam(name, type_=table.c[name[2:]].type)
                elif name.startswith("r_"):  # bound as it is: text or NULL in a date column
                    values[name[2:]] = sa.bindparam(name, type_=sa.types.NullType())
            stmt = (
                sa.update(table)
                .where(*(k == sa.bindparam(f"k_{k.name}") for k in keys))
                .values(values)
            )
            if tenant is not None:
                stmt = stmt.where(tenant)
            conn.execute(stmt, items)
            changed += len(items)
        return {table.name: changed}


def _is_date(column: sa.ColumnElement[Any]) -> bool:
    return isinstance(column.type, sa.Date | sa.DateTime)


def _as_python(value: Any, column: sa.ColumnElement[Any]) -> Any:
    """A raw value of a date column as a date or datetime when it reads as one, else as is."""
    if not isinstance(value, str) or not _is_date(column):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed if isinstance(column.type, sa.DateTime) else parsed.date()


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
