"""Time bases that hold something other than a clean date, per database.

A row is expired only when its time basis holds a readable date (or instant) from
`EARLIEST_BASIS` on that lies before the cutoff. Everything else is "unknown" and kept:

- NULL;
- MariaDB/MySQL zero dates (`0000-00-00`) and zero-in-date values (`2024-00-10`), which
  compare as very old numbers;
- PostgreSQL `-infinity` and `infinity`;
- SQLite text that its date functions cannot read (`''`, `15-01-2024`), and numbers out of
  range;
- any date before 1900: a placeholder (`1800-01-01`, `0001-01-01`), not a record's real date.

SQLite has no date type: a basis column may hold ISO text with a `T` or a zone
(`2023-12-31T22:30:00-02:00`) or a number (a column declared DATE has NUMERIC affinity, so
even the text `'20200131'` is stored as the number 20200131). These are read with SQLite's
own date functions, in UTC, in this order:

- a whole number (or an 8-digit text) from 10000101 to 99991231 is a calendar date written
  YYYYMMDD (20200131 is 2020-01-31), never Unix seconds (which would make it a day in 1970,
  "very old"); one that is no real day (20201399, 20200230) is unknown, kept;
- a number from 0 to 5373484.5 is a Julian day number (SQLite's `auto` rule);
- a number from 10^11 on (in absolute value) is Unix milliseconds (from 1973-03-03 on; as
  seconds it would lie past the year 5000);
- any other number is Unix seconds.

So SQLite compares a normalised text, not the raw value; this costs the basis index (SQLite
is for demos and small databases).

The lower bound also keeps every odd value out of `MIN(basis)`, so the backlog's `oldest`
value and the lag computed from it are always a real date.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import EARLIEST_BASIS, Basis, Target
from connectors.sqlbind import Bind, compare

_SQLITE_DATE = "%Y-%m-%d"
_SQLITE_INSTANT = "%Y-%m-%d %H:%M:%f"  # SS.SSS: milliseconds
_JULIAN_DAY_MAX = 5373484.5  # 9999-12-31 as a Julian day number: SQLite's `auto` limit
# Whole numbers (and 8-digit texts) from 1000-01-01 to 9999-12-31 written as YYYYMMDD.
_YMD_LOW, _YMD_HIGH = 10000101, 99991231
_EIGHT_DIGITS = sa.literal("[0-9]" * 8, sa.String)
# From here on (in absolute value) a number is Unix milliseconds: 1973-03-03T09:46:40Z as
# milliseconds; as seconds it would be the year 5138, no record's date.
_MILLISECONDS_FROM = 100_000_000_000


def is_instant(column: sa.ColumnElement[Any]) -> bool:
    """True for a TIMESTAMP/DATETIME column, False for a DATE column."""
    return isinstance(column.type, sa.DateTime)


def is_aware(column: sa.ColumnElement[Any]) -> bool:
    """True for a column that stores instants with their zone (PostgreSQL timestamptz)."""
    return is_instant(column) and bool(getattr(column.type, "timezone", False))


def cutoff_for(column: sa.ColumnElement[Any], target: Target | Basis) -> dt.date | dt.datetime:
    """The cutoff of `target` (or of another rule's `Basis`) in the column's terms: a date, a
    naive UTC instant or an aware instant."""
    if not is_instant(column):
        return target.cutoff_date
    if is_aware(column):
        return target.cutoff_instant
    return target.cutoff_instant.astimezone(dt.UTC).replace(tzinfo=None)


def _earliest(column: sa.ColumnElement[Any]) -> dt.date | dt.datetime:
    if not is_instant(column):
        return EARLIEST_BASIS
    start = dt.datetime.combine(EARLIEST_BASIS, dt.time())
    return start.replace(tzinfo=dt.UTC) if is_aware(column) else start


def _sqlite_text(value: dt.date | dt.datetime, instant: bool) -> str:
    if not instant:
        return value.isoformat()[:10]
    assert isinstance(value, dt.datetime)  # noqa: S101  (narrowing for the type checker)
    return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}"


def _sqlite_calendar(raw: ColumnElement[Any]) -> tuple[ColumnElement[bool], ColumnElement[Any]]:
    """(is it a YYYYMMDD number or 8-digit text, its 'YYYY-MM-DD' text when that is a real
    day of the calendar, else NULL)."""
    digits = sa.type_coerce(
        sa.case(
            (sa.func.typeof(raw) == "integer", raw),
            (
                sa.and_(sa.func.typeof(raw) == "text", raw.op("GLOB")(_EIGHT_DIGITS)),
                sa.cast(raw, sa.Integer),
            ),
        ),
        sa.Integer,
    )
    calendar = digits.between(_YMD_LOW, _YMD_HIGH)
    ymd = sa.func.printf("%04d-%02d-%02d", digits // 10000, (digits // 100) % 100, digits % 100)
    real_day = sa.func.date(sa.func.julianday(ymd)) == ymd  # 2020-02-30 comes back as 03-01
    return calendar, sa.case((real_day, ymd))


def sqlite_normal(column: sa.ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite: the basis as comparable UTC text ('YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS.SSS'),
    NULL when it holds no date the worker reads (module docstring: YYYYMMDD, Julian day,
    Unix milliseconds or seconds, ISO text)."""
    fmt = _SQLITE_INSTANT if is_instant(column) else _SQLITE_DATE
    raw = sa.type_coerce(column, sa.types.NullType())
    number = sa.func.typeof(raw).in_(["integer", "real"])
    julian = raw.between(sa.literal(0, sa.Float), sa.literal(_JULIAN_DAY_MAX, sa.Float))
    calendar, ymd = _sqlite_calendar(raw)
    milliseconds = sa.func.abs(raw) >= sa.literal(_MILLISECONDS_FROM, sa.Float)
    normal = sa.case(
        (calendar, sa.func.strftime(fmt, ymd)),
        (sa.and_(number, julian), sa.func.strftime(fmt, raw)),
        (
            sa.and_(number, milliseconds),
            sa.func.strftime(fmt, raw / sa.literal(1000.0, sa.Float), "unixepoch"),
        ),
        (number, sa.func.strftime(fmt, raw, "unixepoch")),
        else_=sa.func.strftime(fmt, raw),
    )
    return sa.type_coerce(normal, sa.String)


def _real_date_mysql(column: sa.ColumnElement[Any]) -> ColumnElement[bool]:
    return sa.and_(sa.func.month(column) > 0, sa.func.dayofmonth(column) > 0)


def expired(
    column: sa.ColumnElement[Any], target: Target, dialect: str, bind: Bind | None = None
) -> ColumnElement[bool]:
    """SQL true for a readable basis from EARLIEST_BASIS on, before the target's cutoff.

    With `bind` (connectors.sqlbind), the cutoff is a parameter derived per customer from
    the input `bind` stands for (a target or a `Basis`); `target` holds the one built for."""
    cutoff = cutoff_for(column, target)
    if dialect == "sqlite":
        normal = sqlite_normal(column)
        instant = is_instant(column)
        if bind is None:
            text: ColumnElement[Any] = sa.literal(_sqlite_text(cutoff, instant), sa.String)
        else:
            text = bind(lambda c: _sqlite_text(cutoff_for(column, c), instant), sa.String())
        return sa.and_(
            normal >= sa.literal(_sqlite_text(_earliest(column), instant), sa.String),
            normal < text,
        )
    before = compare(column, operators.lt, cutoff, bind, lambda c: cutoff_for(column, c))
    clauses = [column >= _earliest(column), before]
    if dialect in ("mysql", "mariadb"):
        clauses.append(_real_date_mysql(column))
    return sa.and_(*clauses)


def unknown(column: sa.ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    """SQL true for a basis that is not NULL but no readable date from EARLIEST_BASIS on."""
    if dialect == "sqlite":
        normal = sqlite_normal(column)
        earliest = _sqlite_text(_earliest(column), is_instant(column))
        readable = sa.and_(normal.is_not(None), normal >= sa.literal(earliest, sa.String))
    elif dialect == "postgresql":
        readable = sa.and_(column >= _earliest(column), sa.func.isfinite(column))
    elif dialect in ("mysql", "mariadb"):
        readable = sa.and_(column >= _earliest(column), _real_date_mysql(column))
    else:
        readable = column >= _earliest(column)
    return sa.and_(column.is_not(None), sa.not_(readable))


def converted(column: sa.ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    """SQL true for a readable basis stored in another form (SQLite: a number, or text with
    a 'T' or a zone). Other databases store dates in date types: always false."""
    if dialect != "sqlite":
        return sa.false()
    raw = sa.type_coerce(column, sa.String)
    shaped = sa.or_(
        sa.func.typeof(raw).in_(["integer", "real"]),
        raw.op("GLOB")(_EIGHT_DIGITS),
        raw.op("GLOB")(sa.literal("*T*", sa.String)),
        raw.op("GLOB")(sa.literal("*Z", sa.String)),
        raw.op("GLOB")(sa.literal("*[+-][0-9][0-9]:[0-9][0-9]", sa.String)),
    )
    return sa.and_(column.is_not(None), sa.not_(unknown(column, dialect)), shaped)


def oldest(column: sa.ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The expression whose MIN over the expired rows is the oldest basis value."""
    if dialect == "sqlite":
        return sa.func.min(sqlite_normal(column), type_=sa.String)
    return sa.func.min(sa.type_coerce(column, sa.types.NullType()))


def read_oldest(value: Any, column: sa.ColumnElement[Any]) -> dt.date | dt.datetime | None:
    """A MIN(...) result as a date or a (naive UTC, or aware) datetime; None when unreadable."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time()) if is_instant(column) else value
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if is_instant(column) else parsed.date()
