"""The masked values of a batch written by key in one UPDATE, not one per row.

`write_rows(conn, table, key, rows, where)` writes each row's new values (`rows`: the key and
a mapping column → value; rows may write different columns) into the rows of `table` with
that key (and `where`, the tenant filter):

- PostgreSQL: one `UPDATE t SET c = v.c0, ... FROM unnest(:k0, :c0, ...) AS v(k0, c0, ...)
  WHERE t.k = v.k0 [AND where]`. Every column travels as one typed array (as the keys do in
  `connectors.sqlchange.key_in`): a constant number of parameters however many rows, and a
  statement SQLAlchemy compiles once per set of columns.
- SQLite (3.38 and later: UPDATE ... FROM since 3.33, JSON built in since 3.38): one
  `UPDATE t SET c = v.c0, ... FROM (SELECT json_extract(value, '$[0]') AS k0, ... FROM
  json_each(:rows)) AS v WHERE ...`, the rows in one JSON parameter (why not a VALUES list:
  `connectors.sqlmaskjson`).
- MariaDB (10.6 and later): `UPDATE t, (SELECT ... FROM JSON_TABLE(:rows, ...)) AS v SET
  t.c = v.c0, ... WHERE ...`, the rows in one JSON parameter, one statement per set of
  columns written (`connectors.sqlmaskjson.mariadb_rows` says why) and per MiB of JSON.
- Anywhere else (MySQL, SQLite before 3.38, MariaDB before 10.6), and where a key or a value
  has no exact form in those parameters (a PostgreSQL column of a type SQLAlchemy cannot put
  in an array; a float, bytes or an aware date-time in JSON): one UPDATE per row
  (executemany), as before.

Exactly the values of `rows` are written, as a per-row UPDATE writes them: bound through the
column's type, except a value read raw from a date column that is not a date (a text such as
`0044-01-01 BC` or `0000-01-01`), which goes as it is and is converted by the database (on
PostgreSQL `CAST(text AS <type>)`, as the per-row statement's `:p::DATE` did). Two exceptions,
both where the per-row statement went wrong: such a text in a SQLite date column is written
(the per-row statement bound it through the column's date type, which raised TypeError), and
a column that every row sets to NULL is set to SQL NULL (the per-row statement wrote JSON
`null` into a JSON column, which the `null` mask's done test never accepts).

A column that only some rows write is set to itself in the others (`CASE WHEN flag THEN new
ELSE column END`; PostgreSQL and SQLite only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.sqlmaskjson import mariadb_rows, sqlite_rows
from connectors.sqlmaskplan import Plan, Row, alias, is_raw, joined, source_columns, typed


def write_rows(
    conn: Connection,
    table: sa.Table,
    key: Sequence[sa.Column[Any]],
    rows: Sequence[Row],
    where: ColumnElement[bool] | None = None,
) -> None:
    """Write `rows` (each a key of `key`'s columns and its new values by column name) into
    `table`, where `where` (None: no filter) also holds, in as few UPDATE statements as the
    backend allows (see the module docstring). Rows whose key matches nothing are skipped
    silently, as a per-row UPDATE would. Database errors propagate (SQLAlchemyError)."""
    if not rows:
        return
    dialect = conn.dialect
    plan = Plan.of(table, rows)
    if dialect.name == "postgresql" and all(_arrayable(c.type) for c in [*key, *plan.columns]):
        _postgres(conn, table, key, plan, where)
    elif dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
        if not sqlite_rows(conn, table, key, plan, where):
            _per_row(conn, table, key, rows, where)
    elif getattr(dialect, "is_mariadb", False):
        if not mariadb_rows(conn, table, key, rows, where):
            _per_row(conn, table, key, rows, where)
    else:
        _per_row(conn, table, key, rows, where)


# --- PostgreSQL: typed arrays, unnest ---------------------------------------------------------


def _arrayable(type_: sa.types.TypeEngine[Any]) -> bool:
    return not isinstance(type_, sa.types.NullType | sa.ARRAY)


def _element(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """The array element type for values of a column of `type_`: a text type loses its
    length, since an explicit cast to VARCHAR(n) or CHAR(n) would cut a value that the
    assignment refuses (a per-row UPDATE binds it as `:p::VARCHAR` too)."""
    if isinstance(type_, sa.String) and not isinstance(type_, sa.Enum) and type_.length:
        return sa.String()
    return type_


def _postgres(
    conn: Connection,
    table: sa.Table,
    key: Sequence[sa.Column[Any]],
    plan: Plan,
    where: ColumnElement[bool] | None,
) -> None:
    named = source_columns(key, plan)
    columns = zip(*(plan.values(row) for row in plan.rows), strict=True)
    arrays = []
    for (name, column), values in zip(named, columns, strict=True):
        element = sa.Text() if name[0] == "r" else _element(typed(name, column))
        arrays.append(sa.bindparam(None, list(values), type_=postgresql.ARRAY(element)))
    source = (
        sa.func.unnest(*arrays)
        .table_valued(*(name for name, _ in named))
        .render_derived(name=alias(table))
    )
    assigned = plan.assignments(source, lambda column: _element(column.type))
    conn.execute(sa.update(table).where(*joined(key, source, where)).values(assigned))


# --- elsewhere: one UPDATE per row ----------------------------------------------------------


def _per_row(
    conn: Connection,
    table: sa.Table,
    key: Sequence[sa.Column[Any]],
    rows: Sequence[Row],
    where: ColumnElement[bool] | None,
) -> None:
    """One statement per set of columns written, executed once per row (executemany)."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_key, values in rows:
        item = {f"k_{k.name}": v for k, v in zip(key, row_key, strict=True)}
        for name, value in values.items():
            item[f"{'r' if is_raw(table.c[name], value) else 'v'}_{name}"] = value
        by_shape.setdefault(tuple(sorted(item)), []).append(item)
    for shape, items in by_shape.items():
        assigned: dict[str, Any] = {}
        for name in shape:
            if name.startswith("v_"):  # bound through the column's type
                assigned[name[2:]] = sa.bindparam(name, type_=table.c[name[2:]].type)
            elif name.startswith("r_"):  # bound as it is: text in a date column
                assigned[name[2:]] = sa.bindparam(name, type_=sa.types.NullType())
        statement = (
            sa.update(table)
            .where(*(k == sa.bindparam(f"k_{k.name}") for k in key))
            .values(assigned)
        )
        if where is not None:
            statement = statement.where(where)
        conn.execute(statement, items)
