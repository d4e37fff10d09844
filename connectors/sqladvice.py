"""Whether the database's plan for a selection goes through an index that serves it.

The selection of a rule's expired rows filters on the tenant column (a shared table) and
compares the time basis with the cutoff. An index *serves* it when its columns start with the
tenant column and include the time basis (a table without a tenant column: start with the
time basis), and the plan *searches* it: the database then reads the customer's expired rows
and hardly any other. Judged from the plan's steps that read the table (`connectors.sqlplan`):

- served: every such step searches a serving index (under a union of index searches, each);
  no advice;
- not served, whatever the reason: the table read whole, an index read whole in its order,
  the primary key or another index searched while the tenant or the date test is only a
  filter over what it returns, a bitmap over one-column indexes. For a large table
  (`LARGE_TABLE_ROWS` by the database's estimate, applied by the caller) the advice is the
  `CREATE INDEX` on (tenant column, time basis); when such an index exists already and the
  plan passes it by, the advice is to refresh the statistics instead;
- SQLite compares the time basis through its date functions (`connectors.dates`), which no
  index serves: there the best plan searches an index that starts with the tenant column,
  and that serves (the advice is still the index on both columns: its first serves the
  tenant, its second saves reading the row for the date); without a tenant column nothing is
  advised on SQLite;
- a time basis that is not one column of the table (the first set of several, a related
  table's latest or earliest date, as the FlexKids parent rule's over `child`) or no time
  basis at all (a customer date): no index of the table can serve the date test, so nothing
  is advised and `note` says why (the plan lines still show how each related row is looked
  up).

Every text names tables, columns and indexes only, never a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from connectors.model import Aggregated, BasisSpec, FirstOf
from connectors.sqlplan import PRIMARY_KEY, Access
from connectors.sqlverify import create_index


@dataclass(frozen=True)
class Verdict:
    """How a plan reads the table and what to do about it.

    `reads`: how the plan reads the table, in words ("reads the whole table", "searches
    child_org (organisation_id)"); `scans`: true when a step reads the table whole; `served`:
    whether the plan searches an index that serves the selection (None when it could not be
    judged, see `note`); `advice`: what to do when it does not (only worth doing on a large
    table); `creates`: the `CREATE INDEX` statement in `advice`, if it advises one; `note`:
    why nothing is advised whatever the table's size."""

    reads: str
    scans: bool
    served: bool | None
    advice: str | None = None
    creates: str | None = None
    note: str | None = None


def judge(
    table: sa.Table,
    steps: Sequence[Access],
    tenant: str | None,
    basis: BasisSpec | None,
    dialect: sa.Dialect,
) -> Verdict:
    """Judge the plan `steps` that read `table` for a selection by `tenant` (the tenant
    column, None for a table of one customer) and `basis` (see the module docstring), and
    advise in `dialect`'s SQL."""
    columns = index_columns(table)
    reads = _describe(steps, columns, table.name)
    scans = any(step.whole_table for step in steps)
    tenant = tenant if tenant is not None and tenant in table.c else None
    why_not = _unjudged(table, basis, tenant, dialect.name)
    if why_not is not None:
        return Verdict(reads, scans, None, note=why_not)
    if not steps:
        note = f"no index advised: no step of the plan reads {table.name} itself"
        return Verdict(reads, scans, None, note=note)
    assert isinstance(basis, str)  # noqa: S101  (_unjudged leaves one column of the table)
    wanted = [tenant, basis] if tenant is not None else [basis]

    def serves(name: str) -> bool:
        found = columns.get(name, ())
        if dialect.name == "sqlite":  # the date is never searched there (module docstring)
            return found[:1] == (tenant,)
        return found[:1] == (wanted[0],) and basis in found

    if all(
        step.searched and (all if step.union else any)(serves(name) for name in step.indexes)
        for step in steps
    ):
        return Verdict(reads, scans, True, note=_SQLITE_NOTE if dialect.name == "sqlite" else None)
    existing = [name for name in columns if name != PRIMARY_KEY and serves(name)]
    if existing:
        advice = (
            f"{_named(existing[0], columns)} would serve the selection, but the plan "
            f"{reads}: refresh the database's statistics of {table.name} (ANALYZE) and "
            "explain again"
        )
        return Verdict(reads, scans, False, advice)
    statement = create_index(table, wanted, dialect)
    advice = (
        f"no index on ({', '.join(wanted)}) serves the selection (the plan {reads}); "
        f"create one: {statement}"
    )
    return Verdict(reads, scans, False, advice, statement)


_SQLITE_NOTE = (
    "SQLite reads the time basis through its date functions, which no index serves: an index "
    "that starts with the tenant column is the best it can search"
)


def _unjudged(
    table: sa.Table, basis: BasisSpec | None, tenant: str | None, dialect: str
) -> str | None:
    """Why no index is advised for this selection whatever its plan, or None."""
    name = table.name
    if basis is None:
        return "no index advised: the rule has no time basis in the table (a customer date)"
    if isinstance(basis, Aggregated):
        first = "latest" if basis.latest else "earliest"
        return (
            f"no index advised: the time basis is the {first} {basis.table}.{basis.column} of "
            f"each row's related rows, which no index of {name} serves"
        )
    if isinstance(basis, FirstOf):
        return (
            f"no index advised: the time basis is the first set of ({', '.join(basis.columns)}), "
            "which no index serves"
        )
    if basis not in table.c:
        return f"no index advised: {name} has no column {basis}"
    if dialect == "sqlite" and tenant is None:
        return (
            "no index advised: SQLite reads the time basis through its date functions, "
            "which no index serves"
        )
    return None


def index_columns(table: sa.Table) -> dict[str, tuple[str, ...]]:
    """Each index of `table` by name → its columns in order (an expression as `(expr)`),
    with the primary key under its own name and under `PRIMARY_KEY`, and each named unique
    constraint (on PostgreSQL an index of the constraint's name)."""
    found: dict[str, tuple[str, ...]] = {}
    primary = tuple(table.primary_key.columns.keys())
    if primary:
        found[PRIMARY_KEY] = primary
        if isinstance(table.primary_key.name, str):
            found[table.primary_key.name] = primary
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and isinstance(constraint.name, str):
            found[constraint.name] = tuple(constraint.columns.keys())
    for index in table.indexes:
        if isinstance(index.name, str):
            found[index.name] = tuple(
                e.name if isinstance(e, sa.Column) else "(expr)" for e in index.expressions
            )
    return found


def _named(name: str, columns: dict[str, tuple[str, ...]]) -> str:
    shown = "the primary key" if name == PRIMARY_KEY else name
    listed = columns.get(name)
    return f"{shown} ({', '.join(listed)})" if listed else shown


def _describe(steps: Sequence[Access], columns: dict[str, tuple[str, ...]], table: str) -> str:
    """How the plan reads the table, in words: names of indexes and columns only."""
    if not steps:
        return f"does not read {table} itself"
    said: list[str] = []
    for step in steps:
        names = [_named(name, columns) for name in step.indexes]
        joined = (" or " if step.union else " and ").join(names)
        if step.whole_table:
            said.append("reads the whole table")
        elif step.searched:
            said.append(f"searches {joined}")
        elif names:
            said.append(f"reads the whole of {joined} in its order")
        else:
            said.append(f"reads {table} by a {step.step}")
    return "; ".join(dict.fromkeys(said))
