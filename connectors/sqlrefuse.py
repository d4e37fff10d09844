"""Which rows of the subject's table (or of a dependent's, a related table's) a batch's DELETE
would reach through the database's own ON DELETE keys though they are not the batch's, and the
refusal of such a batch (`RowsRefused`, before the DELETE, inside its transaction), so that
worker/isolation.py blocks the rows that reach them. connectors/sqlreach.py counts what the
keys do; this module keeps them from doing it to a row outside the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.base import ForeignKeyRef, RefAction, RowsRefused, SchemaError
from connectors.sqlreach import MAX_DEPTH, Predicate, RefsTo, TableOf, closure, pointing_at

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
    is run. Raises SchemaError when acting keys go on past MAX_DEPTH tables: what lies
    beyond is not checked, so such a delete is not done (the rule fails with that
    message)."""
    found: list[Way] = []
    aim = table.name if goal is None else goal.name

    def follow(current: sa.Table, match: Predicate, chain: tuple[ForeignKeyRef, ...]) -> None:
        if len(chain) >= MAX_DEPTH:
            if any(not r.on_delete.blocks for r in refs_all(current.name)):
                # Not followed further, so not known to stay out of the table: refuse.
                raise SchemaError(
                    f"deleting rows of {table.name}: the ON DELETE keys reach {current.name} "
                    f"through {MAX_DEPTH} tables ({' -> '.join(r.table for r in chain)}) and "
                    "go on; the worker does not follow them further, so it cannot tell that a "
                    "delete stays within its batch: refused (make a key of that chain "
                    "RESTRICT, or map the tables as dependents)"
                )
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
                # with the rows it reaches through its own keys (a reply to a deleted note)
                follow(referencing, closure(referencing, nxt, refs_all), (*chain, ref))

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
