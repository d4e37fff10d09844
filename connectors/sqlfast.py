"""The set-based delete batch: one statement selects the next expired rows and deletes them.

    DELETE FROM t WHERE ctid = ANY(ARRAY(SELECT ctid FROM t WHERE <expired> AND key > :after
                                         ORDER BY key LIMIT :n FOR UPDATE))
    RETURNING key                                                           -- PostgreSQL

    DELETE FROM t WHERE key IN (SELECT key FROM t WHERE <expired> AND key > :after
                                ORDER BY key LIMIT :n) AND <expired>
    RETURNING key                                                           -- SQLite

`<expired>` is the target's whole re-check (tenant, cutoff, conditions, holds from the
configuration), so the rows deleted are exactly expired rows of the tenant; the keys come
back for the audit trail. It replaces three statements of the page path (select a page,
lock it, delete it) and the page's round trip before the transaction. It is used only where
nothing has to happen before the rows go: no mapped dependents (deleted first), no foreign
key of another table, in any schema, pointing at the table (its cascades are counted or
refused before the DELETE: connectors/sqlreach.py, connectors/sqloutside.py), and on
PostgreSQL and SQLite 3.35+ (DELETE … RETURNING). Not on MariaDB/MySQL: InnoDB's locking
reads lock every row they read (`next_delete` says why), so there the page path runs, whose
page is read without locks.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
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
        return sa.delete(table).where(locked_tids(picked)).returning(*key_cols)
    if dialect.name == "sqlite":  # a subquery that is not correlated is evaluated once
        inside = key_cols[0].in_(picked) if len(key_cols) == 1 else sa.tuple_(*key_cols).in_(picked)
        return sa.delete(table).where(inside, expired).returning(*key_cols)
    # MariaDB/MySQL: none. InnoDB locks every row a locking statement reads, not only the
    # rows it keeps: a `DELETE … WHERE <expired> LIMIT n` that scans waits for a row another
    # session holds, of another tenant too. The page path reads its page without locks and
    # locks exactly its keys, by primary key.
    return None


def locked_tids(picked: sa.Select[Any]) -> ColumnElement[bool]:
    """`ctid = ANY(ARRAY(<picked's rows' ctid> … FOR UPDATE))`: the physical rows chosen and
    locked, once, by an uncorrelated sub-select (an InitPlan), then deleted by a TID scan.

    The row's locator, not its key: a key a partial index "proves" may name more rows than
    the chosen one. And no join the planner could get wrong: as `key IN (SELECT … LIMIT n
    FOR UPDATE)` the sub-select can land on the inner side of a nested loop and be scanned
    again for every outer row (each rescan skips the rows already deleted and locks the next
    n: one DELETE took every expired row); as a join with a CTE, a table without statistics
    got a nested loop over 10,000 × 100,000 rows. The TID scan is chosen with or without
    statistics.
    """
    tid: ColumnElement[Any] = sa.literal_column("ctid")
    chosen = picked.with_only_columns(tid).with_for_update()
    return tid == sa.any_(_ArrayOf(chosen.scalar_subquery()))


class _ArrayOf(ColumnElement[Any]):
    """PostgreSQL's `ARRAY(subquery)`: the sub-select's rows as one array."""

    inherit_cache = True

    def __init__(self, subquery: ColumnElement[Any]) -> None:
        self.subquery = subquery
        self.type = sa.types.NullType()


@compiles(_ArrayOf, "postgresql")
def _compile_array_of(element: _ArrayOf, compiler: Any, **kw: Any) -> str:
    return f"ARRAY{compiler.process(element.subquery, **kw)}"
