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
from sqlalchemy.dialects import postgresql
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
) -> ReturningDelete[Any] | sa.Select[Any] | None:
    """The DELETE ... RETURNING key of the next `limit` expired rows after `after`, or None
    when the backend has no such statement. On PostgreSQL each row holds the count of rows
    chosen after the key (`chosen_delete`)."""
    where = expired if after is None else sa.and_(expired, _key_after(key_cols, after))
    if not dialect.delete_returning:
        return None
    picked = sa.select(*key_cols).where(where).order_by(*key_cols).limit(limit)
    if dialect.name == "postgresql":
        return chosen_delete(table, key_cols, picked)
    if dialect.name == "sqlite":  # a subquery that is not correlated is evaluated once
        inside = key_cols[0].in_(picked) if len(key_cols) == 1 else sa.tuple_(*key_cols).in_(picked)
        return sa.delete(table).where(inside, expired).returning(*key_cols)
    # MariaDB/MySQL: none. InnoDB locks every row a locking statement reads, not only the
    # rows it keeps: a `DELETE … WHERE <expired> LIMIT n` that scans waits for a row another
    # session holds, of another tenant too. The page path reads its page without locks and
    # locks exactly its keys, by primary key.
    return None


CHOSEN = "rw_chosen"
"""The label of the count of rows a PostgreSQL batch chose, after the keys it deleted."""


def chosen_delete(
    table: sa.Table, key_cols: list[sa.Column[Any]], picked: sa.Select[Any]
) -> sa.Select[Any]:
    """PostgreSQL's set-based batch: each deleted row's key and, after it, how many rows
    the batch chose (`CHOSEN`)::

        WITH rw_chosen AS (SELECT ARRAY(SELECT ctid … FOR UPDATE) AS tids),
             rw_gone AS (DELETE FROM t WHERE ctid = ANY(CAST((SELECT tids FROM rw_chosen)
                                                             AS tid[])) RETURNING key)
        SELECT key, (SELECT cardinality(tids) FROM rw_chosen) FROM rw_gone

    The rows are chosen, locked and deleted as `locked_tids` says, once. A row another
    transaction changed while the choice waited for its lock is chosen in its new version,
    whose locator the DELETE's snapshot does not see: that row stays, and fewer rows come
    back than were chosen (the caller then confirms from the first key). Both counts equal
    means every chosen row is gone."""
    tid: ColumnElement[Any] = sa.literal_column("ctid")
    choice = picked.with_only_columns(tid).with_for_update()
    chosen = sa.select(_ArrayOf(choice.scalar_subquery()).label("tids")).cte(CHOSEN)
    tids = sa.cast(sa.select(chosen.c.tids).scalar_subquery(), postgresql.ARRAY(_Tid()))
    gone = sa.delete(table).where(tid == sa.any_(tids)).returning(*key_cols).cte("rw_gone")
    count = sa.select(sa.func.cardinality(chosen.c.tids)).scalar_subquery()
    return sa.select(*gone.c, count.label(CHOSEN))


class _Tid(sa.types.UserDefinedType[Any]):
    """PostgreSQL's `tid`, a row's physical locator (only ever cast to, as `tid[]`)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "tid"


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
