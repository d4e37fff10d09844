"""Tenant values compared exactly as the database stores them.

A customer file gives its tenant as a whole number or a text. Before it is bound, the value
is converted to the tenant column's reflected type, and refused (`TenantValueError`) when the
conversion is not exact: `"01042"` for an integer column would match 1042 through the
database's implicit cast, `"1042abc"` would match 1042 on MariaDB, `true` would match 1.

Text is compared twice: with a plain `=`, so the column's index is used, and in a binary
collation, so that a case- or accent-insensitive column collation cannot widen the match
(`'KDV-A'` or `'kdv-á'` never match `'kdv-a'`):

- PostgreSQL: `CAST(col AS TEXT) COLLATE "C" = :tenant`;
- MariaDB/MySQL: `col = CONVERT(:tenant USING utf8mb4) COLLATE utf8mb4_bin` (the literal's
  explicit collation wins, also for a latin1 column) and `CHAR_LENGTH(col) = n`, because
  `utf8mb4_bin` ignores trailing spaces;
- SQLite: `col = :tenant COLLATE binary`.
"""

from __future__ import annotations

import enum
import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from connectors.base import SchemaError, TenantValueError
from connectors.sqlbind import Bind, compare
from connectors.tenantrange import check_fits

_WHOLE_NUMBER = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER_WRITTEN_OTHERWISE = re.compile(r"[+-]?[0-9]+")


class TenantKind(enum.StrEnum):
    """What a tenant column holds, as far as comparing a tenant value goes."""

    INTEGER = "integer"
    TEXT = "text"
    UUID = "uuid"


def kind_of_type(type_: sa.types.TypeEngine[Any]) -> TenantKind | None:
    """The kind of a reflected column type; None for a type no tenant can be compared with."""
    if isinstance(type_, sa.Boolean):
        return None
    if isinstance(type_, sa.Integer):
        return TenantKind.INTEGER
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float) and type_.scale == 0:
        return TenantKind.INTEGER
    if isinstance(type_, sa.Uuid):
        return TenantKind.UUID
    if isinstance(type_, sa.String):
        return TenantKind.TEXT
    return None


def kind_of_value(value: Any) -> TenantKind | None:
    """The kind of a stored Python value (the in-memory connector has no column types)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return TenantKind.INTEGER
    if isinstance(value, str):
        return TenantKind.TEXT
    if isinstance(value, uuid.UUID):
        return TenantKind.UUID
    return None


def exact_tenant(value: Any, kind: TenantKind, column: str) -> int | str | uuid.UUID:
    """`value` (a customer's `tenant`) as `column` stores it.

    Raises TenantValueError, saying what to write instead, when no exact conversion exists:
    a bool, a fraction or any other type; for an integer column a text that is not a whole
    number written the one way the database writes it (no leading zeros, no sign, no
    spaces); for a UUID column a text that is not a UUID in its usual form.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TenantValueError(
            f"the tenant value {value!r} is not a whole number or a text; write the customer's "
            f"value of {column} exactly as the database stores it, e.g. 1042 or 'kdv-a'"
        )
    if kind is TenantKind.TEXT:
        return value if isinstance(value, str) else str(value)
    if kind is TenantKind.INTEGER:
        if isinstance(value, int):
            return value
        if _WHOLE_NUMBER.fullmatch(value):
            return int(value)
        if _NUMBER_WRITTEN_OTHERWISE.fullmatch(value):
            raise TenantValueError(
                f"the tenant value {value!r} is a text, but {column} holds whole numbers, which "
                f"have no leading zeros or signs: {value!r} would match the rows of "
                f"{int(value)}; write {int(value)} if that is this customer's number"
            )
        raise TenantValueError(
            f"the tenant value {value!r} is not a whole number, but {column} holds whole "
            "numbers; write the customer's number as the database stores it, e.g. 1042"
        )
    if isinstance(value, str):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            parsed = None
        if parsed is not None and str(parsed) == value.lower():
            return parsed
    raise TenantValueError(
        f"the tenant value {value!r} is not a UUID, but {column} holds UUIDs; write it in "
        "its usual form, e.g. '123e4567-e89b-12d3-a456-426614174000'"
    )


class _Utf8mb4Bin(FunctionElement[str]):
    """MariaDB/MySQL: `CONVERT(x USING utf8mb4) COLLATE utf8mb4_bin`, whatever the connection's
    character set, so that the comparison is byte for byte on the characters."""

    name = "utf8mb4_bin"
    type = sa.String()
    inherit_cache = True


@compiles(_Utf8mb4Bin)
def _compile_utf8mb4_bin(element: _Utf8mb4Bin, compiler: SQLCompiler, **kw: Any) -> str:
    (argument,) = list(element.clauses)
    return f"CONVERT({compiler.process(argument, **kw)} USING utf8mb4) COLLATE utf8mb4_bin"


def tenant_clause(
    column: sa.ColumnElement[Any], value: Any, dialect: str, bind: Bind | None = None
) -> ColumnElement[bool]:
    """SQL that is true exactly for the rows whose `column` holds the tenant `value`.

    Raises SchemaError when the column's type holds no tenant (not integer, text or UUID),
    TenantValueError when `value` does not convert exactly (see `exact_tenant`) or lies
    outside the column's declared range or length (`connectors.tenantrange`). With `bind`
    (connectors.sqlbind), the values compared are parameters derived per customer from its
    tenant value by the same checks (`value`: the one the statement is built for).
    """
    table = getattr(getattr(column, "table", None), "name", "?")
    where = f"{table}.{getattr(column, 'name', '?')}"
    kind = kind_of_type(column.type)
    if kind is None:
        raise SchemaError(
            f"the tenant column {where} is of type {column.type!r}, which the worker cannot "
            "compare exactly; a tenant column must hold whole numbers, text or UUIDs"
        )

    def exact(raw: Any) -> int | str | uuid.UUID:
        bound = exact_tenant(raw, kind, where)
        check_fits(bound, column.type, dialect, where)
        return bound

    bound = exact(value)

    def put(type_: sa.types.TypeEngine[Any]) -> ColumnElement[Any]:
        return sa.literal(bound, type_) if bind is None else bind(exact, type_)

    plain: ColumnElement[bool] = column == put(column.type)
    if kind is not TenantKind.TEXT:
        return plain
    assert isinstance(bound, str)  # noqa: S101  (narrowing for the type checker)
    if dialect == "postgresql":
        exact_match = sa.cast(column, sa.Text).collate("C") == put(sa.Text())
    elif dialect in ("mysql", "mariadb"):
        chars = sa.func.char_length(column)
        length = compare(chars, operators.eq, len(bound), bind, lambda t: len(str(exact(t))))
        exact_match = sa.and_(column == _Utf8mb4Bin(put(sa.String())), length)
    elif dialect == "sqlite":
        exact_match = column == put(sa.String()).collate("binary")
    else:  # no dialect the worker supports; the plain comparison is all it can do
        return plain
    return sa.and_(plain, exact_match)
