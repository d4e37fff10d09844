"""The database's own plan for a rule's selection of expired rows (`plan --explain`).

Each backend is asked in its own words, with the statement the worker runs for its first
batch (tenant, cutoff, conditions, masks not yet done; no held keys):

- PostgreSQL: `EXPLAIN` (the estimated plan; nothing is executed). A `Seq Scan on <table>`
  line means the table is read whole. (PostgreSQL docs, "Using EXPLAIN".)
- MariaDB: `EXPLAIN`, one row per table; `type = ALL` is a full table scan. (MariaDB docs,
  "EXPLAIN".)
- SQLite: `EXPLAIN QUERY PLAN`; a `SCAN <table>` step without an index reads the table
  whole, where `SEARCH … USING INDEX` does not. (SQLite docs, "EXPLAIN QUERY PLAN".)

Only the plan's text is returned, never the statement with its values: the texts hold table,
column and index names and the optimiser's estimates, no row's value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Fewer rows than this (the optimiser's estimate) and a scan costs less than an index would;
#: a plan that scans a table at least this large gets the `CREATE INDEX` advice.
LARGE_TABLE_ROWS = 10_000


@dataclass(frozen=True)
class Explained:
    """A selection's plan: `lines` as the database prints them, `scans` true when the
    subject table is read whole, `table_rows` the database's estimate of the table's rows
    (None when it keeps none), `advice` the `CREATE INDEX` that would serve the selection
    (None when an index already leads with the right columns, or the basis is not one
    column of the table)."""

    lines: tuple[str, ...]
    scans: bool
    table_rows: int | None
    advice: str | None


def explain(conn: Connection, query: sa.Select[Any], table: sa.Table) -> tuple[list[str], bool]:
    """Ask the database of `conn` for `query`'s plan: (lines, whether `table` is scanned).

    Raises what SQLAlchemy raises when the database refuses the statement."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    bound: Any = (
        tuple(params[name] for name in compiled.positiontup)
        if compiled.positional and compiled.positiontup is not None
        else params
    )
    name = dialect.name
    prefix = "EXPLAIN QUERY PLAN " if name == "sqlite" else "EXPLAIN "
    result = conn.exec_driver_sql(prefix + str(compiled), bound)
    if name == "sqlite":
        lines = [str(row[-1]) for row in result]
        scans = any(_sqlite_scans(line, table.name) for line in lines)
    elif name in ("mysql", "mariadb"):
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
        lines = [
            " ".join(f"{k}={v}" for k, v in row.items() if v is not None and k != "id")
            for row in rows
        ]
        scans = any(row.get("table") == table.name and row.get("type") == "ALL" for row in rows)
    else:
        lines = [str(row[0]) for row in result]
        pattern = re.compile(rf"Seq Scan on {re.escape(table.name)}\b")
        scans = any(pattern.search(line) for line in lines)
    return lines, scans


def _sqlite_scans(line: str, table: str) -> bool:
    """True for a SQLite plan step that reads `table` whole (`SCAN child`, not `SCAN child
    USING INDEX …` or `USING COVERING INDEX …`)."""
    match = re.match(rf"SCAN {re.escape(table)}\b(.*)", line)
    return match is not None and "INDEX" not in match.group(1).upper()


def estimated_rows(conn: Connection, table: sa.Table) -> int | None:
    """The database's own estimate of `table`'s rows, without counting them: PostgreSQL's
    `pg_class.reltuples` (-1 before the first ANALYZE: None), MariaDB's
    `information_schema.TABLES.TABLE_ROWS`; SQLite keeps none unless ANALYZE ran, so it is
    counted there (SQLite tables are small and local)."""
    name = conn.dialect.name
    if name == "postgresql":
        found = conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": table.name if table.schema is None else f"{table.schema}.{table.name}"},
        ).scalar()
        return None if found is None or found < 0 else int(found)
    if name in ("mysql", "mariadb"):
        found = conn.execute(
            sa.text(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": table.name},
        ).scalar()
        return None if found is None else int(found)
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
