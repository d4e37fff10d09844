"""The masked rows of a batch as one JSON parameter, for an UPDATE on SQLite and MariaDB.

A VALUES list would carry one bound parameter per value, and SQLAlchemy compiles a statement
holding them anew for every batch (it cannot cache it): about 0.2 ms per row, more than
executemany costs on SQLite (in-process) or on a local MariaDB (round trips). One JSON
parameter keeps the statement the same from batch to batch (compiled once per set of
columns), whatever the number of rows. Each function returns False, having written nothing,
when a value has no exact form in JSON there; the caller then writes row by row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.sqlmaskplan import ALIAS, Plan, Row, alias, joined, source_columns

_MARIADB_BYTES = 1024 * 1024  # of JSON rows per statement: max_allowed_packet is 16 MiB


# --- SQLite: the rows as one JSON parameter, json_each ---------------------------------------


def sqlite_rows(
    conn: Connection,
    table: sa.Table,
    key: Sequence[sa.Column[Any]],
    plan: Plan,
    where: ColumnElement[bool] | None,
) -> bool:
    """The rows travel as one JSON array of arrays (after each type's bind processing, as a
    per-row UPDATE binds them), read back with `json_extract`, whose results are the storage
    classes the values would be bound as (TEXT, INTEGER, NULL; true as 1). Not a VALUES list:
    SQLAlchemy compiles a statement carrying the rows' values anew for every batch (about
    0.2 ms per row, several times what executemany costs in-process), while this statement
    is compiled once per set of columns. False (nothing written) when a value has no exact
    JSON form here (a float, bytes, an integer beyond 64 bits, a text holding NUL)."""
    named = source_columns(key, plan)
    processors = [
        None
        if name[0] in "sr"
        else column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        for name, column in named
    ]
    data = []
    for row in plan.rows:
        values = plan.values(row)
        data.append([v if f is None else f(v) for f, v in zip(processors, values, strict=True)])
    if not all(_json_exact(v) for values in data for v in values):
        return False
    rows = json.dumps(data, ensure_ascii=False, allow_nan=False)
    each = sa.func.json_each(sa.bindparam(None, rows, type_=sa.String())).table_valued("value")
    picked = [
        sa.func.json_extract(each.c.value, f"$[{i}]").label(name)
        for i, (name, _) in enumerate(named)
    ]
    source = sa.select(*picked).select_from(each).subquery(alias(table))
    statement = sa.update(table).where(*joined(key, source, where))
    conn.execute(statement.values(plan.assignments(source)))
    return True


def _json_exact(value: Any) -> bool:
    """True when SQLite's json_extract gives `value` back as the driver would bind it."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and "\x00" not in value


# --- MariaDB: the rows as one JSON parameter, JSON_TABLE, one statement per shape ----------


def mariadb_rows(
    conn: Connection,
    table: sa.Table,
    key: Sequence[sa.Column[Any]],
    rows: Sequence[Row],
    where: ColumnElement[bool] | None,
) -> bool:
    """`UPDATE t, (SELECT ... FROM JSON_TABLE(:rows, '$[*]' COLUMNS (k0 DECIMAL(65,0) PATH
    '$[0]', c0 LONGTEXT PATH '$[1]', ...)) AS j) AS v SET t.c = v.c0, ... WHERE t.k = v.k0
    ...`: the rows in one JSON parameter (a VALUES list would be compiled anew by SQLAlchemy
    for every batch, at about 0.2 ms per row: more than executemany's round trips to a local
    server). Every value travels as the text pymysql would write for it (a date as
    `YYYY-MM-DD`) and is converted on assignment, in strict mode, as that literal is.

    One statement per set of columns written (per shape), with no flags: MariaDB's strict
    mode turns a zero date into NULL when it passes through an expression (`CASE WHEN 0 THEN
    NULL ELSE col END` reads `0000-00-00` as NULL), so a column is never set to itself.
    False (nothing written) before MariaDB 10.6 (no JSON_TABLE), for a key that is not an
    integer, a date or text of a known character set, and for a value that is not text, a
    date or a naive date-time."""
    if tuple(conn.dialect.server_version_info or ()) < (10, 6):
        return False
    kinds = [key_kind(k, table) for k in key]
    known = [kind for kind in kinds if kind is not None]
    items = [
        ([_key_json(v) for v in k], {n: _text_json(v) for n, v in vs.items()}) for k, vs in rows
    ]
    unknown = any(v is _NO_JSON for k, vs in items for v in [*k, *vs.values()])
    if len(known) < len(kinds) or unknown:
        return False
    shapes: dict[tuple[str, ...], list[list[Any]]] = {}
    for key_values, values in items:
        shape = tuple(sorted(values))
        shapes.setdefault(shape, []).append([*key_values, *(values[n] for n in shape)])
    for shape, payload in shapes.items():
        types = [kind.sql for kind in known] + ["LONGTEXT"] * len(shape)
        names = [f"k{i}" for i in range(len(key))] + [f"c{j}" for j in range(len(shape))]
        paths = [
            f"{n} {t} PATH '$[{i}]'" for i, (n, t) in enumerate(zip(names, types, strict=True))
        ]
        rows_table = (
            f"SELECT {', '.join(names)} FROM JSON_TABLE(:rows, '$[*]' "
            f"COLUMNS ({', '.join(paths)})) AS {ALIAS}_json"
        )
        for part in _json_parts(payload):
            source = (
                sa.text(rows_table)
                .bindparams(sa.bindparam("rows", part, sa.String()))
                .columns(*(sa.column(n) for n in names))
                .subquery(alias(table))
            )
            joined = [
                _key_equals(k, source.c[f"k{i}"], kind)
                for i, (k, kind) in enumerate(zip(key, known, strict=True))
            ]
            statement = sa.update(table).where(*joined, *([] if where is None else [where]))
            assigned = {table.c[n]: source.c[f"c{j}"] for j, n in enumerate(shape)}
            conn.execute(statement.values(assigned))
    return True


def _json_parts(payload: list[list[Any]]) -> list[str]:
    """`payload` as JSON arrays of at most `_MARIADB_BYTES` (but one row at least): the
    statement travels as one packet, bounded by the server's max_allowed_packet."""
    parts: list[list[str]] = [[]]
    used = 0
    for row in payload:
        encoded = json.dumps(row, ensure_ascii=False)
        if parts[-1] and used + len(encoded) > _MARIADB_BYTES:
            parts.append([])
            used = 0
        parts[-1].append(encoded)
        used += len(encoded) + 1
    return ["[" + ",".join(part) + "]" for part in parts]


_NO_JSON = object()  # a value the JSON rows cannot carry exactly


def _text_json(value: Any) -> Any:
    """The text pymysql would write for a value (None for NULL), or `_NO_JSON`."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _NO_JSON if value.tzinfo is not None else str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value if isinstance(value, str) and "\x00" not in value else _NO_JSON


def _key_json(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None or isinstance(value, dt.datetime):
        return _NO_JSON
    return _text_json(value)


@dataclass(frozen=True)
class KeyKind:
    """How a key column travels in JSON_TABLE (`sql`: the column's type there) and, for text,
    the character set and collation (None: the set's default) to compare it in."""

    sql: str
    charset: str | None = None
    collation: str | None = None


def key_kind(column: sa.Column[Any], table: sa.Table) -> KeyKind | None:
    """A text key is compared in the column's own character set and collation: the rows'
    text is utf8mb4, which MariaDB refuses to compare with a column of another character set
    ("Illegal mix of collations"), where a per-row UPDATE's literal is converted to the
    column's. None for a key of another type, or text whose character set the reflected
    table does not say."""
    type_ = column.type
    if isinstance(type_, sa.Integer):
        return KeyKind("DECIMAL(65,0)")
    if isinstance(type_, sa.Date):
        return KeyKind("DATE")
    if not isinstance(type_, sa.String) or isinstance(type_, sa.Enum):
        return None
    found = text_charset(column, table)
    return None if found is None else KeyKind("LONGTEXT", *found)


def text_charset(column: sa.Column[Any], table: sa.Table) -> tuple[str, str | None] | None:
    """A MariaDB text column's character set and collation (None: the set's default), as
    the reflected table says them: the column's own, else the table's default. ENUM and SET
    columns included. None for a column of another type, or when the table does not say."""
    type_ = column.type
    if not isinstance(type_, sa.String):
        return None
    charset = getattr(type_, "charset", None)
    collation = getattr(type_, "collation", None)
    if charset is None:  # the table's default; its collation too unless the column has one
        charset = table.dialect_kwargs.get("mysql_default charset")
        if collation is None:
            collation = table.dialect_kwargs.get("mysql_collate")
    return None if charset is None else (str(charset), collation)


def _key_equals(
    column: sa.Column[Any], derived: ColumnElement[Any], kind: KeyKind
) -> ColumnElement[bool]:
    if kind.charset is None:
        return column == derived
    converted: ColumnElement[Any] = sa.cast(derived, mysql.CHAR(charset=kind.charset))
    if kind.collation is not None:
        converted = sa.collate(converted, kind.collation)
    return column == converted
