"""What the database's ON UPDATE keys change with an anonymise batch's UPDATE, and the refusal
of a batch whose change would reach a row the worker must not change or cannot count.

A mask that changes a column another table's foreign key references makes the database act
on the referencing rows as the key's ON UPDATE says: CASCADE writes the new value into them,
SET NULL / SET DEFAULT resets them (and so on through keys referencing those columns in turn).
RESTRICT / NO ACTION refuse the UPDATE (`validate` refuses such a mask: connectors/maskfit.py).
Before each anonymise UPDATE (the subject's rows, a related table's), inside the batch's
transaction, `guard_update` follows every acting key (CASCADE, SET NULL, SET DEFAULT) whose
referenced columns include a column the batch changes, from the rows whose value of that
column changes, and:

- refuses the batch (`RowsRefused`) when a referencing row that would change lies outside the
  product's schema (another PostgreSQL schema, another MariaDB database: the worker neither
  reads nor counts those tables), is another tenant's (a table with the tenant column and
  another value there; NULL belongs to no tenant), or is a row of a table the batch changes
  itself outside the rows it writes (the subject's table outside the batch, any related table
  of the rule, the subject's table from a related table's mask): one row changed twice would
  be counted twice, or a row not in the batch counted as anonymised. The worker then splits
  the batch until those rows stand alone (worker/isolation.py): they stay (`batch.blocked`,
  the run partial), as for a delete that would reach such rows (connectors/sqlrefuse.py,
  connectors/sqlreach.py, connectors/sqloutside.py);
- returns the other rows it reaches (the same tenant's, or of a table without the tenant
  column), per table, each counted once, for the batch's applied rows: the trail counts them.

No query is run when no acting key references a column the batch changes. The counts are
taken before the UPDATE: a row inserted by another session in between is not counted (the
batch's own rows are locked, rows referencing them are not), as for a delete's cascades.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import ForeignKeyRef, RefAction, RowsRefused, SchemaError
from connectors.sqloutside import refuse_outside
from connectors.sqlreach import MAX_DEPTH, count_rows, pointing_at

Predicate = ColumnElement[bool]
Counts = dict[str, int]
RefsTo = Callable[[str], list[ForeignKeyRef]]


@dataclass(frozen=True)
class UpdateKeys:
    """What `guard_update` reads: `table_of` a reflected table by name; `refs_all` every key
    of the default schema pointing at a table, its own included; `refs_outside` the keys of
    tables outside it pointing at a table (connectors/sqloutside.py); `tenant_of` a table's
    tenant filter for this batch's customer (None: the table has no tenant column)."""

    table_of: Callable[[str], sa.Table]
    refs_all: RefsTo
    refs_outside: RefsTo
    tenant_of: Callable[[sa.Table], Predicate | None]


@dataclass
class _Reached:
    inside: dict[str, list[Predicate]]
    outside: list[tuple[ForeignKeyRef, sa.Table, Predicate]]


def guard_update(
    conn: Connection,
    keys: UpdateKeys,
    table: sa.Table,
    changes: Mapping[str, Predicate],
    kept: Mapping[str, Predicate],
) -> Counts:
    """Before an UPDATE of `table`: `changes` maps each column it writes to a predicate over
    `table` of the rows whose value of that column changes; `kept` maps the name of each
    table the batch changes itself to a predicate over it of the rows it writes there
    (`sa.false()`: none). Raises RowsRefused, before anything is changed, when the acting ON
    UPDATE keys would change a row outside the product's schema, another tenant's, or one of
    a `kept` table outside its predicate (see the module docstring); SchemaError when they go
    on past MAX_DEPTH tables (not followed further: refused, the rule fails). Returns the
    rows per table they change otherwise (tables with none left out); empty, at the cost of
    no query, when no acting key references a changed column. Messages name keys, tables
    and counts, never a value."""
    reached = _Reached({}, [])
    _follow(keys, table, dict(changes), (), reached)
    refuse_outside(conn, reached.outside, table.name, on="UPDATE")
    counts: Counts = {}
    for name, found in reached.inside.items():
        referencing = keys.table_of(name)
        rows = sa.or_(*found)
        if name in kept:
            stray = count_rows(conn, referencing, sa.and_(rows, sa.not_(kept[name])))
            if stray:
                raise RowsRefused(
                    f"anonymising these rows of {table.name} would also change {stray} row(s) "
                    f"of {name} that the batch does not write, through the database's ON "
                    "UPDATE keys: refused; they stay until nothing else is reached"
                )
            continue  # the batch's own rows: counted as it writes them
        tenant = keys.tenant_of(referencing)
        if tenant is not None:
            theirs = count_rows(conn, referencing, sa.and_(rows, sa.not_(tenant)))
            if theirs:
                raise RowsRefused(
                    f"anonymising these rows of {table.name} would also change {theirs} "
                    f"row(s) of {name} of another tenant through the database's ON UPDATE "
                    "keys: refused, as under RESTRICT; another customer's rows are never "
                    "changed"
                )
        changed = count_rows(conn, referencing, rows)
        if changed:
            counts[name] = changed
    return counts


def _follow(
    keys: UpdateKeys,
    current: sa.Table,
    changes: dict[str, Predicate],
    chain: tuple[ForeignKeyRef, ...],
    reached: _Reached,
) -> None:
    """Record the rows each acting key referencing a changed column of `current` changes,
    and follow the keys referencing the columns those rows change in turn."""
    for ref in [*keys.refs_all(current.name), *keys.refs_outside(current.name)]:
        if ref.on_update.blocks:
            continue
        moving = [changes[c] for c in ref.referred_columns if c in changes]
        if not moving:
            continue
        where = sa.or_(*moving)
        if ref.schema is not None:
            reached.outside.append((ref, current, where))
            continue
        if len(chain) >= MAX_DEPTH:
            raise SchemaError(
                f"anonymising rows of {current.name}: the ON UPDATE keys go on through "
                f"{MAX_DEPTH} tables ({' -> '.join(r.table for r in chain)}); the worker does "
                "not follow them further, so it cannot tell which rows change: refused (make "
                "a key of that chain RESTRICT)"
            )
        referencing = keys.table_of(ref.table)
        own = [referencing.c[c] for c in ref.columns]
        referred = list(ref.referred_columns)
        match = pointing_at(own, current, referred, where)
        reached.inside.setdefault(ref.table, []).append(match)
        # SET NULL / SET DEFAULT reset every column of the key; CASCADE writes the new value
        # into those whose referred column changes alone (a composite key's tenant column
        # stays: a key referencing it is not reached).
        moved = (
            {
                mine: pointing_at(own, current, referred, changes[theirs])
                for mine, theirs in ref.pairs
                if theirs in changes
            }
            if ref.on_update is RefAction.CASCADE
            else dict.fromkeys(ref.columns, match)
        )
        _follow(keys, referencing, moved, (*chain, ref), reached)
