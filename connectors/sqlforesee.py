"""The eligible rows of a rule that a run would block, foreseen by `plan` (nothing is changed).

A run refuses, inside each batch's transaction, a DELETE whose acting ON DELETE keys
(CASCADE, SET NULL, SET DEFAULT) would reach a row of the subject's table outside the batch
(connectors/sqlrefuse.py), another tenant's row (connectors/sqlreach.py
`_refuse_other_tenants`) or a row of a table outside the product's schema
(connectors/sqloutside.py), and an anonymise UPDATE whose acting ON UPDATE keys would change
such a row or a row of one of the rule's related tables (connectors/sqlupdatereach.py). The
worker splits a refused batch until the rows that reach such a row stand alone: they stay
(`batch.blocked`, the run partial).

`plan` treats the rule's whole eligible set `E` (the customer's rows past the cutoff, holds
excluded) as one batch and walks the same acting keys from the subject's table (`blocking`),
each way ending in the rows the run must not touch (a row of the subject's table not in `E`,
another tenant's row, any row of a table outside the schema, any row of a related table).
Walked back along the same keys (`_back`), each way gives the rows of `E` that reach such a
row: those a run blocks, whatever its batches. The figure is a lower bound ("at least"): a
run blocks rows batch by batch, so an eligible row that reaches an eligible row of another
batch may be blocked too (when its batch comes first, or is split away from it); ways
through a reached table's own keys (a reply to a deleted note), through the rule's mapped
dependents and related rows, and an ON UPDATE cascade's further keys are not walked; a batch
that singles out more than `worker.isolation.BLOCKED_LIMIT` rows reports the rest blocked
unresolved. For a delete, a blocked row stays, so the eligible rows it references through
the table's own acting keys are blocked too, and so on along the chain (`spread`, at most
SPREAD_LIMIT rows). Messages and reasons name keys and tables, never a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.anonymise import done_clause
from connectors.base import Change, ForeignKeyRef, RefAction, Target
from connectors.sqlchange import key_in
from connectors.sqlreach import MAX_DEPTH, Predicate, TableOf, count_rows
from connectors.sqlupdatereach import UpdateKeys


@dataclass(frozen=True)
class Way:
    """A way a change of the subject's rows reaches rows it must not touch: the keys
    followed from the subject's table (`chain`, the first referring to it), the table (or
    alias) the last key belongs to, the predicate over it of the rows that must not be
    touched, the reason as text (keys and tables, never a value), and `moving`, a predicate
    over the subject's table of the rows whose change sets the first key off (for anonymise:
    a referenced masked column not yet in its anonymised form, as a run follows only the
    rows whose value changes; true for a delete)."""

    chain: tuple[ForeignKeyRef, ...]
    last: sa.FromClause
    bad: Predicate
    reason: str
    moving: Predicate


def _keys_text(chain: Sequence[ForeignKeyRef], on: str) -> str:
    return ", then ".join(
        f"{r.qualified}({', '.join(r.columns)}) → {r.referred_table}"
        f"({', '.join(r.referred_columns)}) ON {on} "
        f"{r.on_delete if on == 'DELETE' else r.on_update}"
        for r in chain
    )


def blocking(
    keys: UpdateKeys,
    table: sa.Table,
    target: Target,
    change: Change,
    eligible: Predicate,
    dialect: str = "",
) -> list[Way]:
    """Each way a `change` of `table`'s rows matching `eligible` (the subject's table of
    `target`) reaches a row a run refuses to touch (see the module docstring): for delete
    and unlink the acting ON DELETE keys, followed through the CASCADE keys of other tables
    up to MAX_DEPTH; for anonymise the acting ON UPDATE keys referencing a masked column
    of `table` (none of which may change a row of the rule's related tables). `keys` gives
    the reflected tables, every key of the default schema pointing at a table, those of
    tables outside it, and a table's tenant filter (None: no tenant column); `dialect` (the
    SQLAlchemy dialect name) builds the masks' done tests. No query is run; raises what
    `keys` raise (SchemaError, ConnectorError)."""
    table_of, refs_all, refs_outside, tenant_of = (
        keys.table_of,
        keys.refs_all,
        keys.refs_outside,
        keys.tenant_of,
    )
    key_cols = [table.c[k] for k in target.table.key]
    related = {r.table for r in target.related}
    masked = {m.column: m for m in target.masks}
    found: list[Way] = []
    outer = table.alias("reached")
    mine = sa.select(*key_cols).where(eligible).correlate(None)
    theirs = [outer.c[c.name] for c in key_cols]
    not_eligible = sa.not_(
        theirs[0].in_(mine) if len(theirs) == 1 else sa.tuple_(*theirs).in_(mine)
    )
    on = "UPDATE" if change is Change.ANONYMISE else "DELETE"

    def moving(first: ForeignKeyRef) -> Predicate:
        """The subject's rows whose value of a masked column `first` references changes."""
        if change is not Change.ANONYMISE:
            return sa.true()
        done = [
            done_clause(masked[c], table.c[c], dialect)
            for c in first.referred_columns
            if c in masked
        ]
        return sa.or_(*(sa.not_(d) for d in done))

    def acts(ref: ForeignKeyRef) -> bool:
        if change is Change.ANONYMISE:
            return not ref.on_update.blocks and any(c in masked for c in ref.referred_columns)
        return not ref.on_delete.blocks

    def follow(current: sa.Table, chain: tuple[ForeignKeyRef, ...]) -> None:
        if len(chain) >= MAX_DEPTH:
            return  # a run refuses such a delete as a rule failure (sqlrefuse.ways_back)
        for ref in refs_outside(current.name):
            if acts(ref):
                other = sa.table(ref.table, *(sa.column(c) for c in ref.columns), schema=ref.schema)
                way = (*chain, ref)
                text = f"a row of {ref.qualified}, outside the product's schema"
                text = f"{text} ({_keys_text(way, on)})"
                found.append(Way(way, other, sa.true(), text, moving(way[0])))
        for ref in refs_all(current.name):
            if not acts(ref):
                continue
            way = (*chain, ref)
            keys = _keys_text(way, on)
            if ref.table == table.name:
                text = f"a row of {table.name} that is not eligible ({keys})"
                found.append(Way(way, outer, not_eligible, text, moving(way[0])))
                continue
            if ref.table == current.name or ref.table in {r.table for r in chain}:
                continue  # a reached table's own keys: not walked (a lower bound)
            referencing = table_of(ref.table)
            if ref.table in related:
                text = f"a row of {ref.table}, a related table of the rule ({keys})"
                found.append(Way(way, referencing, sa.true(), text, moving(way[0])))
                continue
            tenant = tenant_of(referencing)
            if tenant is not None:
                text = f"another tenant's row of {ref.table} ({keys})"
                found.append(Way(way, referencing, sa.not_(tenant), text, moving(way[0])))
            if change is not Change.ANONYMISE and ref.on_delete is RefAction.CASCADE:
                follow(referencing, way)

    follow(table, ())
    return found


def _back(table_of: TableOf, way: Way) -> Predicate:
    """The rows of the subject's table (the first key's referred table) from which `way`
    reaches a row matching `way.bad` (and whose change sets the way off, `way.moving`): its
    keys walked back, one IN (subquery) per key."""
    source: sa.FromClause = way.last
    where = way.bad
    for ref in reversed(way.chain):
        picked = sa.select(*(source.c[c] for c in ref.columns)).where(where).correlate(None)
        parent = table_of(ref.referred_table)
        cols = [parent.c[c] for c in ref.referred_columns]
        where = cols[0].in_(picked) if len(cols) == 1 else sa.tuple_(*cols).in_(picked)
        source = parent
    return sa.and_(where, way.moving)


@dataclass(frozen=True)
class Blocked:
    """What `foresee` found: `blocked`, the eligible rows a run would block at least (each
    counted once); `reasons`, rows per reason (a row may count under several); `where`, a
    predicate over the subject's table of those rows (None when there are none)."""

    blocked: int
    reasons: dict[str, int]
    where: Predicate | None


def foresee(
    conn: Connection, table_of: TableOf, table: sa.Table, eligible: Predicate, ways: list[Way]
) -> Blocked:
    """Count the rows of `table` matching `eligible` that `ways` (`blocking`) reach a row
    a run refuses to touch from: one COUNT per way, and one for them all. No query when
    `ways` is empty."""
    if not ways:
        return Blocked(0, {}, None)
    reasons: dict[str, int] = {}
    backs = []
    for way in ways:
        back = _back(table_of, way)
        count = count_rows(conn, table, sa.and_(eligible, back))
        if count:
            reasons[way.reason] = reasons.get(way.reason, 0) + count
            backs.append(back)
    if not backs:
        return Blocked(0, {}, None)
    where = sa.or_(*backs)
    return Blocked(count_rows(conn, table, sa.and_(eligible, where)), reasons, where)


SPREAD_LIMIT = 1_000
"""Blocked rows `spread` follows at most (their keys travel as a list): past it the figure
stays the lower bound it already is."""


def spread(
    conn: Connection,
    table: sa.Table,
    key: Sequence[str],
    eligible: Predicate,
    found: Blocked,
    self_keys: Sequence[ForeignKeyRef],
    dialect: str,
) -> Blocked:
    """For a delete: a blocked row stays, so an eligible row it references through an acting
    key of `table` to itself (`self_keys`) is blocked too, its delete reaching a row that
    stays (a recent row → an expired row → an expired row blocks both expired rows, as a run
    does); and so on along the chain. The blocked rows' keys are read (at most
    SPREAD_LIMIT, else `found` is returned as it is: a lower bound still), then each round
    one query per key finds the eligible rows they reference, until none is new or
    SPREAD_LIMIT rows are known blocked (those found so far are kept: a lower bound still,
    each of them surely blocked). Returns `found` with those
    rows added (counted under their own reason) and `where` naming the blocked rows by key.
    Raises SQLAlchemy errors."""
    if found.where is None or not self_keys or not key:
        return found
    cols = [table.c[k] for k in key]
    picked = sa.select(*cols).where(sa.and_(eligible, found.where)).limit(SPREAD_LIMIT + 1)
    blocked = {tuple(r) for r in conn.execute(picked)}
    if len(blocked) > SPREAD_LIMIT:
        return found
    frontier, added = set(blocked), 0
    while frontier and len(blocked) < SPREAD_LIMIT:
        near: set[tuple[object, ...]] = set()
        for ref in self_keys:
            by = [table.c[c] for c in ref.columns]
            referred = [table.c[c] for c in ref.referred_columns]
            inner = table.alias("blocking")
            named = key_in([inner.c[k] for k in key], sorted(frontier, key=repr), dialect)
            pointed = sa.select(*(inner.c[c.name] for c in by)).where(named).correlate(None)
            hit = (
                referred[0].in_(pointed)
                if len(referred) == 1
                else sa.tuple_(*referred).in_(pointed)
            )
            near |= {tuple(r) for r in conn.execute(sa.select(*cols).where(eligible, hit))}
        frontier = near - blocked
        room = SPREAD_LIMIT - len(blocked)
        if len(frontier) > room:  # keep what fits, each surely blocked: a closer lower bound
            frontier = set(sorted(frontier, key=repr)[:room])
        blocked |= frontier
        added += len(frontier)
    if not added:
        return found
    reasons = dict(found.reasons)
    names = ", ".join(f"{r.table}({', '.join(r.columns)})" for r in self_keys)
    reasons[f"a blocked row of {table.name} it reaches through {names}"] = added
    where = key_in(cols, sorted(blocked, key=repr), dialect)
    return Blocked(len(blocked), reasons, where)
