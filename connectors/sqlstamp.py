"""A fingerprint of some tables' definitions from the database's catalog, in one query.

`connectors.engines` keeps a reflected schema per database for the whole process; before a
run trusts it, `stamp` reads what the catalog says of the mapped tables now and the cached
reflection is used only when the fingerprint is the one it was taken with. It covers what
reflection reads and `verify` checks:

- SQLite: the `CREATE` text of each table and of its indexes and triggers in
  `sqlite_master` (SQLite rewrites it on every `ALTER TABLE`, and `CREATE INDEX` adds a row);
- PostgreSQL: for each relation visible on the search path (as reflection finds it), its
  kind, every live column (name, type with modifiers, NOT NULL, collation, identity,
  generated, default), the definition of every index and of every constraint;
- MariaDB/MySQL: from `information_schema`, each table's type, every column (name, full
  type, nullability, default, position, collation, extra), every index column and every
  foreign key column.

Tables that do not exist add nothing, so a table created or dropped changes the fingerprint
too. The digest is SHA-256 over the sorted rows: no row order, no server-side hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

_NAMES: sa.BindParameter[list[str]] = sa.bindparam("names", expanding=True)

SQLITE = sa.text(
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name IN :names"
).bindparams(_NAMES)

POSTGRESQL = sa.text(
    """
SELECT c.relname, c.relkind::text,
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
"""
).bindparams(_NAMES)

_HERE = "TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
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
"""
).bindparams(_NAMES)

QUERIES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL, "mariadb": MYSQL}


def stamp(conn: sa.Connection, names: Sequence[str]) -> str | None:
    """The fingerprint (64 hex digits) of the definitions of tables `names` on `conn`'s
    database, as the module docstring lists; None for a dialect it does not know (the
    caller then reflects every time). Raises SQLAlchemy errors from the query."""
    query = QUERIES.get(conn.dialect.name)
    if query is None:
        return None
    found: Iterable[Sequence[Any]] = conn.execute(query, {"names": list(names)}) if names else []
    rows = sorted(tuple("" if v is None else str(v) for v in row) for row in found)
    return hashlib.sha256(repr(rows).encode()).hexdigest()
