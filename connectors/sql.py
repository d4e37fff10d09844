"""The generic SQL connector: SQLAlchemy Core over reflected tables, driven by a mapping.

Identifiers come from reflection, never from strings pasted into SQL. Works on PostgreSQL
(psycopg 3), MariaDB/MySQL (pymysql) and SQLite. How tenant values are compared lives in
`connectors.tenancy`, how odd time bases are read in `connectors.dates`, and how each session
is pinned (UTC, strict SQL mode, timeouts) in `connectors.session`; how the URL is checked
and the client-side connect and read bounds in `connectors.reach`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors import dates, sqlbasis, sqlcount, sqlexplain, sqlreach
from connectors.anonymise import done_clause
from connectors.base import (
    AmbiguousCommit,
    Applied,
    Backlog,
    BasisSpec,
    Change,
    Connector,
    ConnectorError,
    DateQuality,
    Dependent,
    ForeignKeyRef,
    Guard,
    Key,
    Prepare,
    Problem,
    SchemaError,
    Table,
    TableSchema,
    Target,
    Timeouts,
)
from connectors.engines import Engines, engine_key
from connectors.errors import describe, refused_by_constraint, wrap_errors
from connectors.identity import server_identity
from connectors.masking import safe_url
from connectors.reach import checked_url, engine_options
from connectors.session import pin_sessions
from connectors.sqlchange import Batch, change_batch, key_in
from connectors.sqlexplain import Explained
from connectors.sqlschema import all_foreign_keys, foreign_keys_to, table_schema
from connectors.sqlverify import index_advice, verify_table, verify_tenancy
from connectors.tenancy import tenant_clause

# Bind parameters a statement needs besides the keys: tenant, cutoff, masks, holds.
PARAMETER_MARGIN = 1_000


class SqlConnector(Connector):
    """One product database, reached through a SQLAlchemy URL.

    `timeouts` bound every statement of every session (see `Timeouts`); the defaults
    are the worker's. Extra keyword arguments go to `sqlalchemy.create_engine`. With
    `engines`, the engine and the schema `verify` reflects are shared with every connector
    of the process on the same database (`connectors.engines`), and `close` returns the
    connections instead of disposing the engine; without, each `open` makes its own.
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        pepper: bytes,
        timeouts: Timeouts | None = None,
        engines: Engines | None = None,
        **engine_options: Any,
    ) -> None:
        self._url = checked_url(url)  # BadDatabaseUrl before any connection
        self._pepper = pepper
        self._timeouts = timeouts or Timeouts()
        self._engine_options = engine_options
        self._engines = engines
        self.engine_key = engine_key(self._url, self._timeouts, engine_options)
        self._engine: Engine | None = None
        self._metadata = sa.MetaData()
        self._own = self._metadata  # where `_table` reflects a table verify did not share
        self._shared: frozenset[str] = frozenset()  # tables `_metadata` holds for the process
        self._foreign_keys: dict[str, list[ForeignKeyRef]] | None = None  # read once per open

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
        with self._wrap(f"cannot open {self.safe_url}"):
            if self._engines is None:
                self._engine = self._create_engine()
            else:
                self._engine = self._engines.engine(self.engine_key, self._create_engine)
        try:
            self.ping()
        except ConnectorError:
            self.close()  # else the next open() would return early, as if connected
            raise

    def _create_engine(self) -> Engine:
        options = engine_options(self._url, self._timeouts, self._engine_options)
        engine = sa.create_engine(self._url, pool_pre_ping=True, **options)
        pin_sessions(engine, self._timeouts)
        return engine

    def close(self) -> None:
        if self._engine is not None:
            if self._engines is None:
                self._engine.dispose()
            self._engine = None
        self._metadata = self._own = sa.MetaData()
        self._shared = frozenset()
        self._foreign_keys = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ConnectorError("the connector is not open; call open() first")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def identity(self) -> tuple[str, ...] | None:
        with self._wrap(f"cannot ask {self.safe_url} which database it is"):
            return server_identity(self.engine)

    def ping(self) -> None:
        with self._wrap(f"cannot reach {self.safe_url}"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- schema ----------------------------------------------------------------------

    def _table(self, name: str) -> sa.Table:
        found = self._metadata.tables.get(name) if name in self._shared else None
        found = found if found is not None else self._own.tables.get(name)
        if found is not None:
            return found
        with self._wrap(f"cannot read the schema of table {name}"):
            try:
                return sa.Table(name, self._own, autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise SchemaError(f"table {name} does not exist") from None

    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        names: list[str] = []
        pending: list[Table | Dependent] = list(tables)
        while pending:
            item = pending.pop()
            names.append(item.name if isinstance(item, Table) else item.table)
            pending.extend(item.dependents)
            if isinstance(item, Table):
                names += [b.table for b in item.bases] + [r.table for r in item.related]
        with self._wrap(f"cannot inspect the schema of {', '.join(sorted(set(names)))}"):
            existing = self._reflect(names)
        problems: list[Problem] = []
        for spec in tables:
            problems.extend(verify_table(spec, existing, self._table, self.engine.dialect))
            problems.extend(verify_tenancy(spec, existing, self._table))
            problems.extend(sqlbasis.verify_spec(spec, existing, self._table, self.dialect))
        return problems

    def _reflect(self, names: Sequence[str]) -> set[str]:
        """Reflect the tables `names` that exist; returns the names of existing tables (all
        of the database's without `engines`, those of `names` with). With `engines`, the
        process's reflection is used when the catalog says the tables are unchanged."""
        if self._engines is not None:
            reflected = self._engines.reflect(self.engine_key, self.engine, names)
            self._metadata, self._own = reflected.metadata, sa.MetaData()
            self._shared = reflected.existing
            return set(reflected.existing)
        existing = set(sa.inspect(self.engine).get_table_names())
        wanted = sorted({n for n in names if n in existing} - set(self._metadata.tables))
        if wanted:  # one bulk reflection instead of several queries per table
            self._metadata.reflect(bind=self.engine, only=wanted)
        return existing

    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """See `Connector.foreign_keys_to`; the whole database's foreign keys are read once
        per `open` (connectors.sqlschema)."""
        if self._foreign_keys is None:
            with self._wrap("cannot read the foreign keys of the database"):
                self._foreign_keys = all_foreign_keys(self.engine)
        return foreign_keys_to(self._foreign_keys, table)

    def table_schema(self, table: str) -> TableSchema:
        spec = self._table(table)
        with self._wrap(f"cannot read the constraints of table {table}"):
            return table_schema(self.engine, spec)

    # --- selection -------------------------------------------------------------------

    def _key_cols(self, table: sa.FromClause, target: Target) -> list[Any]:
        return [table.c[name] for name in target.table.key]

    def _tenant(self, table: sa.FromClause, target: Target) -> ColumnElement[bool] | None:
        """The exact tenant filter of `table` (or an alias of one), or None when it has no
        tenant column."""
        column = target.table.tenant_column
        if column is None or column not in table.c:
            return None
        if target.tenant is None:
            raise ConnectorError("a shared table needs the customer's tenant value")
        return tenant_clause(table.c[column], target.tenant, self.dialect)

    def _scope(self, related: sa.FromClause, target: Target) -> ColumnElement[bool] | None:
        """The rows of a related table (an alias) that a time basis reads: the tenant's, and
        in a plan not those an earlier delete rule of the pair would delete (`Target.gone`)."""
        clauses = [c for c in [self._tenant(related, target)] if c is not None]
        original = getattr(related, "element", related)
        for earlier in target.gone:
            if earlier.table.name == getattr(original, "name", None):
                # CASE, not NOT: a row the earlier rule cannot judge (a NULL date) makes its
                # clause NULL, and NOT NULL would drop that row, which the run keeps.
                clauses.append(sa.case((self._expired(related, earlier), 1), else_=0) == 0)
        return sa.and_(*clauses) if clauses else None

    def _basis(self, spec: BasisSpec, table: sa.FromClause, target: Target) -> ColumnElement[bool]:
        """SQL true for a row past `target`'s cutoff on the basis `spec`."""
        return sqlbasis.expired(
            spec, table, target, self.dialect, self._table, lambda t: self._scope(t, target)
        )

    def _expired(self, table: sa.FromClause, target: Target) -> ColumnElement[bool]:
        """Tenant, cutoff, holds and (for anonymise) not yet done."""
        clauses: list[ColumnElement[bool]] = []
        if target.table.tenant_column is not None:
            if target.table.tenant_column not in table.c:
                raise SchemaError(
                    f"table {target.table.name} has no tenant column {target.table.tenant_column}"
                )
            tenant = self._tenant(table, target)
            if tenant is not None:
                clauses.append(tenant)
        if target.basis is None:
            clauses.append(sa.true() if target.everything else sa.false())
        else:
            clauses.append(self._basis(target.basis, table, target))
        for other in target.also:  # the longest retention wins: past every overlapping rule
            if other.column is None:
                clauses.append(sa.true() if other.everything else sa.false())
            else:
                past = replace(
                    target, cutoff_date=other.cutoff_date, cutoff_instant=other.cutoff_instant
                )
                clauses.append(self._basis(other.column, table, past))
        clauses += [sqlbasis.condition(c, table) for c in target.where]
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
            self.engine.connect() as conn,
        ):
            row = conn.execute(query).one()
        return sqlcount.read(row[0], row[1], basis)

    def backlogs(self, targets: Sequence[Target]) -> list[Backlog]:
        """`backlog` of each target, in order, in one statement (connectors.sqlcount)."""
        if len(targets) < 2:
            return [self.backlog(t) for t in targets]
        parts = [self._backlog_query(t) for t in targets]
        tables = ", ".join(sorted({t.table.name for t in targets}))
        with self._wrap(f"cannot count expired rows of {tables}"), self.engine.connect() as conn:
            return sqlcount.grouped(conn, parts)

    def _backlog_query(self, target: Target) -> sqlcount.Part:
        table = self._table(target.table.name)
        oldest: ColumnElement[Any] = sa.null()
        basis: ColumnElement[Any] | None = None
        if target.basis is not None:
            oldest, basis = sqlbasis.oldest(
                target.basis,
                table,
                self.dialect,
                self._table,
                lambda t: self._scope(t, target),
            )
        query = (
            sa.select(sa.func.count().label(sqlcount.COUNT), oldest.label(sqlcount.OLDEST))
            .select_from(table)
            .where(self._expired(table, target))
        )
        return query, basis

    def preview(self, target: Target, change: Change) -> dict[str, int]:
        table = self._table(target.table.name)
        self.foreign_keys_to(table.name)
        expired = self._expired(table, target)
        what = f"cannot count what a {change} of {table.name} reaches"
        with self._wrap(what), self.engine.connect() as conn:
            return sqlreach.preview(
                conn, self._table, self.foreign_keys_to, self._tenant, target, change, expired
            )

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
        basis = target.basis if isinstance(target.basis, str) else None
        advice = None
        if basis is not None and basis in table.c:
            advice = index_advice(table, basis, target.table.tenant_column, self.engine.dialect)
        with (
            self._wrap(f"cannot explain the selection of {table.name}"),
            self.engine.connect() as conn,
        ):
            lines, scans = sqlexplain.explain(conn, query, table)
            rows = sqlexplain.estimated_rows(conn, table)
        return Explained(tuple(lines), scans, rows, advice)

    # --- changes ---------------------------------------------------------------------

    def apply(
        self,
        target: Target,
        change: Change,
        keys: Sequence[Key],
        *,
        guard: Guard | None = None,
        prepare: Prepare | None = None,
    ) -> Applied:
        if not keys:
            return Applied()
        table = self._table(target.table.name)
        self.foreign_keys_to(table.name)  # read before the transaction (SQLite: a 2nd session)
        expired = self._expired(table, target)
        batch = Batch(self._table, self._tenant, expired, self._pepper, self.foreign_keys_to)
        with self._wrap(f"cannot {change} rows of {table.name}"), self.engine.connect() as conn:
            transaction = conn.begin()
            applied = change_batch(conn, table, target, change, keys, batch, guard)
            if not applied.changed_keys:
                transaction.rollback()
                return applied
            if prepare is not None:
                prepare(applied)  # raising leaves the transaction to roll back
            try:
                transaction.commit()
            except sa.exc.SQLAlchemyError as exc:
                conn.invalidate()  # a failed COMMIT may leave it in the transaction (SQLite)
                if refused_by_constraint(exc):  # checked at COMMIT (deferred): rolled back
                    raise
                raise AmbiguousCommit(
                    f"the outcome of committing {change} of {len(applied.changed_keys)} row(s) of "
                    f"{table.name} is unknown ({describe(exc)}); check which rows are gone",
                    applied,
                ) from exc
            return applied

    def delete_expired(
        self, target: Target, limit: int, *, prepare: Prepare | None = None
    ) -> Applied:
        table = self._table(target.table.name)
        where = self._expired(table, target)
        columns = list(table.c)
        if self.dialect in ("postgresql", "sqlite"):  # the row's physical locator
            locator: ColumnElement[Any] = sa.literal_column(
                "ctid" if self.dialect == "postgresql" else "rowid"
            )
            picked = sa.select(locator).select_from(table).where(where).limit(limit)
            if self.dialect == "postgresql":
                picked = picked.with_for_update()
            statement = sa.delete(table).where(locator.in_(picked))
        else:  # MariaDB/MySQL: a single-table DELETE takes LIMIT itself
            statement = sa.delete(table).where(where).with_dialect_options(mysql_limit=limit)
        what = f"cannot delete rows of {table.name}"
        with self._wrap(what), self.engine.connect() as conn:
            transaction = conn.begin()
            rows = [tuple(r) for r in conn.execute(statement.returning(*columns))]
            applied = Applied({table.name: len(rows)}, rows)
            if not rows:
                transaction.rollback()
                return applied
            if prepare is not None:
                prepare(applied)
            try:
                transaction.commit()
            except sa.exc.SQLAlchemyError as exc:
                raise AmbiguousCommit(
                    f"the outcome of committing the delete of {len(rows)} row(s) of "
                    f"{table.name} is unknown ({describe(exc)}); check which rows are gone",
                    applied,
                ) from exc
            return applied

    def remaining(self, target: Target, change: Change, keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        table = self._table(target.table.name)
        if not target.table.key:
            return self._rows_remaining(table, target, keys)
        key_cols = self._key_cols(table, target)
        clauses = [key_in(key_cols, keys, self.dialect)]
        tenant = self._tenant(table, target)
        if tenant is not None:
            clauses.append(tenant)
        if change is Change.ANONYMISE and target.masks:
            done = [done_clause(m, table.c[m.column], self.dialect) for m in target.masks]
            clauses.append(sa.not_(sa.and_(*done)))
        query = sa.select(*key_cols).where(*clauses)
        with self._wrap(f"cannot read rows of {table.name}"), self.engine.connect() as conn:
            return {tuple(r) for r in conn.execute(query)}

    def _rows_remaining(self, table: sa.Table, target: Target, rows: Sequence[Key]) -> set[Key]:
        """Which of these rows' values (every column) are still in the table (NULL = NULL)."""
        columns = list(table.c)
        same = [
            sa.and_(*(c.is_not_distinct_from(v) for c, v in zip(columns, row, strict=True)))
            for row in rows
        ]
        query = sa.select(*columns).where(sa.or_(*same))
        tenant = self._tenant(table, target)
        if tenant is not None:
            query = query.where(tenant)
        with self._wrap(f"cannot read rows of {table.name}"), self.engine.connect() as conn:
            found = {tuple(r) for r in conn.execute(query)}
        return {row for row in rows if row in found}

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

    def batch_limit(self, key_width: int) -> int:
        """Keys per batch within the bind-parameter limit. PostgreSQL gets keys as arrays
        (a constant number of parameters); SQLite takes SQLITE_LIMIT_VARIABLE_NUMBER
        parameters (32,766 since 3.32); pymysql binds client-side, bounded only by
        max_allowed_packet."""
        width = max(1, key_width)
        name = self.dialect
        if name == "postgresql":
            return 100_000  # keys travel as arrays: one parameter per key column
        if name == "sqlite":
            return (_sqlite_variable_limit(self.engine) - PARAMETER_MARGIN) // width
        return 50_000


def _sqlite_variable_limit(engine: Engine) -> int:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        getlimit = getattr(raw, "getlimit", None)
        if getlimit is None:
            return 999  # SQLite before 3.32 and Python before 3.11: the old default
        return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def _key_after(columns: Sequence[sa.Column[Any]], after: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        first: ColumnElement[bool] = columns[0] > after[0]
        return first
    return sa.tuple_(*columns) > sa.tuple_(*(sa.literal(v) for v in after))
