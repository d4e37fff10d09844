"""Foreign keys from tables outside the product database's default schema that point into it,
and the refusal of a DELETE whose rows such a key references while its ON DELETE acts.

The worker reads, reflects and counts only tables of the default schema (PostgreSQL: the
connection's `current_schema()`; MariaDB/MySQL: the URL's database). A key from elsewhere
still acts on a DELETE here:

- PostgreSQL: a key of a table in another schema of the same database
  (`other.memo(child_id) REFERENCES public.child(id) ON DELETE CASCADE`), whether or not that
  schema is on the search path;
- MariaDB/MySQL: a key of a table in another database of the same server
  (`other_db.memo(child_id) REFERENCES product.child(id)`). `information_schema` shows only
  the keys of tables the worker's user has some privilege on: a key of a table it cannot
  see, it cannot check (give it SELECT on such tables);
- SQLite: none. A key names its parent table unqualified (`REFERENCES main.child` is a
  syntax error) and SQLite looks for it in the key's own database file, so a table of an
  attached database never references the product's tables.

`outside_foreign_keys` reads them (one catalogue query) as `ForeignKeyRef`s whose `schema`
names the referencing table's schema or database. The rows they reach are never counted
(the worker does not read those tables' shapes, tenants or keys), so a DELETE whose rows an
acting key (CASCADE, SET NULL, SET DEFAULT) of theirs references is refused before it runs
(`refuse_outside`, RowsRefused): the worker splits the batch until the referenced rows stand
alone, and they stay, as under RESTRICT (`batch.blocked`, the run partial). Rows no such key
references go as usual. RESTRICT / NO ACTION keys need nothing: the database refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import ForeignKeyRef, RefAction, RowsRefused

Predicate = ColumnElement[bool]

# PostgreSQL: every foreign key of a table outside the current schema to a table in it, one
# row per column pair in key order. confdeltype / confupdtype: a no action, r restrict,
# c cascade, n set null, d set default.
POSTGRESQL = sa.text(
    """
SELECT o.conname::text, n.nspname::text, c.relname::text, r.relname::text,
       a.attname::text, b.attname::text, o.confdeltype::text, o.confupdtype::text, k.i
FROM pg_constraint o
JOIN pg_class c ON c.oid = o.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = o.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
CROSS JOIN LATERAL unnest(o.conkey, o.confkey) WITH ORDINALITY AS k(own, theirs, i)
JOIN pg_attribute a ON a.attrelid = o.conrelid AND a.attnum = k.own
JOIN pg_attribute b ON b.attrelid = o.confrelid AND b.attnum = k.theirs
WHERE o.contype = 'f' AND rn.nspname = current_schema() AND n.nspname <> current_schema()
ORDER BY 2, 3, 1, 9
"""
)

# MariaDB/MySQL: every foreign key of a table in another database to a table in this one.
MYSQL = sa.text(
    """
SELECT k.CONSTRAINT_NAME, k.TABLE_SCHEMA, k.TABLE_NAME, k.REFERENCED_TABLE_NAME,
       k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE,
       k.ORDINAL_POSITION
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
 AND r.TABLE_NAME = k.TABLE_NAME
WHERE k.REFERENCED_TABLE_SCHEMA = DATABASE()
  AND k.TABLE_SCHEMA NOT IN (DATABASE(), 'information_schema', 'performance_schema')
ORDER BY 2, 3, 1, 9
"""
)

QUERIES = {"postgresql": POSTGRESQL, "mysql": MYSQL, "mariadb": MYSQL}

_PG_ACTIONS = {
    "a": RefAction.NO_ACTION,
    "r": RefAction.RESTRICT,
    "c": RefAction.CASCADE,
    "n": RefAction.SET_NULL,
    "d": RefAction.SET_DEFAULT,
}


def outside_foreign_keys(conn: Connection) -> list[ForeignKeyRef]:
    """Every foreign key of a table outside `conn`'s default schema (PostgreSQL: another
    schema; MariaDB/MySQL: another database of the server) that points at a table of it, as
    `ForeignKeyRef`s with `schema` set (see the module docstring); none on SQLite, where
    such a key cannot exist. One catalogue query. Raises SQLAlchemy errors from it."""
    query = QUERIES.get(conn.dialect.name)
    if query is None:
        return []
    parts: dict[tuple[str, str, str], list[Sequence[Any]]] = {}
    for row in conn.execute(query):
        parts.setdefault((str(row[1]), str(row[2]), str(row[0])), []).append(row)
    return [_ref(schema, table, name, rows) for (schema, table, name), rows in parts.items()]


def _ref(schema: str, table: str, name: str, rows: list[Sequence[Any]]) -> ForeignKeyRef:
    rows = sorted(rows, key=lambda r: int(r[8]))
    first = rows[0]
    return ForeignKeyRef(
        name=name,
        table=table,
        columns=tuple(str(r[4]) for r in rows),
        referred_table=str(first[3]),
        referred_columns=tuple(str(r[5]) for r in rows),
        on_delete=_action(str(first[6])),
        on_update=_action(str(first[7])),
        schema=schema,
    )


def _action(value: str) -> RefAction:
    if value in _PG_ACTIONS:
        return _PG_ACTIONS[value]
    try:
        return RefAction(" ".join(value.upper().split()))
    except ValueError:  # an action the worker does not know: it may act, so it is checked
        return RefAction.CASCADE


def refuse_outside(
    conn: Connection,
    reached: Sequence[tuple[ForeignKeyRef, sa.Table, Predicate]],
    start: str,
    *,
    on: str = "DELETE",
) -> None:
    """Refuse (RowsRefused, before the change, inside the batch's transaction) a DELETE
    (`on` "DELETE") or an anonymise UPDATE (`on` "UPDATE") when a row of a table outside the
    default schema references, through an acting ON DELETE / ON UPDATE key, a row it deletes
    or whose referenced value it changes: `reached` holds each such key with the table whose
    rows go or change and the predicate over that table of those rows
    (connectors/sqlreach.py `Reach.outside`, connectors/sqlupdatereach.py); `start` names the
    table the change is of. One EXISTS per key, on the schema-qualified referencing table.
    The message names the key and the tables, never a value."""
    for ref, table, where in reached:
        theirs = sa.table(ref.table, *(sa.column(c) for c in ref.columns), schema=ref.schema)
        own = [theirs.c[c] for c in ref.columns]
        going = sa.select(*(table.c[c] for c in ref.referred_columns)).where(where)
        going = going.correlate(None)
        match = own[0].in_(going) if len(own) == 1 else sa.tuple_(*own).in_(going)
        if not conn.execute(sa.select(sa.exists().where(match))).scalar():
            continue
        if on == "DELETE":
            doing = "deleting"
            verb = "delete" if ref.on_delete is RefAction.CASCADE else "change"
            key = str(ref)
        else:
            doing, verb = "anonymising", "change"
            key = (
                f"{ref.qualified}({', '.join(ref.columns)}) → {table.name}"
                f"({', '.join(ref.referred_columns)}) ON UPDATE {ref.on_update}"
            )
        raise RowsRefused(
            f"{doing} these rows of {start} would also {verb} rows of {ref.qualified}, "
            f"outside the product's schema, which the worker neither counts nor checks "
            f"({key}): refused, as under RESTRICT; the rows of {table.name} they reference "
            "stay until nothing there references them (or make that key RESTRICT)"
        )
