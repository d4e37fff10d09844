"""The statements of one batch's transaction in the SQL connector: lock, delete, anonymise.

`change_batch` runs inside the transaction `SqlConnector.apply` opened:

    lock the batch's still-eligible rows (SELECT ... FOR UPDATE; with the masked values for
    anonymise) → ask the guard which a hold now covers → change the others (dependents first,
    then the subject) → report the keys and rows per table changed, rows that the database's
    foreign keys delete or update with each DELETE (connectors/sqlreach.py) and with each
    anonymise UPDATE (connectors/sqlupdatereach.py, connectors/sqlmaskrelated.py) included

Identifiers come from reflected tables; values are bound parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.anonymise import mask_value
from connectors.base import (
    Applied,
    Change,
    Dependent,
    ForeignKeyRef,
    Guard,
    Key,
    Target,
)
from connectors.errors import timeout_kind, wrap_errors
from connectors.sqlmaskjson import text_charset
from connectors.sqlmaskplan import is_date
from connectors.sqlmaskrelated import mask_related, mask_subject
from connectors.sqlreach import cascaded
from connectors.sqlrefuse import Kept, refuse_reach_back, refuse_reaching, ways_back
from connectors.sqlupdatereach import UpdateKeys

TableOf = Callable[[str], sa.Table]
TenantOf = Callable[[sa.Table, Target], ColumnElement[bool] | None]
Counts = dict[str, int]


@dataclass(frozen=True)
class Batch:
    """What `change_batch` needs from the connector: tables, filters and the pepper."""

    table_of: TableOf
    tenant_of: TenantOf
    expired: ColumnElement[bool]  # the target's full re-check (tenant, cutoff, held, masks)
    pepper: bytes
    # The foreign keys pointing at a table: what a DELETE cascades to is counted too.
    refs_to: Callable[[str], list[ForeignKeyRef]] = lambda _name: []
    # Every foreign key pointing at a table, its own included (sqlrefuse.ways_back).
    refs_all: Callable[[str], list[ForeignKeyRef]] = lambda _name: []
    # The keys of tables outside the default schema pointing at a table (sqloutside).
    refs_outside: Callable[[str], list[ForeignKeyRef]] = lambda _name: []

    def cascades(
        self,
        conn: Connection,
        table: sa.Table,
        where: ColumnElement[bool],
        target: Target | None = None,
    ) -> Counts:
        """Rows per table the foreign keys delete or update with a DELETE of `where`;
        refused (RowsRefused) when a key of a table outside the default schema would delete
        or change a row, and with `target` when they reach another tenant's row."""

        def others(reached: sa.Table) -> ColumnElement[bool] | None:
            return self.tenant_of(reached, target) if target is not None else None

        return cascaded(
            conn,
            self.table_of,
            self.refs_to,
            table,
            where,
            self.refs_all,
            others,
            self.refs_outside,
        )

    def update_keys(self, target: Target) -> UpdateKeys:
        """The keys and tenant filter an anonymise UPDATE of `target`'s batch is checked
        against (connectors/sqlupdatereach.py)."""
        return UpdateKeys(
            self.table_of,
            self.refs_all,
            self.refs_outside,
            lambda reached: self.tenant_of(reached, target),
        )


def key_in(columns: Sequence[sa.Column[Any]], keys: Any, dialect: str = "") -> ColumnElement[bool]:
    """`columns IN keys`, for a single or a composite key.

    On PostgreSQL the keys travel as one array per key column (`= ANY(:a)`, or
    `IN (SELECT * FROM unnest(:a, :b))`): a constant number of parameters, however many keys,
    and no huge row-constructor list (which exceeds the parser's stack depth). Elsewhere an
    IN list, kept within the driver's parameter limit by `Connector.batch_limit`.

    MariaDB/MySQL, composite keys: MariaDB 10.11 compares a row IN list of two or more rows
    without converting the connection's character set (utf8mb4) to a text column's other
    one: a non-ASCII text in a latin1, ucs2 or utf16 key column matches nothing (`('café', 1)`
    is not found beside `('zoë', 2)`), so a batch would lock nothing and a settlement would
    count rows still there as gone (an ENUM column too). Such a key part travels converted
    to the column's character set and collation
    (`CAST(:v AS CHAR CHARACTER SET latin1) COLLATE …`), which compares as one key alone or
    a single key column does. Not for utf8mb4 and utf8mb3 columns (they compare right; the
    cast costs the IN list its fast path: 5,000 keys 0.6 s
    against 0.07 s), nor for a column whose character set the reflected table does not say.
    A URL that sets another connection character set than utf8mb4 is not covered.
    """
    keys = list(keys)
    if dialect == "postgresql":
        arrays = [
            sa.bindparam(None, [k[i] for k in keys], type_=postgresql.ARRAY(c.type))
            for i, c in enumerate(columns)
        ]
        if len(columns) == 1:
            return columns[0] == sa.any_(arrays[0])
        names = [f"k{i}" for i in range(len(columns))]
        rows = sa.func.unnest(*arrays).table_valued(*names).render_derived()
        return sa.tuple_(*columns).in_(sa.select(*(rows.c[n] for n in names)))
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    if dialect in ("mysql", "mariadb"):
        converted = [_other_charset(c) for c in columns]
        if any(converted):
            keys = [
                sa.tuple_(
                    *(
                        v if to is None or not isinstance(v, str) else to(v)
                        for to, v in zip(converted, k, strict=True)
                    )
                )
                for k in keys
            ]
    return sa.tuple_(*columns).in_(keys)


_UTF8 = {"utf8mb4", "utf8mb3", "utf8"}


def _other_charset(column: sa.Column[Any]) -> Callable[[str], ColumnElement[Any]] | None:
    """For a MariaDB text key column of a character set other than UTF-8: how to send one
    value of it in the column's character set and collation (see `key_in`); else None. A
    column of an alias of a table is read from that table."""
    # ENUM keys too: MariaDB compares them as text, in the column's character set.
    table = column.table.element if isinstance(column.table, sa.Alias) else column.table
    found = text_charset(column, table) if isinstance(table, sa.Table) else None
    if found is None or found[0].lower() in _UTF8:
        return None
    (charset, collation), type_ = found, column.type

    def to(value: str) -> ColumnElement[Any]:
        cast: ColumnElement[Any] = sa.cast(
            sa.bindparam(None, value, type_=type_), mysql.CHAR(charset=charset)
        )
        return sa.collate(cast, collation) if collation else cast

    return to


def change_batch(
    conn: Connection,
    table: sa.Table,
    target: Target,
    change: Change,
    keys: Sequence[Key],
    batch: Batch,
    guard: Guard | None,
) -> Applied:
    """Lock, guard and change one batch; the caller commits. Rows per table, keys changed."""
    key_cols = [table.c[k] for k in target.table.key]
    masked = [table.c[m.column] for m in target.masks] if change is Change.ANONYMISE else []
    # Masked values are read raw and converted here: a date column may hold values the
    # driver's or SQLAlchemy's date conversion cannot read (see connectors.dates).
    raw = [sa.type_coerce(c, sa.types.NullType()) for c in masked]
    where = sa.and_(key_in(key_cols, keys, conn.dialect.name), batch.expired)
    rows = conn.execute(sa.select(*key_cols, *raw).where(where).with_for_update()).all()
    width = len(key_cols)
    locked = [tuple(r[:width]) for r in rows]
    held = set(guard(locked)) if guard is not None and locked else set()
    todo = [k for k in locked if k not in held]
    if not todo:
        return Applied({}, (), tuple(sorted(held, key=repr)))
    if change is Change.ANONYMISE:
        values = {tuple(r[:width]): tuple(r[width:]) for r in rows}
        counts, changed = _anonymise(conn, table, target, key_cols, masked, todo, values, batch)
        if target.related and changed:
            _related(conn, table, target, key_cols, changed, batch, counts)
    else:
        counts, changed = _delete(conn, table, target, change, key_cols, todo, batch)
    return Applied(counts, changed, tuple(sorted(held, key=repr)))


def _delete(
    conn: Connection,
    table: sa.Table,
    target: Target,
    change: Change,
    key_cols: list[sa.Column[Any]],
    todo: list[Key],
    batch: Batch,
) -> tuple[dict[str, int], list[Key]]:
    # The rows of `todo` were re-checked (expired, not held) and locked by change_batch:
    # exactly those go. The expiry is not evaluated again here: a time basis read from a
    # table that is also a dependent would no longer hold once the dependents are deleted,
    # and the subject rows would silently stay.
    where = key_in(key_cols, todo, conn.dialect.name)
    tenant = batch.tenant_of(table, target)
    if tenant is not None:
        where = sa.and_(where, tenant)
    counts: dict[str, int] = {}
    kept = Kept(table, key_cols, where)  # its dependents never reach other subject rows
    if change is Change.DELETE:
        parent = sa.select(table).where(where).subquery()
        for dep in target.table.dependents:
            _delete_dependent(conn, dep, parent, target, batch, counts, kept)
    outside = table.alias("reached")
    back = ways_back(batch.table_of, batch.refs_all, table, outside, where)
    if back:  # never a row of this table outside the batch (sqlrefuse.refuse_reach_back)
        refuse_reach_back(conn, back, table, outside, key_cols, where)
    _add(counts, batch.cascades(conn, table, where, target))
    statement = sa.delete(table).where(where)
    if back or kept.reached:  # a row a cascade took first is not RETURNed: ask what is left
        conn.execute(statement)
        left = {tuple(r) for r in conn.execute(sa.select(*key_cols).where(where))}
        gone = [k for k in todo if k not in left]
        counts[table.name] = 0  # the batch's own rows, whichever statement took them: gone
    elif conn.dialect.delete_returning:
        gone = [tuple(r) for r in conn.execute(statement.returning(*key_cols))]
    else:  # the rows are locked: exactly the locked ones go
        conn.execute(statement)
        gone = list(todo)
    counts[table.name] = counts.get(table.name, 0) + len(gone)
    return counts, gone


def _delete_dependent(
    conn: Connection,
    dep: Dependent,
    parent: sa.Subquery,
    target: Target,
    batch: Batch,
    counts: dict[str, int],
    kept: Kept,
) -> None:
    """Delete the rows of `dep` that point at `parent` rows, within the tenant.

    A dependent table with the tenant column is filtered by it too, so that rows of
    another tenant that share the referenced values are never reached; nor, through its
    ON DELETE keys, rows of its own table outside these, or subject rows outside the batch
    (`sqlrefuse.refuse_reaching`).
    """
    table = batch.table_of(dep.table)
    own = [table.c[c] for c, _ in dep.references]
    ref = [parent.c[p] for _, p in dep.references]
    if len(own) == 1:
        where: ColumnElement[bool] = own[0].in_(sa.select(ref[0]))
    else:
        where = sa.tuple_(*own).in_(sa.select(*ref))
    tenant = batch.tenant_of(table, target)
    if tenant is not None:
        where = sa.and_(where, tenant)
    if dep.dependents:
        # Grandchildren first, while the rows they point at still exist.
        sub = sa.select(table).where(where).subquery()
        for child in dep.dependents:
            _delete_dependent(conn, child, sub, target, batch, counts, kept)
    going = refuse_reaching(conn, batch.table_of, batch.refs_all, table, where, kept)
    _add(counts, batch.cascades(conn, table, where, target))
    result = conn.execute(sa.delete(table).where(where))
    gone = result.rowcount if going is None else going
    counts[dep.table] = counts.get(dep.table, 0) + gone


def _anonymise(
    conn: Connection,
    table: sa.Table,
    target: Target,
    key_cols: list[sa.Column[Any]],
    masked: list[sa.Column[Any]],
    todo: list[Key],
    values: dict[Key, tuple[Any, ...]],
    batch: Batch,
) -> tuple[dict[str, int], list[Key]]:
    # The masks are computed here (a keyed hash needs the pepper); the rows are written by
    # key in one UPDATE (connectors.sqlmaskset). A row no mask changes is not written.
    rows: list[tuple[Key, dict[str, Any]]] = []
    # Which columns are date columns, once per batch rather than for every value.
    columns = [
        (mask, column, is_date(column)) for mask, column in zip(target.masks, masked, strict=True)
    ]
    for key in todo:
        new: dict[str, Any] = {}
        for (mask, column, dated), stored in zip(columns, values[key], strict=True):
            value = _as_python(stored, column) if dated and isinstance(stored, str) else stored
            replaced = mask_value(mask, value, batch.pepper)
            if replaced != value:
                new[mask.column] = replaced
        if new:
            rows.append((key, new))
    tenant = batch.tenant_of(table, target)
    related = [r.table for r in target.related]
    keys = batch.update_keys(target)
    counts = mask_subject(conn, keys, table, key_cols, rows, tenant, related, key_in)
    return counts, [key for key, _ in rows]


def _related(
    conn: Connection,
    table: sa.Table,
    target: Target,
    key_cols: list[sa.Column[Any]],
    parents: list[Key],
    batch: Batch,
    counts: dict[str, int],
) -> None:
    """Delete or anonymise the rows of related tables that point at the anonymised rows,
    within the tenant, counting each table."""
    dialect = conn.dialect.name
    parent = sa.select(table).where(key_in(key_cols, parents, dialect)).subquery()
    for rel in target.related:
        related = batch.table_of(rel.table)
        own = [related.c[c] for c, _ in rel.references]
        ref = [parent.c[p] for _, p in rel.references]
        if len(own) == 1:
            where: ColumnElement[bool] = own[0].in_(sa.select(ref[0]))
        else:
            where = sa.tuple_(*own).in_(sa.select(*ref))
        tenant = batch.tenant_of(related, target)
        if tenant is not None:
            where = sa.and_(where, tenant)
        with _naming(f"cannot {rel.change} related rows of {rel.table} (with {table.name})"):
            if rel.change is Change.DELETE:  # never a subject row, nor other related rows
                kept = Kept(table, key_cols, sa.false())
                going = refuse_reaching(conn, batch.table_of, batch.refs_all, related, where, kept)
                _add(counts, batch.cascades(conn, related, where, target))
                done = conn.execute(sa.delete(related).where(where)).rowcount
                done = done if going is None else going
            else:
                others = [table.name, *(r.table for r in target.related if r is not rel)]
                keys = batch.update_keys(target)
                changed = mask_related(
                    conn, keys, related, rel.masks, where, batch.pepper, others, key_in
                )
                done = changed.pop(rel.table)
                _add(counts, changed)
        if done:
            counts[rel.table] = counts.get(rel.table, 0) + done


@contextmanager
def _naming(what: str) -> Iterator[None]:
    """A database error while changing related rows names the related table (`what`), not
    the subject's; a timeout is left to the caller, whose message names the timeout setting."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        if timeout_kind(exc) is not None:
            raise
        with wrap_errors(what):
            raise


def _add(counts: Counts, more: Counts) -> None:
    for name, count in more.items():
        counts[name] = counts.get(name, 0) + count


def _as_python(value: str, column: sa.ColumnElement[Any]) -> Any:
    """A raw text value of a date column (the caller checks both) as a date or datetime when
    it reads as one, else as is."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed if isinstance(column.type, sa.DateTime) else parsed.date()
