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

The foreign keys are those `Connector.foreign_keys_to` reports (the live schema); a table's
references to itself are left out of the counts: a batch never deletes a row that a row of
its own table outside the batch references through a CASCADE, SET NULL or SET DEFAULT key
(`refuse_self_reach`), so such a key reaches only rows the batch deletes itself.
RESTRICT / NO ACTION add nothing here: they refuse the delete (see worker/checks.py). A row
inserted by another session between the count and the DELETE is not counted: the subject's
rows are locked, rows referencing them are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    table. Raises what they raise (`SchemaError`, `ConnectorError`).
    """

    def __init__(self, table_of: TableOf, refs_to: RefsTo) -> None:
        self._table_of = table_of
        self._refs_to = refs_to
        self.deleted: dict[str, list[Predicate]] = {}
        self.updated: dict[str, list[Predicate]] = {}

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
        for ref in self._refs_to(table.name):
            if ref.table in path or ref.on_delete.blocks:
                continue
            referencing = self._table_of(ref.table)
            own = [referencing.c[c] for c in ref.columns]
            match = pointing_at(own, table, list(ref.referred_columns), where)
            if ref.on_delete is RefAction.CASCADE:
                self.delete(referencing, match, path)
            else:  # SET NULL, SET DEFAULT
                self.update(referencing, match)

    def counts(self, conn: Connection) -> dict[str, int]:
        """Rows per table, each counted once (tables with none left out)."""
        found: dict[str, int] = {}
        for name in dict.fromkeys([*self.deleted, *self.updated]):
            table = self._table_of(name)
            gone = sa.or_(*self.deleted[name]) if name in self.deleted else None
            count = 0
            if gone is not None:
                count += _count(conn, table, gone)
            if name in self.updated:
                changed = sa.or_(*self.updated[name])
                count += _count(conn, table, changed if gone is None else changed & ~gone)
            if count:
                found[name] = count
        return found


def _count(conn: Connection, table: sa.Table, where: Predicate) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    )


def cascaded(
    conn: Connection, table_of: TableOf, refs_to: RefsTo, table: sa.Table, where: Predicate
) -> dict[str, int]:
    """Rows per table that the foreign keys delete or update when the rows of `table`
    matching `where` are deleted (not those rows themselves); run inside the transaction,
    before the DELETE. Empty, at the cost of no query, when no such foreign key exists."""
    reach = Reach(table_of, refs_to)
    reach.follow(table, where)
    return reach.counts(conn) if reach.deleted or reach.updated else {}


def preview(
    conn: Connection,
    table_of: TableOf,
    refs_to: RefsTo,
    tenant_of: TenantOf,
    target: Target,
    change: Change,
    expired: Predicate,
) -> dict[str, int]:
    """Rows per table that `change` of every row of `target` matching `expired` would change
    now: the subject rows; for delete their dependents (nested); for anonymise the related
    rows; and what foreign keys cascade from every deleted row. Nothing is changed."""
    table = table_of(target.table.name)
    reach = Reach(table_of, refs_to)
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


Way = tuple[tuple[ForeignKeyRef, ...], Predicate]


def ways_back(
    table_of: TableOf,
    refs_all: RefsTo,
    table: sa.Table,
    outside: sa.FromClause,
    where: Predicate,
    goal: sa.Table | None = None,
) -> list[Way]:
    """Each way a DELETE of `table`'s rows matching `where` reaches rows of `table` again
    through ON DELETE keys that act (CASCADE, SET NULL, SET DEFAULT): a key of the table to
    itself, or a cycle through other tables' cascades (note(child_id) → child(id) CASCADE,
    child(note_id) → note(id) SET NULL). Each is the keys followed and a predicate over
    `outside` (an alias of `table`, or of `goal`) for the rows reached. With `goal`, the
    ways reach rows of `goal` instead (a dependent's delete reaching the subject's table).
    `refs_all(name)` lists every key pointing at table `name`, its own included. No query
    is run."""
    found: list[Way] = []
    aim = table.name if goal is None else goal.name

    def follow(current: sa.Table, match: Predicate, chain: tuple[ForeignKeyRef, ...]) -> None:
        if len(chain) >= MAX_DEPTH:
            return
        for ref in refs_all(current.name):
            if ref.on_delete.blocks:
                continue
            if ref.table == aim:
                own = [outside.c[c] for c in ref.columns]
                reached = pointing_at(own, current, list(ref.referred_columns), match)
                found.append(((*chain, ref), reached))
            elif ref.on_delete is RefAction.CASCADE and ref.table not in {r.table for r in chain}:
                referencing = table_of(ref.table)
                own = [referencing.c[c] for c in ref.columns]
                nxt = pointing_at(own, current, list(ref.referred_columns), match)
                follow(referencing, nxt, (*chain, ref))

    follow(table, where, ())
    return found


def refuse_reach_back(
    conn: Connection,
    ways: list[Way],
    table: sa.Table,
    outside: sa.FromClause,
    key_cols: list[sa.Column[Any]],
    where: Predicate,
    start: str | None = None,
) -> None:
    """Refuse (RowsRefused, before the DELETE, inside the batch's transaction) a batch of
    `table`'s rows matching `where` when one of `ways` (`ways_back`) reaches a row of `table`
    outside the batch: its ON DELETE would delete or change that row with the batch, though
    it is not expired, held, or of this tenant, and the trail would not name it. The worker
    then splits the batch until the rows that reach it are refused alone
    (worker/isolation.py): they stay, as under RESTRICT, and `batch.blocked` names them; they
    go in a later run, once nothing outside their batch is reached. `start` names the table
    whose rows the DELETE removes when it is not `table` (a dependent's reaching the
    subject's). The message names the keys and a count, never a value."""
    keys = sa.select(*key_cols).where(where).correlate(None)
    theirs = [outside.c[c.name] for c in key_cols]
    inside = theirs[0].in_(keys) if len(theirs) == 1 else sa.tuple_(*theirs).in_(keys)
    for chain, reached in ways:
        query = sa.select(sa.func.count()).select_from(outside).where(reached, sa.not_(inside))
        found = int(conn.execute(query).scalar_one())
        if found:
            verb = "delete" if chain[-1].on_delete is RefAction.CASCADE else "change"
            keys_text = ", then ".join(
                f"{r.table}({', '.join(r.columns)}) → {r.referred_table}"
                f"({', '.join(r.referred_columns)}) ON DELETE {r.on_delete}"
                for r in chain
            )
            raise RowsRefused(
                f"deleting these rows of {start or table.name} would also {verb} {found} "
                f"row(s) of "
                f"{table.name} outside the batch ({keys_text}): refused, as under RESTRICT; "
                "they stay until nothing outside their batch is reached"
            )


@dataclass
class Kept:
    """The subject's rows a batch's other DELETEs (its dependents', its related rows') must
    not reach through ON DELETE keys, except `inside` (a predicate over `table`: the batch's
    own subject rows when they go too; `sa.false()` when they are only anonymised).
    `reached` records whether any such way exists: the subject's DELETE then counts the
    rows that went by what is left, not by RETURNING (a dependent's cascade may take one
    first)."""

    table: sa.Table
    key_cols: list[sa.Column[Any]]
    inside: Predicate
    reached: bool = False


def refuse_reaching(
    conn: Connection,
    table_of: TableOf,
    refs_all: RefsTo,
    table: sa.Table,
    where: Predicate,
    kept: Kept,
) -> int | None:
    """Before a DELETE of `table`'s rows matching `where` (a dependent's or a related
    table's, in the batch's transaction): refuse it (RowsRefused) when its ON DELETE keys
    reach a row of `table` outside `where`, or a row of the subject's table other than
    `kept.inside` (a recent child, another tenant's: `refuse_reach_back`). A table without a
    primary key that its keys reach again is refused: its rows cannot be told apart.
    Returns the rows of `table` that go, counted before the DELETE when a way back exists
    (a cascade within them can take one before the statement reaches it, which its
    rowcount then leaves out); None when the DELETE's rowcount is exact."""
    going: int | None = None
    outside = table.alias("reached")
    back = ways_back(table_of, refs_all, table, outside, where)
    if back:
        key_cols = list(table.primary_key.columns)
        if not key_cols:
            last = back[0][0][-1]
            raise RowsRefused(
                f"deleting rows of {table.name} would reach rows of {table.name} again "
                f"({last.table}({', '.join(last.columns)}) ON DELETE {last.on_delete}), and "
                f"{table.name} has no primary key to tell this batch's rows from others: "
                "refused"
            )
        refuse_reach_back(conn, back, table, outside, key_cols, where)
        counted = sa.select(sa.func.count()).select_from(table).where(where)
        going = int(conn.execute(counted).scalar_one())
    if table.name != kept.table.name:
        theirs = kept.table.alias("reached_subject")
        ways = ways_back(table_of, refs_all, table, theirs, where, goal=kept.table)
        if ways:
            kept.reached = True
            refuse_reach_back(
                conn, ways, kept.table, theirs, kept.key_cols, kept.inside, start=table.name
            )
    return going
