"""What masks and deletes depend on, read from a live SQL schema: each column's type, length
and nullability, the unique keys, and the foreign keys between tables.

SQLAlchemy's inspector reads them on every backend. What the dialects report differs, and is
evened out here:

- an ON DELETE / ON UPDATE action a database does not report is its default: PostgreSQL
  leaves out NO ACTION (its default), MariaDB/MySQL leave out RESTRICT and NO ACTION alike
  (InnoDB's default, and InnoDB treats them the same), so a missing action reads as NO
  ACTION, or as RESTRICT on MariaDB/MySQL; both refuse the delete. On SQLite the actions
  come from `PRAGMA foreign_key_list`, because SQLAlchemy misses those written on a column
  (`child_id INTEGER REFERENCES child(id) ON DELETE RESTRICT`);
- SQLite's UNIQUE column constraints exist only as automatic indexes, read with
  `include_auto_indexes`; MariaDB's unique keys are indexes; PostgreSQL reports a UNIQUE
  constraint both as a constraint and as its index; each key is kept once;
- an index on an expression (`lower(username)`) has no column names: the columns the
  expression names are taken as its columns, so a mask on them is still checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.base import (
    ColumnInfo,
    ColumnKind,
    ForeignKeyRef,
    RefAction,
    TableSchema,
    UniqueKey,
)
from connectors.session import reading
from connectors.sqloutside import outside_foreign_keys


def table_schema(engine: Engine, table: sa.Table) -> TableSchema:
    """The columns, unique keys and own foreign keys of the reflected `table`."""
    inspector = sa.inspect(engine)
    dialect = engine.dialect
    columns = {c.name: _column(c, dialect) for c in table.columns}
    keys: list[UniqueKey] = []
    primary = tuple(table.primary_key.columns.keys())
    if primary:
        name = table.primary_key.name
        keys.append(UniqueKey(name if isinstance(name, str) else None, primary, primary=True))
    for constraint in inspector.get_unique_constraints(table.name):
        keys.append(_unique(dict(constraint), columns))
    options: dict[str, Any] = {"include_auto_indexes": True} if dialect.name == "sqlite" else {}
    for index in inspector.get_indexes(table.name, **options):
        if index.get("unique"):
            keys.append(_unique(dict(index), columns))
    actions = _sqlite_actions(engine, [table.name]) if dialect.name == "sqlite" else {}
    references = tuple(
        _reference(table.name, dict(found), dialect.name, actions)
        for found in inspector.get_foreign_keys(table.name)
        if found.get("referred_schema") is None
    )
    return TableSchema(table.name, columns, _distinct(keys), references)


def all_foreign_keys(engine: Engine) -> dict[str, list[ForeignKeyRef]]:
    """Every foreign key pointing at a table of the database's default schema, by referred
    table: those between its tables (`schema` None; one catalogue query on PostgreSQL, in
    autocommit; one per table on MariaDB and SQLite), and those of tables outside it
    (`schema` set: connectors/sqloutside.py, one query more on PostgreSQL and MariaDB)."""
    name = engine.dialect.name
    with reading(engine) as conn:  # autocommit on PostgreSQL: its one query, one round trip
        every = sa.inspect(conn).get_multi_foreign_keys()
    actions = _sqlite_actions(engine, [t for _, t in every]) if name == "sqlite" else {}
    found: dict[str, list[ForeignKeyRef]] = {}
    for (_schema, table), keys in every.items():
        for key in keys:
            if key.get("referred_schema") is None:
                ref = _reference(table, dict(key), name, actions)
                found.setdefault(ref.referred_table, []).append(ref)
    if name != "sqlite":  # SQLite: a key never points into another database file
        with reading(engine) as conn:
            for ref in outside_foreign_keys(conn):
                found.setdefault(ref.referred_table, []).append(ref)
    for refs in found.values():
        refs.sort(key=lambda r: (r.schema or "", r.table, r.columns))
    return found


def foreign_keys_to(
    everything: Mapping[str, list[ForeignKeyRef]], table: str
) -> list[ForeignKeyRef]:
    """The foreign keys of other tables of the default schema that point at `table`, from
    `all_foreign_keys`."""
    return [r for r in everything.get(table, []) if r.schema is None and r.table != table]


def every_foreign_key_to(
    everything: Mapping[str, list[ForeignKeyRef]], table: str
) -> list[ForeignKeyRef]:
    """Every foreign key of a table of the default schema pointing at `table`, its own to
    itself included, from `all_foreign_keys`."""
    return [r for r in everything.get(table, []) if r.schema is None]


def outside_keys_to(
    everything: Mapping[str, list[ForeignKeyRef]], table: str
) -> list[ForeignKeyRef]:
    """The foreign keys of tables outside the default schema (another PostgreSQL schema,
    another MariaDB database) pointing at `table`, from `all_foreign_keys`."""
    return [r for r in everything.get(table, []) if r.schema is not None]


def kind_of(type_: sa.types.TypeEngine[Any]) -> ColumnKind:
    """What a column type holds, as far as masks care."""
    if isinstance(type_, sa.types.NullType):
        return ColumnKind.UNKNOWN
    if isinstance(type_, sa.Enum):
        return ColumnKind.CHOICE
    if isinstance(type_, sa.Uuid):
        return ColumnKind.UUID
    if isinstance(type_, sa.DateTime):
        return ColumnKind.DATETIME
    if isinstance(type_, sa.Date):
        return ColumnKind.DATE
    if isinstance(type_, sa.Boolean):
        return ColumnKind.BOOLEAN
    if isinstance(type_, sa.Integer):
        return ColumnKind.INTEGER
    if isinstance(type_, sa.Numeric):
        return ColumnKind.NUMBER
    if isinstance(type_, sa.String):
        return ColumnKind.TEXT
    return ColumnKind.OTHER


def _column(column: sa.Column[Any], dialect: sa.Dialect) -> ColumnInfo:
    type_ = column.type
    kind = kind_of(type_)
    length = (
        getattr(type_, "length", None) if kind in (ColumnKind.TEXT, ColumnKind.CHOICE) else None
    )
    choices = tuple(type_.enums) if isinstance(type_, sa.Enum) else ()
    return ColumnInfo(
        name=column.name,
        kind=kind,
        type_name=_type_name(type_, dialect),
        nullable=bool(column.nullable) and not column.primary_key,
        length=length if isinstance(length, int) else None,
        padded=isinstance(type_, sa.CHAR),
        choices=choices,
        has_default=column.server_default is not None,
    )


def _type_name(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except sa.exc.SQLAlchemyError:  # a type the dialect cannot render back
        return type(type_).__name__.upper()


def _unique(found: Mapping[str, Any], columns: Mapping[str, ColumnInfo]) -> UniqueKey:
    names = [c for c in found.get("column_names") or () if c is not None]
    for expression in found.get("expressions") or ():
        if expression is not None:
            names.extend(_named_in(str(expression), columns))
    options = found.get("dialect_options") or {}
    not_distinct = bool(options.get("postgresql_nulls_not_distinct"))
    name = found.get("name")
    if isinstance(name, str) and name.startswith("sqlite_autoindex_"):
        name = None  # SQLite's own name for an inline UNIQUE: nobody wrote it
    return UniqueKey(name, tuple(dict.fromkeys(names)), not not_distinct)


def _named_in(expression: str, columns: Iterable[str]) -> list[str]:
    """The columns an index expression names (word match, quoted or not)."""
    return [c for c in columns if re.search(rf"(?<![\w$]){re.escape(c)}(?![\w$])", expression)]


def _distinct(keys: Iterable[UniqueKey]) -> tuple[UniqueKey, ...]:
    """One key per set of columns: the primary key first, a NULLS NOT DISTINCT one before
    another of the same columns (it is the stricter)."""
    chosen: dict[frozenset[str], UniqueKey] = {}
    for key in keys:
        if not key.columns:
            continue
        seen = chosen.get(frozenset(key.columns))
        if seen is None or (not seen.primary and seen.nulls_distinct and not key.nulls_distinct):
            chosen[frozenset(key.columns)] = key
    return tuple(chosen.values())


# (table, referred table, constrained columns) → (ON UPDATE, ON DELETE) as SQLite states them
Actions = Mapping[tuple[str, str, tuple[str, ...]], tuple[str, str]]


def _reference(
    table: str, found: Mapping[str, Any], dialect: str, actions: Actions
) -> ForeignKeyRef:
    options = found.get("options") or {}
    default = RefAction.RESTRICT if dialect in ("mysql", "mariadb") else RefAction.NO_ACTION
    columns = tuple(found["constrained_columns"])
    on_update, on_delete = options.get("onupdate"), options.get("ondelete")
    stated = actions.get((table, found["referred_table"], columns))
    if stated is not None:
        on_update, on_delete = stated
    return ForeignKeyRef(
        name=found.get("name"),
        table=table,
        columns=columns,
        referred_table=found["referred_table"],
        referred_columns=tuple(found["referred_columns"]),
        on_delete=_action(on_delete, default),
        on_update=_action(on_update, default),
    )


def _sqlite_actions(
    engine: Engine, tables: Iterable[str]
) -> dict[tuple[str, str, tuple[str, ...]], tuple[str, str]]:
    """ON UPDATE and ON DELETE of each foreign key of `tables`, from SQLite's own
    `PRAGMA foreign_key_list`: SQLAlchemy reads them from the CREATE TABLE text and misses
    those of a column constraint (`child_id INTEGER REFERENCES child(id) ON DELETE
    RESTRICT` reads as no action)."""
    quote = engine.dialect.identifier_preparer.quote_identifier
    found: dict[tuple[str, str, tuple[str, ...]], tuple[str, str]] = {}
    with engine.connect() as conn:
        for table in tables:
            rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({quote(table)})").all()
            by_id: dict[int, list[Any]] = {}
            for row in rows:  # id, seq, table, from, to, on_update, on_delete, match
                by_id.setdefault(int(row[0]), []).append(row)
            for parts in by_id.values():
                parts.sort(key=lambda r: int(r[1]))
                columns = tuple(str(r[3]) for r in parts)
                found[(table, str(parts[0][2]), columns)] = (str(parts[0][5]), str(parts[0][6]))
    return found


def _action(value: Any, default: RefAction) -> RefAction:
    if value is None:
        return default
    try:
        return RefAction(" ".join(str(value).upper().split()))
    except ValueError:
        return default
