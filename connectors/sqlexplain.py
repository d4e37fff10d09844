"""The database's own plan for a rule's selection of expired rows (`plan --explain`).

Each backend is asked in its own words, with the statement the worker runs for its first
batch (tenant, cutoff, conditions, masks not yet done; no held keys); nothing is executed:

- PostgreSQL: `EXPLAIN` for the plan as it prints it, and `EXPLAIN (FORMAT JSON)` for the
  same plan as data. (PostgreSQL docs, "EXPLAIN".)
- MariaDB: `EXPLAIN`, one row per table read, with the access `type` and the index `key`.
  (MariaDB docs, "EXPLAIN".)
- SQLite: `EXPLAIN QUERY PLAN`, a tree of steps. (SQLite docs, "EXPLAIN QUERY PLAN".)

Which steps read the subject table and through which indexes is read from that data in
`connectors.sqlplan`; whether an index serves the selection, and the advice when none does,
in `connectors.sqladvice`.

Only the plan's text is returned, never the statement with its values: the texts hold table,
column and index names, the optimiser's estimates and the statement's own constants (the
tenant value, the cutoffs, a rule's conditions), no row's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors import sqlplan
from connectors.base import ConnectorError
from connectors.sqladvice import Verdict
from connectors.sqlplan import Access

#: Fewer rows than this (the optimiser's estimate) and a scan costs less than an index would;
#: a plan on a table at least this large that no index serves gets the advice.
LARGE_TABLE_ROWS = 10_000


@dataclass(frozen=True)
class Explained:
    """A selection's plan: `lines` as the database prints them, `table_rows` the database's
    estimate of the table's rows (None when it keeps none), `verdict` how the plan reads the
    table and what would serve it (`connectors.sqladvice`)."""

    lines: tuple[str, ...]
    table_rows: int | None
    verdict: Verdict


def explain(
    conn: Connection, query: sa.Select[Any], table: sa.Table
) -> tuple[list[str], list[Access]]:
    """Ask the database of `conn` for `query`'s plan: (its lines as the database prints
    them, the steps that read `table` outside sub-selects).

    Raises what SQLAlchemy raises when the database refuses the statement, ConnectorError
    when PostgreSQL's JSON plan is not of the documented shape."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    bound: Any = (
        tuple(params[name] for name in compiled.positiontup)
        if compiled.positional and compiled.positiontup is not None
        else params
    )
    name = dialect.name
    statement = str(compiled)
    if name == "sqlite":
        found = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, bound)
        steps = [(int(row[0]), int(row[1]), str(row[-1])) for row in found]  # id, parent, text
        return [text for _, _, text in steps], sqlplan.sqlite(steps, table.name)
    result = conn.exec_driver_sql("EXPLAIN " + statement, bound)
    if name in ("mysql", "mariadb"):
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
        lines = [
            " ".join(f"{k}={v}" for k, v in row.items() if v is not None and k != "id")
            for row in rows
        ]
        return lines, sqlplan.mariadb(rows, table.name)
    lines = [str(row[0]) for row in result]
    document = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, bound).scalar_one()
    try:
        return lines, sqlplan.postgresql(document, table.name)
    except ValueError as exc:
        raise ConnectorError(f"the JSON plan of the selection of {table.name}: {exc}") from None


def estimated_rows(conn: Connection, table: sa.Table) -> int | None:
    """The database's own estimate of `table`'s rows, without counting them: PostgreSQL's
    `pg_class.reltuples` (-1 before the first ANALYZE: None), MariaDB's
    `information_schema.TABLES.TABLE_ROWS`; SQLite keeps none unless ANALYZE ran, so it is
    counted there (SQLite tables are small and local)."""
    name = conn.dialect.name
    if name == "postgresql":
        found = conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
            # Quoted as the database spells it: `Child` unquoted would be `child`, another
            # table or none.
            {"t": conn.dialect.identifier_preparer.format_table(table)},
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
