"""Whether a tenant value fits the tenant column it is compared with.

A value outside the column's range never reaches the database: PostgreSQL would fail the
statement (`smallint out of range`), an explicit cast to `varchar(n)` would cut a longer text
to one that another tenant has, and on MariaDB a value no row can hold only hides a typo.
`check_fits` raises `TenantValueError`, naming the column's type and the fix, so `validate`
refuses the customer and a run never sends the value.

The ranges are the declared ones: integer widths (PostgreSQL SMALLINT, INTEGER, BIGINT;
MariaDB TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT, each SIGNED or UNSIGNED), NUMERIC(p, 0)
digits, and text lengths in characters (VARCHAR(n), CHAR(n)). SQLite enforces neither widths
nor lengths (a column declared SMALLINT or VARCHAR(5) holds any 64-bit integer or any text:
type affinity), so there only the 64-bit range applies.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from connectors.base import TenantValueError

_BITS_BY_NAME = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "BIGINT": 64}


def integer_range(type_: sa.types.TypeEngine[Any], dialect: str) -> tuple[int, int] | None:
    """(lowest, highest) whole number `type_` holds on `dialect`; None for no integer type."""
    if dialect == "sqlite":
        return -(2**63), 2**63 - 1
    if isinstance(type_, sa.Integer):
        name = type(type_).__name__.upper()
        if isinstance(type_, sa.SmallInteger):
            bits = 16
        elif isinstance(type_, sa.BigInteger):
            bits = 64
        else:
            bits = _BITS_BY_NAME.get(name, 32)
        if getattr(type_, "unsigned", False):  # MariaDB/MySQL UNSIGNED
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if isinstance(type_, sa.Numeric) and type_.precision is not None:
        top = 10**type_.precision - 1
        unsigned = bool(getattr(type_, "unsigned", False))
        return (0 if unsigned else -top), top
    if isinstance(type_, sa.Numeric):
        return None  # NUMERIC without a precision: any whole number
    return None


def check_fits(
    bound: int | str | uuid.UUID, type_: sa.types.TypeEngine[Any], dialect: str, where: str
) -> None:
    """Raise TenantValueError when `bound` (a tenant value converted to the kind of the column
    `where`) lies outside what the column's declared type `type_` holds on `dialect`."""
    if isinstance(bound, int):
        limits = integer_range(type_, dialect)
        if limits is not None and not limits[0] <= bound <= limits[1]:
            raise TenantValueError(
                f"the tenant value {bound} does not fit {where}, of type {type_} (whole numbers "
                f"from {limits[0]} to {limits[1]}): no row of it can hold this value, and the "
                "database would fail or wrap the comparison; correct the customer's tenant to "
                "the value the column holds (or widen the column)"
            )
    elif isinstance(bound, str) and dialect != "sqlite":
        length = getattr(type_, "length", None)
        if isinstance(length, int) and len(bound) > length:
            raise TenantValueError(
                f"the tenant value {bound!r} is {len(bound)} characters long, but {where} is "
                f"of type {type_} (at most {length}): no row of it can hold this value, and a "
                "cut copy would match another tenant's; correct the customer's tenant to the "
                "value the column holds (or widen the column)"
            )
