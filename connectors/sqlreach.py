"""Which rows a change reaches, per table, in the SQL connector: what `plan` counts, and the
rows the database's own foreign keys delete or update with a batch, which a run counts.

A change is described as SQL predicates per table, never as rows fetched:

    deleted[T]  rows of T that go (a subject, its dependents, related rows, and, through each
                ON DELETE CASCADE foreign key pointing at a table with deleted rows, the rows
                that reference them, recursively)
    updated[T]  rows of T that change without going (anonymised subject or related rows; rows
                an ON DELETE SET NULL / SET DEFAULT foreign key rewrites)

and each table is counted once, with the union of its predicates (`COUNT(*) WHERE p1 OR
p2 ...`), so a row that two paths reach counts once, as the database changes it once. A row
both updated and deleted counts as deleted.

`plan` builds the whole change of a rule (`preview`). A run counts, inside each batch's
transaction and just before each DELETE statement, only what the foreign keys add to that
statement (`cascaded`): rows that its dependents' statements already removed no longer
reference it, so nothing is counted twice.

The foreign keys are those `Connector.foreign_keys_to` reports (the live schema). The keys of
the subject's table (and a dependent's, a related table's) to itself are left out of the
counts: a batch never deletes a row that a row of its own table outside the batch references
through a CASCADE, SET NULL or SET DEFAULT key (connectors/sqlrefuse.py), so such a key
reaches only rows the batch deletes itself. A table the cascades reach is different: its own
keys to itself take further rows of it (a reply to a deleted note, a reply to that reply, any
depth: `closure`), which are counted.
A key of a table outside the default schema (another PostgreSQL schema, another MariaDB
database) is neither followed nor counted: a DELETE whose rows an acting one references is
refused (connectors/sqloutside.py).
RESTRICT / NO ACTION add nothing here: they refuse the delete (see worker/checks.py). A row
inserted by another session between the count and the DELETE is not counted: the subject's
rows are locked, rows referencing them are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.anonymise import done_clause
from connectors.base import (
    Change,
    ColumnMask,
    Dependent,
    ForeignKeyRef,
    RefAction,
    RowsRefused,
    Target,
)
from connectors.sqloutside import refuse_outside

Predicate = ColumnElement[bool]
TableOf = Callable[[str], sa.Table]
RefsTo = Callable[[str], list[ForeignKeyRef]]
TenantOf = Callable[[sa.Table, Target], Predicate | None]

# A chain of cascades deeper than this is not followed further (MariaDB stops at 15 itself).
MAX_DEPTH = 15


def pointing_at(
    own: Sequence[ColumnElement[Any]], parent: sa.Table, parent_cols: list[str], where: Predicate
) -> Predicate:
    """`own` columns IN (the `parent_cols` of the `parent` rows matching `where`)."""
    picked = sa.select(*(parent.c[c] for c in parent_cols)).where(where).correlate(None)
    if len(own) == 1:
        return own[0].in_(picked)
    return sa.tuple_(*own).in_(picked)


class Reach:
    """The rows a change reaches, as predicates per table (see the module docstring).

    `table_of` gives a reflected table by name; `refs_to` the foreign keys pointing at a
    table; `refs_all` every key pointing at it, its own included: a table the cascades reach
    loses, with the rows they reach, every row its own CASCADE keys reach in turn, and its
    SET NULL / SET DEFAULT keys to itself change rows (`closure`). `outside` lists the keys
    of tables outside the default schema pointing at a table (connectors/sqloutside.py):
    each acting one met where rows go is kept in `self.outside` (the key, the table whose
    rows go, their predicate), for `refuse_outside`; none is followed or counted. Raises
    what they raise (`SchemaError`, `ConnectorError`).
    """

    def __init__(
        self,
        table_of: TableOf,
        refs_to: RefsTo,
        refs_all: RefsTo | None = None,
        outside: RefsTo | None = None,
    ) -> None:
        self._table_of = table_of
        self._refs_to = refs_to
        self._refs_all = refs_all
        self._outside = outside
        self.deleted: dict[str, list[Predicate]] = {}
        self.updated: dict[str, list[Predicate]] = {}
        self.outside: list[tuple[ForeignKeyRef, sa.Table, Predicate]] = []

    def delete(self, table: sa.Table, where: Predicate, _path: tuple[str, ...] = ()) -> None:
        """The rows of `table` matching `where` go: count them, and follow the foreign keys."""
        self.deleted.setdefault(table.name, []).append(where)
        self.follow(table, where, _path)

    def update(self, table: sa.Table, where: Predicate) -> None:
        """The rows of `table` matching `where` change in place."""
        self.updated.setdefault(table.name, []).append(where)

    def follow(self, table: sa.Table, where: Predicate, _path: tuple[str, ...] = ()) -> None:
        """What the database's foreign keys do when the rows of `table` matching `where` are
        deleted: those rows themselves are not counted."""
        path = (*_path, table.name)
        if len(path) > MAX_DEPTH:
            return
        if self._outside is not None:
            acting = (r for r in self._outside(table.name) if not r.on_delete.blocks)
            self.outside.extend((ref, table, where) for ref in acting)
        for ref in self._refs_to(table.name):
            if ref.table in path or ref.on_delete.blocks:
                continue
            referencing = self._table_of(ref.table)
            own = [referencing.c[c] for c in ref.columns]
            match = pointing_at(own, table, list(ref.referred_columns), where)
            if ref.on_delete is RefAction.CASCADE:
                self._cascade_into(referencing, match, path)
            else:  # SET NULL, SET DEFAULT
                self.update(referencing, match)

    def _cascade_into(self, table: sa.Table, match: Predicate, path: tuple[str, ...]) -> None:
        """The rows of `table` matching `match` go through a cascade, and with them the rows
        of `table` its own keys reach (a reply to a deleted note, a reply to that reply)."""
        if self._refs_all is None:
            self.delete(table, match, path)
            return
        whole = closure(table, match, self._refs_all)
        self.delete(table, whole, path)
        for ref in self._refs_all(table.name):
            if ref.table == table.name and ref.on_delete in (
                RefAction.SET_NULL,
                RefAction.SET_DEFAULT,
            ):
                own = [table.c[c] for c in ref.columns]
                self.update(table, pointing_at(own, table, list(ref.referred_columns), whole))

    def counts(self, conn: Connection) -> dict[str, int]:
        """Rows per table, each counted once (tables with none left out)."""
        found: dict[str, int] = {}
        for name in dict.fromkeys([*self.deleted, *self.updated]):
            table = self._table_of(name)
            gone = sa.or_(*self.deleted[name]) if name in self.deleted else None
            count = 0
            if gone is not None:
                count += count_rows(conn, table, gone)
            if name in self.updated:
                changed = sa.or_(*self.updated[name])
                count += count_rows(conn, table, changed if gone is None else changed & ~gone)
            if count:
                found[name] = count
        return found


def count_rows(conn: Connection, table: sa.Table, where: Predicate) -> int:
    """The rows of `table` matching `where` (one COUNT on `conn`). Raises SQLAlchemy errors."""
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    )


def closure(table: sa.Table, where: Predicate, refs_all: RefsTo) -> Predicate:
    """The rows of `table` matching `where` and every row of `table` that its own ON DELETE
    CASCADE keys reach from them, recursively (a reply, a reply to it, ...; one recursive
    query, however deep, which stops on rows already reached), as a predicate over `table`
    by its primary key. `where` itself when the table has no such key, or no primary key to
    name its rows by."""
    own = [
        r
        for r in refs_all(table.name)
        if r.table == table.name and r.on_delete is RefAction.CASCADE
    ]
    key = list(table.primary_key.columns)
    if not own or not key:
        return where
    names = list(
        dict.fromkeys([*(c.name for c in key), *(c for r in own for c in r.referred_columns)])
    )
    reached = sa.select(*(table.c[n] for n in names)).where(where).cte(recursive=True)
    step = table.alias()
    links = [
        sa.and_(
            *(step.c[c] == reached.c[p] for c, p in zip(r.columns, r.referred_columns, strict=True))
        )
        for r in own
    ]
    reached = reached.union(
        sa.select(*(step.c[n] for n in names)).select_from(step.join(reached, sa.or_(*links)))
    )
    ids = sa.select(*(reached.c[c.name] for c in key)).correlate(None)
    return key[0].in_(ids) if len(key) == 1 else sa.tuple_(*key).in_(ids)


def cascaded(
    conn: Connection,
    table_of: TableOf,
    refs_to: RefsTo,
    table: sa.Table,
    where: Predicate,
    refs_all: RefsTo | None = None,
    others: Callable[[sa.Table], Predicate | None] | None = None,
    outside: RefsTo | None = None,
) -> dict[str, int]:
    """Rows per table that the foreign keys delete or update when the rows of `table`
    matching `where` are deleted (not those rows themselves); run inside the transaction,
    before the DELETE. Empty, at the cost of no query, when no such foreign key exists.
    `refs_all` and `outside` as for `Reach`. Raises RowsRefused when a key of a table
    outside the default schema would delete or change a row (`refuse_outside`), and, with
    `others` (a table's tenant filter), when a reached row of a table with the tenant column
    is another tenant's."""
    reach = Reach(table_of, refs_to, refs_all, outside)
    reach.follow(table, where)
    refuse_outside(conn, reach.outside, table.name)
    if others is not None:
        _refuse_other_tenants(conn, reach, table_of, table, others)
    return reach.counts(conn) if reach.deleted or reach.updated else {}


def _refuse_other_tenants(
    conn: Connection,
    reach: Reach,
    table_of: TableOf,
    table: sa.Table,
    tenant_of: Callable[[sa.Table], Predicate | None],
) -> None:
    """Refuse (RowsRefused) a DELETE whose ON DELETE keys would delete or change a row of
    another tenant in a table they reach that has the tenant column (`tenant_of` gives the
    tenant's filter of a table, None when it has none): another customer's rows are never
    changed by this customer's run, whatever the data's references say. A row whose tenant
    is NULL belongs to no tenant and is not counted here. Names a table and a count."""
    for name in dict.fromkeys([*reach.deleted, *reach.updated]):
        reached = table_of(name)
        tenant = tenant_of(reached)
        if tenant is None:
            continue
        rows = sa.or_(*reach.deleted.get(name, []), *reach.updated.get(name, []))
        found = count_rows(conn, reached, sa.and_(rows, sa.not_(tenant)))
        if found:
            raise RowsRefused(
                f"deleting these rows of {table.name} would also delete or change {found} "
                f"row(s) of {name} of another tenant through the database's ON DELETE keys: "
                "refused, as under RESTRICT; another customer's rows are never changed"
            )


def preview(
    conn: Connection,
    table_of: TableOf,
    refs_to: RefsTo,
    tenant_of: TenantOf,
    target: Target,
    change: Change,
    expired: Predicate,
    refs_all: RefsTo | None = None,
) -> dict[str, int]:
    """Rows per table that `change` of every row of `target` matching `expired` would change
    now: the subject rows; for delete their dependents (nested); for anonymise the related
    rows; and what foreign keys cascade from every deleted row (`refs_all` as for `Reach`).
    Nothing is changed."""
    table = table_of(target.table.name)
    reach = Reach(table_of, refs_to, refs_all)
    if change is Change.ANONYMISE:
        reach.update(table, expired)
        for rel in target.related:
            related = table_of(rel.table)
            where = _under(related, rel.references, table, expired, tenant_of(related, target))
            if rel.change is Change.DELETE:
                reach.delete(related, where)
            else:
                reach.update(related, where & _not_done(related, rel.masks, conn))
    else:
        if change is Change.DELETE:
            for dep in target.table.dependents:
                _dependent(reach, table_of, tenant_of, target, dep, table, expired)
        reach.delete(table, expired)
    return reach.counts(conn)


def _under(
    child: sa.Table,
    references: tuple[tuple[str, str], ...],
    parent: sa.Table,
    where: Predicate,
    tenant: Predicate | None,
) -> Predicate:
    own = [child.c[c] for c, _ in references]
    match = pointing_at(own, parent, [p for _, p in references], where)
    return match if tenant is None else sa.and_(match, tenant)


def _dependent(
    reach: Reach,
    table_of: TableOf,
    tenant_of: TenantOf,
    target: Target,
    dep: Dependent,
    parent: sa.Table,
    where: Predicate,
) -> None:
    table = table_of(dep.table)
    mine = _under(table, dep.references, parent, where, tenant_of(table, target))
    for child in dep.dependents:
        _dependent(reach, table_of, tenant_of, target, child, table, mine)
    reach.delete(table, mine)


def _not_done(table: sa.Table, masks: tuple[ColumnMask, ...], conn: Connection) -> Predicate:
    dialect = conn.dialect.name
    done = [done_clause(m, table.c[m.column], dialect) for m in masks]
    return sa.not_(sa.and_(*done)) if done else sa.false()
