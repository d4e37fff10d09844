"""The set-based delete batch: one statement selects the next expired rows and deletes them.

    DELETE FROM t WHERE key IN (SELECT key FROM t WHERE <expired> AND key > :after
                                ORDER BY key LIMIT :n FOR UPDATE)
    RETURNING key                                       -- PostgreSQL (SQLite: no FOR UPDATE)

    DELETE FROM t WHERE <expired> AND key > :after LIMIT :n RETURNING key      -- MariaDB

`<expired>` is the target's whole re-check (tenant, cutoff, conditions, holds from the
configuration), so the rows deleted are exactly expired rows of the tenant; the keys come
back for the audit trail. It replaces three statements of the page path (select a page,
lock it, delete it) and the page's round trip before the transaction. It is used only where
nothing has to happen before the rows go: no mapped dependents (deleted first), no foreign
key of another table pointing at the table (its cascades are counted before the DELETE,
connectors/sqlreach.py), a backend with DELETE ... RETURNING (PostgreSQL, SQLite 3.35+,
MariaDB 10.0.5+; MySQL has none). MariaDB refuses LIMIT in an IN subquery, so there the
single-table DELETE takes the LIMIT itself, without an order: every row it picks is expired.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import ReturningDelete
from sqlalchemy.sql.elements import ColumnElement

from connectors.model import Key
from connectors.sqlread import _key_after


def next_delete(
    table: sa.Table,
    key_cols: list[sa.Column[Any]],
    expired: ColumnElement[bool],
    after: Key | None,
    limit: int,
    dialect: sa.Dialect,
) -> ReturningDelete[Any] | None:
    """The DELETE ... RETURNING key of the next `limit` expired rows after `after`, or None
    when the backend has no such statement."""
    where = expired if after is None else sa.and_(expired, _key_after(key_cols, after))
    if not dialect.delete_returning:
        return None
    if dialect.name in ("postgresql", "sqlite"):
        picked = sa.select(*key_cols).where(where).order_by(*key_cols).limit(limit)
        if dialect.name == "postgresql":
            picked = picked.with_for_update()
        chosen = key_cols[0].in_(picked) if len(key_cols) == 1 else sa.tuple_(*key_cols).in_(picked)
        return sa.delete(table).where(chosen).returning(*key_cols)
    if dialect.name in ("mysql", "mariadb"):
        return (
            sa.delete(table)
            .where(where)
            .with_dialect_options(mysql_limit=limit)
            .returning(*key_cols)
        )
    return None
