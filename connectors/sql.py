"""The generic SQL connector: SQLAlchemy Core over reflected tables, driven by a mapping.

Identifiers come from reflection, never from strings pasted into SQL. Works on PostgreSQL
(psycopg 3), MariaDB/MySQL (pymysql) and SQLite. How tenant values are compared lives in
`connectors.tenancy`, how odd time bases are read in `connectors.dates`, and how each session
is pinned (UTC, strict SQL mode, timeouts) in `connectors.session`; how the URL is checked
and the client-side connect and read bounds in `connectors.reach`.
Which rows a target selects and the read-only statements over them are in
`connectors.sqlread` (the base class `SqlReads`), a dry run's counts in `connectors.sqlpreview`
(`SqlPreviews`, between the two); this module holds the connector's lifetime, the schema and
the changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors import sqlbasis
from connectors.base import (
    AmbiguousCommit,
    Applied,
    Change,
    ConnectorError,
    Dependent,
    ForeignKeyRef,
    Guard,
    Key,
    Prepare,
    Problem,
    SchemaError,
    SchemaRead,
    Table,
    TableSchema,
    Target,
    Timeouts,
    keyless_reached,
)
from connectors.engines import Engines, ForeignKeys, engine_key
from connectors.errors import describe, refused_by_constraint, wrap_errors
from connectors.identity import server_identity
from connectors.masking import safe_url
from connectors.pooling import ping_when_idle
from connectors.reach import checked_url, engine_options
from connectors.session import pin_sessions, reading
from connectors.sqlchange import Batch, change_batch
from connectors.sqlfast import locked_tids, next_delete
from connectors.sqlpreview import SqlPreviews
from connectors.sqlschema import (
    all_foreign_keys,
    every_foreign_key_to,
    foreign_keys_to,
    outside_keys_to,
    table_schema,
)
from connectors.sqlverify import verify_table, verify_tenancy

# Bind parameters a statement needs besides the keys: tenant, cutoff, masks, holds.
PARAMETER_MARGIN = 1_000


class SqlConnector(SqlPreviews):
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
        # Tables of the process's reflections (connectors.engines) that verify read, by name:
        # every table set verified since `open`, the latest reflection of a name winning.
        self._shared: dict[str, sa.Table] = {}
        self._foreign_keys: ForeignKeys | None = None  # read once per open, or cached
        # The fingerprint of the database's foreign keys the latest `verify` read (engines).
        self._keys_stamp: str | None = None
        self._schema_read: SchemaRead | None = None  # how the latest `verify` knew the schema

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
        engine = sa.create_engine(self._url, **options)
        ping_when_idle(engine)  # not pool_pre_ping: a round trip per checkout (pooling.py)
        pin_sessions(engine, self._timeouts)
        return engine

    def close(self) -> None:
        if self._engine is not None:
            if self._engines is None:
                self._engine.dispose()
            self._engine = None
        self._metadata = self._own = sa.MetaData()
        self._shared = {}
        self._foreign_keys = None
        self._keys_stamp = None

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
        with self._wrap(f"cannot reach {self.safe_url}"), reading(self.engine) as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- schema ----------------------------------------------------------------------

    def _table(self, name: str) -> sa.Table:
        found = self._shared.get(name)
        found = found if found is not None else self._own.tables.get(name)
        if found is not None:
            return found
        with self._wrap(f"cannot read the schema of table {name}"):
            try:
                return sa.Table(name, self._own, autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise SchemaError(f"table {name} does not exist") from None

    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        return [p for found in self.verify_each(tables) for p in found]

    def verify_each(
        self, tables: Sequence[Table], *, reuse_seconds: float = 0.0
    ) -> list[list[Problem]]:
        """See `Connector.verify_each`: one fingerprint query (and, when it changed, one
        reflection) for every table of `tables`, their dependents, bases and related tables;
        none when `reuse_seconds` lets it borrow a recent one (`connectors.engines`)."""
        names: list[str] = []
        pending: list[Table | Dependent] = list(tables)
        while pending:
            item = pending.pop()
            names.append(item.name if isinstance(item, Table) else item.table)
            pending.extend(item.dependents)
            if isinstance(item, Table):
                names += [b.table for b in item.bases] + [r.table for r in item.related]
        names = sorted(set(names))
        with self._wrap(f"cannot inspect the schema of {', '.join(names)}"):
            existing = self._reflect(names, reuse_seconds)
        found: list[list[Problem]] = []
        for spec in tables:
            problems = verify_table(spec, existing, self._table, self.engine.dialect)
            problems.extend(verify_tenancy(spec, existing, self._table))
            problems.extend(sqlbasis.verify_spec(spec, existing, self._table, self.dialect))
            found.append(problems)
        return found

    def _reflect(self, names: Sequence[str], reuse_seconds: float = 0.0) -> set[str]:
        """Reflect the tables `names` that exist; returns the names of existing tables (all
        of the database's without `engines`, those of `names` with). With `engines`, the
        process's reflection is used when the catalog says the tables are unchanged (or,
        within `reuse_seconds`, said so to another connector: `schema_read().borrowed`)."""
        if self._engines is not None:
            surveyed = self._engines.survey(
                self.engine_key, self.engine, names, reuse_seconds=reuse_seconds
            )
            reflected = surveyed.reflected
            self._schema_read = SchemaRead(reflected.stamp, surveyed.borrowed)
            if surveyed.keys != self._keys_stamp:  # keys read before it are not trusted
                self._keys_stamp, self._foreign_keys = surveyed.keys, None
            # Merged, not replaced: a pair verifies its tables set by set, and every set it
            # verified must stay served from the cache (else each rule reflected its table
            # again). A name verified as gone is forgotten.
            self._own = sa.MetaData()
            for name in names:
                self._shared.pop(name, None)
            self._shared.update((n, reflected.metadata.tables[n]) for n in reflected.existing)
            return set(reflected.existing)
        self._schema_read = None
        existing = set(sa.inspect(self.engine).get_table_names())
        wanted = sorted({n for n in names if n in existing} - set(self._metadata.tables))
        if wanted:  # one bulk reflection instead of several queries per table
            self._metadata.reflect(bind=self.engine, only=wanted)
        return existing

    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """See `Connector.foreign_keys_to`; the whole database's foreign keys are read once
        per `open` (connectors.sqlschema), or with `engines` taken from the process's cache
        when `verify` found their fingerprint unchanged (connectors.engines)."""
        if self._foreign_keys is None:
            with self._wrap("cannot read the foreign keys of the database"):
                engine = self.engine
                if self._engines is None or self._keys_stamp is None:
                    self._foreign_keys = all_foreign_keys(engine)
                else:
                    self._foreign_keys = self._engines.foreign_keys(
                        self.engine_key, engine, self._keys_stamp, lambda: all_foreign_keys(engine)
                    )
        return foreign_keys_to(self._foreign_keys, table)

    def every_foreign_key_to(self, table: str) -> list[ForeignKeyRef]:
        """Every foreign key pointing at `table`, its own included (connectors.sqlschema):
        a batch never reaches a row of its table outside it (sqlrefuse.refuse_reach_back)."""
        self.foreign_keys_to(table)  # reads the database's keys once per open
        return every_foreign_key_to(self._foreign_keys or {}, table)

    def outside_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """See `Connector.outside_keys_to` (connectors/sqloutside.py reads them, with the
        database's other keys and cached with them)."""
        self.foreign_keys_to(table)  # reads the database's keys once per open
        return outside_keys_to(self._foreign_keys or {}, table)

    def table_schema(self, table: str) -> TableSchema:
        spec = self._table(table)
        with self._wrap(f"cannot read the constraints of table {table}"):
            return table_schema(self.engine, spec)

    def schema_read(self) -> SchemaRead | None:
        """See `Connector.schema_read`."""
        return self._schema_read

    def _own_schema(self) -> None:
        """Refuse a change while the latest `verify` only borrowed another run's fingerprint
        of the catalog: rows change only after this run read it itself (worker/drift.py).
        Raises ConnectorError (a bug of the caller, never expected)."""
        if self._schema_read is not None and self._schema_read.borrowed:
            raise ConnectorError(
                "refused to change rows: this run has not checked the schema itself yet "
                "(its check borrowed another run's; a bug in the worker, please report it)"
            )

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
        self._own_schema()
        table = self._table(target.table.name)
        self.foreign_keys_to(table.name)  # read before the transaction (SQLite: a 2nd session)
        expired = self._expired(table, target)
        batch = Batch(
            self._table,
            self._tenant,
            expired,
            self._pepper,
            self.foreign_keys_to,
            self.every_foreign_key_to,
            self.outside_keys_to,
        )
        with self._wrap(f"cannot {change} rows of {table.name}"), self.engine.connect() as conn:
            transaction = conn.begin()
            applied = change_batch(conn, table, target, change, keys, batch, guard)
            return _finish(conn, transaction, applied, prepare, f"{change}", table.name)

    def delete_next(
        self,
        target: Target,
        after: Key | None,
        limit: int,
        *,
        guard: Guard | None = None,
        prepare: Prepare | None = None,
    ) -> Applied | None:
        """See `Connector.delete_next` (connectors/sqlfast.py has the statement)."""
        self._own_schema()
        spec = target.table
        if not spec.key or spec.dependents or target.related:
            return None
        table = self._table(spec.name)
        if any(not r.on_delete.blocks for r in self.every_foreign_key_to(table.name)):
            return None  # their cascades are counted, or refused, before a DELETE
        if self.foreign_keys_to(table.name) or self.outside_keys_to(table.name):
            return None
        key_cols = self._key_cols(table, target)
        expired = self._expired(table, target)
        statement = next_delete(table, key_cols, expired, after, limit, self.engine.dialect)
        if statement is None:
            return None
        with self._wrap(f"cannot delete rows of {table.name}"), self.engine.connect() as conn:
            transaction = conn.begin()
            gone = [tuple(r) for r in conn.execute(statement)]
            held = set(guard(gone)) if guard is not None and gone else set()
            if held:  # a hold placed meanwhile: nothing of this batch goes
                transaction.rollback()
                return None
            applied = Applied({table.name: len(gone)}, gone)
            return _finish(conn, transaction, applied, prepare, "delete", table.name)

    def delete_expired(
        self, target: Target, limit: int, *, prepare: Prepare | None = None
    ) -> Applied:
        self._own_schema()
        table = self._table(target.table.name)
        refs = [*self.every_foreign_key_to(table.name), *self.outside_keys_to(table.name)]
        acting = [r for r in refs if not r.on_delete.blocks]
        if acting:  # what they delete or change could be neither counted nor checked
            raise SchemaError(keyless_reached(table.name, acting[0]))
        where = self._expired(table, target)
        columns = list(table.c)
        if self.dialect in ("postgresql", "sqlite"):  # the row's physical locator
            locator: ColumnElement[Any] = sa.literal_column(
                "ctid" if self.dialect == "postgresql" else "rowid"
            )
            picked = sa.select(locator).select_from(table).where(where).limit(limit)
            if self.dialect == "postgresql":  # chosen once, deleted by a TID scan (sqlfast)
                statement = sa.delete(table).where(locked_tids(picked))
            else:
                statement = sa.delete(table).where(locator.in_(picked))
        else:  # MariaDB/MySQL: a single-table DELETE takes LIMIT itself
            statement = sa.delete(table).where(where).with_dialect_options(mysql_limit=limit)
        what = f"cannot delete rows of {table.name}"
        with self._wrap(what), self.engine.connect() as conn:
            transaction = conn.begin()
            rows = [tuple(r) for r in conn.execute(statement.returning(*columns))]
            applied = Applied({table.name: len(rows)}, rows)
            return _finish(conn, transaction, applied, prepare, "delete", table.name)

    def database_key(self) -> str:
        """The engine's key (connectors/engines.py: a SHA-256 digest of the URL, the
        timeouts and the engine options); equal for customers on one shared database."""
        return self.engine_key

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


def _finish(
    conn: sa.Connection,
    transaction: sa.RootTransaction,
    applied: Applied,
    prepare: Prepare | None,
    change: str,
    table: str,
) -> Applied:
    """End a batch's transaction: roll back when nothing changed, else `prepare` (the
    intent; raising rolls back) and COMMIT. A COMMIT refused by a deferred constraint
    re-raises; any other failed COMMIT raises `AmbiguousCommit` (outcome unknown)."""
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
            f"{table} is unknown ({describe(exc)}); check which rows are gone",
            applied,
        ) from exc
    return applied
