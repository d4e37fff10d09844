"""The anonymise statements of one batch's rows, guarded against what the database's ON
UPDATE keys do with them (connectors/sqlupdatereach.py): the subject's rows (`mask_subject`)
and a related table's rows (`mask_related`), inside the transaction of
connectors/sqlchange.py `change_batch`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.anonymise import done_clause, mask_value
from connectors.base import ColumnMask, Key, Mask, SchemaError
from connectors.sqlmaskplan import Row
from connectors.sqlmaskset import write_rows
from connectors.sqlupdatereach import UpdateKeys, guard_update

Predicate = ColumnElement[bool]
# connectors.sqlchange.key_in (which imports this module): `columns IN keys` on a dialect
KeyIn = Callable[[Sequence[sa.Column[Any]], Any, str], Predicate]


def mask_subject(
    conn: Connection,
    keys: UpdateKeys,
    table: sa.Table,
    key_cols: list[sa.Column[Any]],
    rows: Sequence[Row],
    tenant: Predicate | None,
    related: Sequence[str],
    key_in: KeyIn,
) -> dict[str, int]:
    """Write `rows` (each a key and the new values of the columns it changes) into `table`
    within `tenant` (one UPDATE: connectors/sqlmaskset.py), after `guard_update` (RowsRefused
    when the ON UPDATE keys would change another tenant's row, a row outside the product's
    schema, a row of `table` outside `rows`, or a row of one of the rule's `related` tables).
    Returns the rows per table changed: `table`'s, and those the keys change with them."""
    if not rows:
        return {table.name: 0}
    dialect = conn.dialect.name
    changes: dict[str, Predicate] = {}
    for name in dict.fromkeys(c for _, new in rows for c in new):
        changes[name] = key_in(key_cols, [k for k, new in rows if name in new], dialect)
    kept: dict[str, Predicate] = dict.fromkeys(related, sa.false())
    kept[table.name] = key_in(key_cols, [k for k, _ in rows], dialect)
    counts = guard_update(conn, keys, table, changes, kept)
    write_rows(conn, table, key_cols, rows, tenant)
    return {**counts, table.name: len(rows)}


def mask_related(
    conn: Connection,
    keys: UpdateKeys,
    related: sa.Table,
    masks: tuple[ColumnMask, ...],
    where: Predicate,
    pepper: bytes,
    kept: Sequence[str],
    key_in: KeyIn,
) -> dict[str, int]:
    """Anonymise related rows of `related` matching `where` not yet masked: in one UPDATE
    when every mask is a constant (null, fixed text), else computed row by row and written by
    the table's primary key (connectors.sqlmaskset: one more UPDATE). `guard_update` first:
    RowsRefused when the ON UPDATE keys would change another tenant's row, a row outside the
    product's schema, a row of `related` the UPDATE does not write, or a row of one of the
    `kept` tables (the subject's, the rule's other related tables). Returns the rows per
    table changed: `related`'s, and those the keys change with them. Raises SchemaError for
    a per-row mask on a table without a primary key."""
    dialect = conn.dialect.name
    pending = sa.and_(
        where, sa.not_(sa.and_(*(done_clause(m, related.c[m.column], dialect) for m in masks)))
    )
    others: dict[str, Predicate] = dict.fromkeys(kept, sa.false())
    if all(m.mask in (Mask.NULL, Mask.FIXED) for m in masks):
        constant = {m.column: (m.text if m.mask is Mask.FIXED else None) for m in masks}
        changes = {
            m.column: sa.and_(pending, sa.not_(done_clause(m, related.c[m.column], dialect)))
            for m in masks
        }
        reached = guard_update(conn, keys, related, changes, {**others, related.name: pending})
        done = int(conn.execute(sa.update(related).where(pending).values(constant)).rowcount)
        return {**reached, related.name: done}
    key = list(related.primary_key.columns)
    if not key:
        raise SchemaError(
            f"related table {related.name} has no primary key: a per-row mask needs one; "
            "use null or a fixed text, or add a primary key"
        )
    columns = [related.c[m.column] for m in masks]
    rows = conn.execute(sa.select(*key, *columns).where(pending).with_for_update()).all()
    new: list[Row] = []
    moved: dict[str, list[Key]] = {}
    for row in rows:
        row_key = tuple(row[: len(key)])
        values = {}
        for m, value in zip(masks, row[len(key) :], strict=True):
            values[m.column] = masked = mask_value(m, value, pepper)
            if masked != value:
                moved.setdefault(m.column, []).append(row_key)
        new.append((row_key, values))
    counts: dict[str, int] = {}
    if rows:
        changes = {name: key_in(key, found, dialect) for name, found in moved.items()}
        written = key_in(key, [k for k, _ in new], dialect)
        counts = guard_update(conn, keys, related, changes, {**others, related.name: written})
    write_rows(conn, related, key, new)  # by primary key: the rows were selected in the tenant
    return {**counts, related.name: len(rows)}
