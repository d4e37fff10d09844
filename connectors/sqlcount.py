"""The backlogs of several rules in one statement: one round trip per run, not one per rule.

Each rule's count-and-oldest query (`SELECT count(*), MIN(basis) FROM t WHERE <expired>`)
becomes a derived table of one row; the derived tables are joined on a condition that is
always true, so the database answers every rule in one statement, each part planned and run
exactly as on its own (the same WHERE, the same indexes). Works on SQLite, PostgreSQL and
MariaDB alike.

`backlogs` is what the runner calls: a connector that can count several targets at once
(`GroupedBacklog`, the SQL connector) does; any other is asked target by target.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors import dates
from connectors.base import Backlog, Connector, Target

COUNT, OLDEST = "n", "oldest"
"""The labels a part's two columns must carry."""


@runtime_checkable
class GroupedBacklog(Protocol):
    """A connector that counts several targets' backlogs in one go."""

    def backlogs(self, targets: Sequence[Target]) -> list[Backlog]:
        """`Connector.backlog` of each target, in order."""
        ...


def backlogs(connector: Connector, targets: Sequence[Target]) -> list[Backlog]:
    """`connector.backlog(t)` for each of `targets`, in order; in one statement when the
    connector can (see the module docstring). Raises what `backlog` raises."""
    if isinstance(connector, GroupedBacklog):
        return connector.backlogs(targets)
    return [connector.backlog(t) for t in targets]


Part: TypeAlias = tuple["sa.Select[Any, Any]", ColumnElement[Any] | None]
"""A target's count query (columns labelled COUNT and OLDEST) and the basis expression its
oldest value reads (None without a basis)."""


def read(count: Any, first: Any, basis: ColumnElement[Any] | None) -> Backlog:
    """The Backlog of one part's row: the count, and the oldest value read as a date."""
    found = dates.read_oldest(first, basis) if basis is not None else None
    return Backlog(int(count), found)


def statement(parts: Sequence[Part]) -> sa.Select[Any]:
    """One statement of `parts`: a row of each part's count and oldest value, in order."""
    subs = [query.subquery(f"backlog_{i}") for i, (query, _) in enumerate(parts)]
    joined: sa.FromClause = subs[0]
    for previous, sub in itertools.pairwise(subs):
        # Always true (counts are never negative). Not `ON true`: SQLAlchemy's MySQL
        # compiler then takes the nested join for a cartesian product and warns.
        joined = joined.join(sub, previous.c[COUNT] >= -sub.c[COUNT])
    columns = [c for sub in subs for c in (sub.c[COUNT], sub.c[OLDEST])]
    return sa.select(*columns).select_from(joined)


def backlogs_of(row: Sequence[Any], bases: Sequence[ColumnElement[Any] | None]) -> list[Backlog]:
    """The Backlogs of a row of `statement`, whose parts read `bases` (in order)."""
    return [read(row[2 * i], row[2 * i + 1], basis) for i, basis in enumerate(bases)]
