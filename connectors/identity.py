"""Which database server and database a connection reaches, as the server itself says.

Two URLs may spell one database in ways no reading of the text can tell apart (two host names
of one server, a proxy, an address and a name). Live `validate` asks each database who it is
and compares the answers (`worker.checks`). Every query below needs no privilege beyond
connecting:

- PostgreSQL: the server's port and the instant its postmaster started (one server, however
  it is reached; two servers never share both), and `current_database()`;
- MariaDB/MySQL: `@@hostname`, `@@port`, `@@datadir` and `DATABASE()` (in lower case where
  `lower_case_table_names` makes names case-insensitive);
- SQLite: the main database's file, resolved; an in-memory database is always its own.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ServerIdentity = tuple[str, ...]


def server_identity(engine: Engine) -> ServerIdentity | None:
    """The identity of the database `engine` connects to; None when it has none to compare
    (an in-memory SQLite database, or a dialect the worker does not know)."""
    name = engine.dialect.name
    with engine.connect() as conn:
        if name == "postgresql":
            row = conn.execute(
                sa.text(
                    "SELECT current_setting('port'), pg_postmaster_start_time()::text, "
                    "current_database()"
                )
            ).one()
            return ("postgresql", *(str(v) for v in row))
        if name in ("mysql", "mariadb"):
            host, port, datadir, database, lower = conn.execute(
                sa.text(
                    "SELECT @@hostname, @@port, @@datadir, DATABASE(), @@lower_case_table_names"
                )
            ).one()
            database = str(database or "")
            if int(lower or 0):
                database = database.lower()
            return ("mysql", str(host), str(port), str(datadir), database)
        if name == "sqlite":
            for _, schema, file in conn.execute(sa.text("PRAGMA database_list")):
                if schema == "main":
                    return ("sqlite", os.path.realpath(file)) if file else None
    return None
