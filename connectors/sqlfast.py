"""The set-based delete batch: one statement selects the next expired rows and deletes them.

    WITH picked AS MATERIALIZED (SELECT key FROM t WHERE <expired> AND key > :after
                                 ORDER BY key LIMIT :n FOR UPDATE)
    DELETE FROM t USING picked WHERE t.key = picked.key AND <expired>
    RETURNING key                                                           -- PostgreSQL

    DELETE FROM t WHERE key IN (SELECT key FROM t WHERE <expired> AND key > :after
                                ORDER BY key LIMIT :n) AND <expired>
    RETURNING key                                                           -- SQLite

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
    picked = sa.select(*key_cols).where(where).order_by(*key_cols).limit(limit)
    if dialect.name == "postgresql":
        # A materialised CTE, evaluated once. As `key IN (SELECT … LIMIT n FOR UPDATE)` the
        # planner may put the subquery on the inner side of a nested loop and scan it again
        # for every outer row; each rescan's LockRows skips the rows this statement already
        # deleted and returns the next n, so one DELETE took every expired row at once.
        chosen = picked.with_for_update().cte("picked").prefix_with("MATERIALIZED")
        match = sa.and_(*(c == chosen.c[c.name] for c in key_cols))
        # The chosen rows are judged again (tenant, cutoff, conditions) by the DELETE itself:
        # only rows that passed go, even when a key names more than one row.
        return sa.delete(table).where(match, expired).returning(*key_cols)
    if dialect.name == "sqlite":  # a subquery that is not correlated is evaluated once
        inside = key_cols[0].in_(picked) if len(key_cols) == 1 else sa.tuple_(*key_cols).in_(picked)
        return sa.delete(table).where(inside, expired).returning(*key_cols)
    if dialect.name in ("mysql", "mariadb"):
        return (
            sa.delete(table)
            .where(where)
            .with_dialect_options(mysql_limit=limit)
            .returning(*key_cols)
        )
    return None
