"""A fingerprint of some tables' definitions from the database's catalog, in one query.

`connectors.engines` keeps a reflected schema per database for the whole process; before a
run trusts it, `stamp` reads what the catalog says of the mapped tables now and the cached
reflection is used only when the fingerprint is the one it was taken with. It covers what
reflection reads and `verify` checks:

- SQLite: the `CREATE` text of each table and of its indexes and triggers in
  `sqlite_master` (SQLite rewrites it on every `ALTER TABLE`, and `CREATE INDEX` adds a row);
- PostgreSQL: for each relation visible on the search path (as reflection finds it), its
  kind (and whether another table inherits from it: connectors/sqlinherit.py), every live
  column (name, type with modifiers, NOT NULL, collation, identity, generated, default),
  the definition of every index and of every constraint;
- MariaDB/MySQL: from `information_schema`, each table's type, every column (name, full
  type, nullability, default, position, collation, extra), every index column and every
  foreign key column.

Tables that do not exist add nothing, so a table created or dropped changes the fingerprint
too.

The same query also reads a second fingerprint, `Stamp.keys`, of **every foreign key** of
the database, mapped table or not (the ON DELETE checks follow chains of keys through
unmapped tables, `connectors.sqlreach`), so that the whole database's foreign keys can be
cached with the reflection and read again only when it changes (`connectors.engines`):

- SQLite: the `CREATE` text of every table (a table's foreign keys, their actions
  included, are in it; SQLite rewrites the text of the tables that refer to a renamed one);
- PostgreSQL: of every foreign-key constraint outside the system and temporary schemas, its
  table (`regclass`, schema-qualified when not on the search path), name and
  `pg_get_constraintdef` (columns, referred table and columns, ON DELETE and ON UPDATE,
  MATCH, DEFERRABLE, NOT VALID), names resolved when read, so a renamed column or table
  changes it;
- MariaDB/MySQL: every column of every foreign key of the current database, and of every
  key of a table in another database of the server that points into it
  (`KEY_COLUMN_USAGE`: schema, table, name, column, position, referred schema, table and
  column), and each such key's rules (`REFERENTIAL_CONSTRAINTS`: UPDATE_RULE, DELETE_RULE,
  MATCH_OPTION). (Those from other databases: connectors/sqloutside.py; only the keys of
  tables the worker's user has some privilege on are visible.) Finding those scans the
  catalogue of every table of the server (`information_schema` looks up by a table's own
  schema only): about 5 µs a table (2.6 ms for 500 tables in 20 databases), each time.

A key added, dropped or changed anywhere, its ON DELETE and ON UPDATE actions included,
changes it. Each digest is SHA-256 over its sorted rows: no row order, no server-side hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_NAMES: sa.BindParameter[list[str]] = sa.bindparam("names", expanding=True)

_KEYS = "k"
"""The first column of the rows that make the foreign-key fingerprint (`Stamp.keys`)."""

SQLITE = sa.text(
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name IN :names "
    f"UNION ALL SELECT '{_KEYS}', name, tbl_name, sql FROM sqlite_master WHERE type = 'table'"
).bindparams(_NAMES)

POSTGRESQL = sa.text(
    """
SELECT 't', c.relname::text, c.relkind::text || CASE WHEN c.relkind = 'r' AND EXISTS
    (SELECT 1 FROM pg_inherits h WHERE h.inhparent = c.oid) THEN ' inherited' ELSE '' END,
  (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' ' || a.attnotnull::text || ' ' || a.attcollation::text
           || ' ' || a.attidentity::text || ' ' || a.attgenerated::text
           || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY a.attnum)
     FROM pg_attribute a
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY i.indexrelid)
     FROM pg_index i WHERE i.indrelid = c.oid),
  (SELECT string_agg(o.conname || ' ' || pg_get_constraintdef(o.oid), '; ' ORDER BY o.conname)
     FROM pg_constraint o WHERE o.conrelid = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname IN :names AND pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog'
UNION ALL
SELECT 'k', o.conrelid::regclass::text, o.conname::text, pg_get_constraintdef(o.oid), NULL, NULL
FROM pg_constraint o JOIN pg_namespace s ON s.oid = o.connamespace
WHERE o.contype = 'f' AND s.nspname NOT IN ('pg_catalog', 'information_schema')
  AND s.nspname NOT LIKE 'pg\\_toast%' AND s.nspname NOT LIKE 'pg\\_temp\\_%'
"""
).bindparams(_NAMES)

_HERE = "TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
# Another database of the server, where a user's table can be (connectors/sqloutside.py):
# not this one, nor the two that hold no table of a user (left out of the scan: 2/3 of it
# on a small server).
_ELSEWHERE = "{} NOT IN (DATABASE(), 'information_schema', 'performance_schema')"
MYSQL = sa.text(
    f"""
SELECT 't', TABLE_NAME, TABLE_TYPE, CAST(ENGINE AS CHAR), CAST(TABLE_COLLATION AS CHAR), '', ''
  FROM information_schema.TABLES WHERE {_HERE}
UNION ALL
SELECT 'c', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE,
       CAST(COALESCE(COLUMN_DEFAULT, '~') AS CHAR),
       CONCAT(ORDINAL_POSITION, ' ', COALESCE(COLLATION_NAME, ''), ' ', EXTRA)
  FROM information_schema.COLUMNS WHERE {_HERE}
UNION ALL
SELECT 'i', TABLE_NAME, INDEX_NAME, COLUMN_NAME, CAST(NON_UNIQUE AS CHAR),
       CAST(SEQ_IN_INDEX AS CHAR), ''
  FROM information_schema.STATISTICS WHERE {_HERE}
UNION ALL
SELECT 'f', TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, COALESCE(REFERENCED_TABLE_NAME, ''),
       COALESCE(REFERENCED_COLUMN_NAME, ''), CAST(ORDINAL_POSITION AS CHAR)
  FROM information_schema.KEY_COLUMN_USAGE WHERE {_HERE}
UNION ALL
SELECT 'k', CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), CONSTRAINT_NAME,
       CONCAT(ORDINAL_POSITION, ' ', COLUMN_NAME, ' ', COALESCE(REFERENCED_TABLE_SCHEMA, '')),
       REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, 'column'
  FROM information_schema.KEY_COLUMN_USAGE
 WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL
UNION ALL
SELECT 'k', CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), CONSTRAINT_NAME,
       CONCAT(ORDINAL_POSITION, ' ', COLUMN_NAME, ' ', REFERENCED_TABLE_SCHEMA),
       REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, 'column'
  FROM information_schema.KEY_COLUMN_USAGE
 WHERE REFERENCED_TABLE_SCHEMA = DATABASE() AND {_ELSEWHERE.format("TABLE_SCHEMA")}
UNION ALL
SELECT 'k', CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME), CONSTRAINT_NAME, UPDATE_RULE,
       DELETE_RULE, MATCH_OPTION, CONCAT('rules ', REFERENCED_TABLE_NAME)
  FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()
UNION ALL
SELECT 'k', CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME), CONSTRAINT_NAME, UPDATE_RULE,
       DELETE_RULE, MATCH_OPTION, CONCAT('rules ', REFERENCED_TABLE_NAME)
  FROM information_schema.REFERENTIAL_CONSTRAINTS
 WHERE UNIQUE_CONSTRAINT_SCHEMA = DATABASE() AND {_ELSEWHERE.format("CONSTRAINT_SCHEMA")}
"""
).bindparams(_NAMES)

QUERIES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL, "mariadb": MYSQL}


@dataclass(frozen=True)
class Stamp:
    """Two fingerprints (64 hex digits each) read in one query: `tables`, of the definitions
    of the tables asked for; `keys`, of every foreign key of the database (see the module
    docstring)."""

    tables: str
    keys: str


def stamp(conn: sa.Connection, names: Sequence[str]) -> Stamp | None:
    """The fingerprints of the definitions of tables `names` and of every foreign key of
    `conn`'s database, as the module docstring lists, in one query; None for a dialect it
    does not know (the caller then reflects, and reads the foreign keys, every time).
    Raises SQLAlchemy errors from the query."""
    query = QUERIES.get(conn.dialect.name)
    if query is None:
        return None
    found: Iterable[Sequence[Any]] = conn.execute(query, {"names": list(names) or [""]})
    tables: list[tuple[str, ...]] = []
    keys: list[tuple[str, ...]] = []
    for row in found:
        values = tuple("" if v is None else str(v) for v in row)
        (keys if values[0] == _KEYS else tables).append(values)
    return Stamp(_digest(tables), _digest(keys))


def _digest(rows: list[tuple[str, ...]]) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()
