"""The set-based delete batch: one statement selects the next expired rows and deletes them.

    DELETE FROM ONLY t WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY t WHERE <expired>
                                              AND key > :after ORDER BY key LIMIT :n
                                              FOR UPDATE))
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
PostgreSQL and SQLite 3.35+ (DELETE … RETURNING). A `ctid` is unique only within one
physical table: PostgreSQL's batch takes only rows of the table's own (`FROM ONLY`), and the
rows of a partitioned table's partitions are left to the page path, by key (a key on a table
other tables inherit from is refused by the schema check, connectors/sqlinherit.py; should
one appear after the check, its children's rows are left to the page path too). Not on
MariaDB/MySQL: InnoDB's locking reads lock every row they read (`next_delete` says why), so
there the page path runs, whose page is read without locks.
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

        WITH rw_chosen AS (SELECT ARRAY(SELECT ctid FROM ONLY t … FOR UPDATE) AS tids),
             rw_gone AS (DELETE FROM ONLY t WHERE ctid = ANY(CAST((SELECT tids FROM rw_chosen)
                                                                  AS tid[])) RETURNING key)
        SELECT key, (SELECT CASE WHEN <t has partitions or inheritance children> THEN NULL
                                 ELSE cardinality(tids) END FROM rw_chosen) FROM rw_gone

    The rows are chosen, locked and deleted as `locked_tids` says, once. A row another
    transaction changed while the choice waited for its lock is chosen in its new version,
    whose locator the DELETE's snapshot does not see: that row stays, and fewer rows come
    back than were chosen (the caller then confirms from the first key). Both counts equal
    means every chosen row is gone.

    Only rows of `t`'s own physical table (`ONLY`): a `ctid` chosen in one partition or
    inheritance child also names the row at that place in every other (another tenant's, one
    inside its period). Where `t` has such tables the count is NULL: the selection left their
    rows out, and the caller confirms by a page, by key."""
    tid: ColumnElement[Any] = sa.literal_column("ctid")
    choice = picked.with_only_columns(tid).select_from(table).with_for_update()
    choice = choice.with_hint(table, "ONLY", "postgresql")
    chosen = sa.select(_ArrayOf(choice.scalar_subquery()).label("tids")).cte(CHOSEN)
    tids = sa.cast(sa.select(chosen.c.tids).scalar_subquery(), postgresql.ARRAY(_Tid()))
    gone = sa.delete(table).where(tid == sa.any_(tids)).with_hint("ONLY", dialect_name="postgresql")
    gone_rows = gone.returning(*key_cols).cte("rw_gone")
    # No count where rows of other physical tables were left out: not the whole selection
    counted = sa.case((_has_children(table), sa.null()), else_=sa.func.cardinality(chosen.c.tids))
    count = sa.select(counted).scalar_subquery()
    return sa.select(*gone_rows.c, count.label(CHOSEN))


def _has_children(table: sa.Table) -> ColumnElement[bool]:
    """Whether `table` is a partitioned table or an inheritance parent on PostgreSQL: rows of
    it then live in other physical tables too (`pg_inherits`)."""
    inherits = sa.table("pg_inherits", sa.column("inhparent"), schema="pg_catalog")
    quoted = ".".join('"' + p.replace('"', '""') + '"' for p in (table.schema, table.name) if p)
    name = sa.literal(quoted, sa.Text)
    return sa.exists().where(inherits.c.inhparent == sa.cast(name, postgresql.REGCLASS))


def one_table_tids(table: sa.Table, where: ColumnElement[bool], limit: int) -> ColumnElement[bool]:
    """PostgreSQL's keyless batch: `locked_tids` of up to `limit` rows matching `where`, all
    of one physical table (`tableoid`), that of some row matching `where`::

        WITH rw_rel AS (SELECT tableoid AS rel FROM t WHERE <where> LIMIT 1)
        … ctid = ANY(ARRAY(SELECT ctid FROM t WHERE <where> AND tableoid = (SELECT rel …)
                           LIMIT n FOR UPDATE)) AND tableoid = (SELECT rel FROM rw_rel)

    A row's `ctid` is unique only within its physical table: in a partitioned table, or one
    with inheritance children, a locator chosen in one also names the row at that place in
    every other. The CTE is evaluated once, so both sides name the same table. Each batch
    takes the rows of one physical table; the next finds the rest."""
    oid: ColumnElement[Any] = sa.literal_column("tableoid")
    rel = sa.select(oid.label("rel")).select_from(table).where(where).limit(1).cte("rw_rel")
    same = oid == sa.select(rel.c.rel).scalar_subquery()
    tid: ColumnElement[Any] = sa.literal_column("ctid")
    picked = sa.select(tid).select_from(table).where(where, same).limit(limit)
    return sa.and_(locked_tids(picked), same)


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
