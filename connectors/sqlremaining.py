"""Which keys an earlier change has not reached (`Connector.remaining` in SQL), read so that a
change still in flight is waited for and its result read.

The question is asked of a batch whose outcome is unknown: after a lost COMMIT reply
(worker/batchsteps.py), and by a run that settles an intent without an outcome
(worker/settlebatch.py). That batch's transaction may still be in flight: its run starved
past its lease, its intent recorded, its COMMIT not yet done. A plain read does not see its
uncommitted change and would answer "still there" for rows that COMMIT then deletes. So
the rows are read in a transaction of their own (`connectors.session.locking`) under the
lock a batch takes, which waits for that transaction and then reads what it left:

- PostgreSQL: `SELECT … FOR UPDATE` (READ COMMITTED) waits for the row locks of the batch's
  DELETE or UPDATE; then it skips a row a committed DELETE removed and returns the new
  version of a row a committed UPDATE changed;
- MariaDB/MySQL (InnoDB): the locking read waits the same way and reads the latest committed
  version of a row, not the transaction's snapshot;
- SQLite: the transaction begins as a writer (`BEGIN IMMEDIATE`), which waits for the
  batch's write transaction to end; what it reads then is committed.

A rolled-back batch leaves its rows as they were: they are found. Anonymise's "not yet
masked" is computed in the select list, on the row the read returns once it holds the
lock, whatever a database re-checks of a WHERE after a wait. The wait is bounded by the
session's lock timeout (connectors/session.py): a transaction in flight for longer raises
`LockTimeout`, and nothing is answered. Only the rows asked about are locked, for the one
statement (a table without a key is scanned: on InnoDB each row scanned is locked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import Key
from connectors.sqlchange import key_in


def keys_remaining(
    conn: Connection,
    key_cols: Sequence[sa.Column[Any]],
    keys: Sequence[Key],
    tenant: ColumnElement[bool] | None,
    not_done: ColumnElement[bool] | None,
) -> set[Key]:
    """The `keys` of the tenant's rows still there, locked; with `not_done` (anonymise's
    "not yet masked"), only the rows for which it holds on the locked row."""
    clauses = [key_in(key_cols, keys, conn.dialect.name)]
    if tenant is not None:
        clauses.append(tenant)
    width = len(key_cols)
    pending = [] if not_done is None else [sa.case((not_done, 1), else_=0)]
    query = sa.select(*key_cols, *pending).where(*clauses).with_for_update()
    return {tuple(row[:width]) for row in conn.execute(query) if all(row[width:])}


def rows_remaining(
    conn: Connection, table: sa.Table, rows: Sequence[Key], tenant: ColumnElement[bool] | None
) -> set[Key]:
    """Which of these rows' values (every column, NULL = NULL) are still in the table, read
    locked."""
    columns = list(table.c)
    same = [
        sa.and_(*(c.is_not_distinct_from(v) for c, v in zip(columns, row, strict=True)))
        for row in rows
    ]
    query = sa.select(*columns).where(sa.or_(*same))
    if tenant is not None:
        query = query.where(tenant)
    found = {tuple(r) for r in conn.execute(query.with_for_update())}
    return {row for row in rows if row in found}
