"""PostgreSQL tables other tables inherit from (`CREATE TABLE … INHERITS (t)`), whose key
the schema check cannot trust.

A primary key, unique constraint or unique index holds within one physical table only:
an inheriting table's rows are rows of its parent too (a `SELECT`, `UPDATE` or `DELETE` of
the parent reaches them), yet the parent's key is not enforced on them. A key mapped on such
a parent may name a row of the parent and a row of a child at once, and a batch that
deletes or changes the expired one by key changed the other too (one inside its period).
A partitioned table's partitions are not meant: its primary key and unique indexes hold
over all of them.

Reflection (connectors/engines.py, connectors/sqlschemaview.py) notes such a parent in the
table's `info` (`note_inherited`); the fingerprint of the tables (connectors/sqlstamp.py)
changes when a table gains or loses its first child, so a cached reflection is read again.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.base import Problem, Table

INHERITED = "retention_worker.inherited"
"""The key in `sqlalchemy.Table.info` set True on a table other tables inherit from."""

_PARENTS = sa.text(
    "SELECT c.relname::text FROM pg_class c WHERE c.relkind = 'r' AND c.relname IN :names "
    "AND pg_table_is_visible(c.oid) "
    "AND EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = c.oid)"
).bindparams(sa.bindparam("names", expanding=True))


def note_inherited(engine: Engine, tables: Iterable[sa.Table]) -> None:
    """Set `info[INHERITED]` on each of `tables` (reflected from `engine`'s database, on the
    search path) that another table inherits from; one query, PostgreSQL only (no other
    backend has inheritance). Raises SQLAlchemy errors."""
    by_name = {t.name: t for t in tables}
    if engine.dialect.name != "postgresql" or not by_name:
        return
    with engine.connect() as conn:
        parents = set(conn.execute(_PARENTS, {"names": sorted(by_name)}).scalars())
    for name, table in by_name.items():
        table.info[INHERITED] = name in parents


def inherited_key(spec: Table, table: sa.Table) -> list[Problem]:
    """A problem when `spec` maps a key on `table` and other tables inherit from it."""
    if not spec.key or not table.info.get(INHERITED):
        return []
    return [
        Problem(
            spec.name,
            None,
            f"other tables inherit from {spec.name} (INHERITS), and its key "
            f"({', '.join(spec.key)}) is not enforced on their rows, so it may name a row "
            "of the table and one of an inheriting table at once; map `key: []` for a "
            "table a delete rule clears without a key (rows go by their place, one "
            "physical table at a time)",
        )
    ]
