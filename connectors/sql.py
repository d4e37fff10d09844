"""The generic SQL connector: SQLAlchemy Core over reflected tables, driven by a mapping.

Identifiers come from reflection, never from strings pasted into SQL. Works on PostgreSQL
(psycopg 3), MariaDB/MySQL (pymysql) and SQLite. How tenant values are compared lives in
`connectors.tenancy`, how odd time bases are read in `connectors.dates`, and how each session
is pinned (UTC, strict SQL mode, timeouts) in `connectors.session`; how the URL is checked
and the client-side connect and read bounds in `connectors.reach`.
Which rows a target selects and the read-only statements over them are in
`connectors.sqlread` (the base class `SqlReads`), a dry run's counts in `connectors.sqlpreview`
(`SqlPreviews`), what it knows of the schema and its check against the mapping in
`connectors.sqlschemaview` (`SqlSchemaView`); this module holds the connector's lifetime and
the changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from connectors import sqltogether
from connectors.base import (
    AmbiguousCommit,
    Applied,
    Change,
    ConnectorError,
    Guard,
    Key,
    Prepare,
    SchemaError,
    Target,
    Timeouts,
    keyless_reached,
)
from connectors.engines import Engines, engine_key
from connectors.errors import describe, refused_by_constraint, wrap_errors
from connectors.identity import server_identity
from connectors.masking import safe_url
from connectors.pooling import ping_when_idle
from connectors.reach import checked_url, engine_options
from connectors.session import pin_sessions, reading
from connectors.sqlchange import Batch, change_batch
from connectors.sqlfast import CHOSEN, next_delete, one_table_tids
from connectors.sqlschemaview import SqlSchemaView

# Bind parameters a statement needs besides the keys: tenant, cutoff, masks, holds.
PARAMETER_MARGIN = 1_000


class SqlConnector(SqlSchemaView):
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
        self._forget_schema()

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
        self._forget_schema()

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
            rows = [tuple(r) for r in conn.execute(statement)]
            # PostgreSQL: the count of rows chosen, last in each row
            counted = isinstance(statement, sa.Select) and CHOSEN in statement.selected_columns
            gone = [r[:-1] for r in rows] if counted else rows
            held = set(guard(gone)) if guard is not None and gone else set()
            if held:  # a hold placed meanwhile: nothing of this batch goes
                transaction.rollback()
                return None
            applied = Applied({table.name: len(gone)}, gone)
            # Every row chosen is gone, and fewer were chosen than asked for: the whole
            # selection (from `after` on, at the statement's snapshot).
            applied.whole = counted and bool(rows) and rows[0][-1] == len(gone) < limit
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
        what = f"cannot delete rows of {table.name}"
        with self._wrap(what), self.engine.connect() as conn:
            transaction = conn.begin()
            if self.dialect == "postgresql":  # chosen once, deleted by a TID scan (sqlfast)
                statement = sa.delete(table).where(one_table_tids(table, where, limit))
            elif self.dialect == "sqlite":  # the row's physical locator, each row judged again
                place = _sqlite_locator(conn, table)
                picked = sa.select(*place).select_from(table).where(where).limit(limit)
                one = len(place) == 1
                inside = place[0].in_(picked) if one else sa.tuple_(*place).in_(picked)
                statement = sa.delete(table).where(inside, where)
            else:  # MariaDB/MySQL: a single-table DELETE takes LIMIT itself
                statement = sa.delete(table).where(where).with_dialect_options(mysql_limit=limit)
            rows = [tuple(r) for r in conn.execute(statement.returning(*columns))]
            applied = Applied({table.name: len(rows)}, rows)
            return _finish(conn, transaction, applied, prepare, "delete", table.name)

    def database_key(self) -> str:
        """The engine's key (connectors/engines.py: a SHA-256 digest of the URL, the
        timeouts and the engine options); equal for customers on one shared database."""
        return self.engine_key

    def joint_key(self, targets: Sequence[Target]) -> Hashable | None:
        """`JointCheck.joint_key` (connectors/sqltogether.py): the grouped count's shape key."""
        return self._shape_key(targets)

    def due_together(self, customers: Sequence[Sequence[Target]]) -> list[list[bool] | None] | None:
        """`JointCheck.due_together`: which targets of each customer have rows due, for
        customers of one shape in one statement (PostgreSQL; None elsewhere)."""
        return sqltogether.due_together(self, customers)

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


def _sqlite_locator(conn: sa.Connection, table: sa.Table) -> list[ColumnElement[Any]]:
    """The columns that place a row of SQLite `table`: its rowid (`_rowid_name`), or, in a
    table `WITHOUT ROWID` (which has none), its primary key, which there is the row's
    place in the table's B-tree, unique and NOT NULL. SQLite 3.37 and later say which
    (`PRAGMA table_list`, on `conn`); SQLAlchemy's reflection reads it from the `CREATE`
    text and misses a comment before `WITHOUT ROWID`, so it only answers for older ones.
    Raises SQLAlchemy errors."""
    if _without_rowid(conn, table):
        return list(table.primary_key.columns)
    return [sa.literal_column(_rowid_name(table))]


def _without_rowid(conn: sa.Connection, table: sa.Table) -> bool:
    """Whether SQLite `table` of the main schema is `WITHOUT ROWID`."""
    if sqlite3.sqlite_version_info < (3, 37):
        return table.dialect_options["sqlite"].get("with_rowid", True) is False
    quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
    rows = conn.exec_driver_sql(f"PRAGMA main.table_list({quoted})").mappings()
    return any(row["name"] == table.name and row["wr"] for row in rows)


def _rowid_name(table: sa.Table) -> str:
    """A name of SQLite's rowid that no column of `table` takes (a column named `rowid`,
    `_rowid_` or `oid` is what that name means there); `rowid` when all three are columns,
    whose values may then name several rows (the DELETE judges each row again)."""
    taken = {c.name.lower() for c in table.c}
    return next((n for n in ("rowid", "_rowid_", "oid") if n not in taken), "rowid")
