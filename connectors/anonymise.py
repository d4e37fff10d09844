"""Masking strategies: each a pure function of one value, with an SQL test for "done".

The SQL test lets a connector leave already-anonymised rows out of its selection, which
is what makes anonymisation idempotent: a second run finds nothing left to do. Each
function maps a done value to itself, so applying a mask twice changes nothing either.
A NULL holds no personal data and is left as it is by every strategy.

A pseudonym is `anon-` followed by lowercase hex digits of an HMAC-SHA256 of the value keyed
with the pepper, cut to the mask's width: the same value and pepper give the same pseudonym
on every run, and the "done" test recognises exactly that shape (the prefix, then only
`0-9a-f` up to the width), which a real value is very unlikely to have. A keyed hash is the
pseudonym of width 25. Two different values get the same pseudonym with a probability of at
most n(n-1)/2 / 16^(width-5) for n values (the birthday bound; `collision_bound`).

The year mask reads what a date column may hold besides clean dates (see
`connectors.dates`): a value that holds no date at all (an empty text, a MariaDB zero date
such as `0000-00-00` or `2024-00-10`, PostgreSQL `±infinity`, read as the Python minimum or
maximum, and a PostgreSQL date after the year 9999, read as its text) is left as it is and
counts as done; a PostgreSQL date before the year 1 (read as its text, `0044-03-15 BC`) keeps
its year and era (`0044-01-01 BC`); a number or a text it cannot read as an ISO date may hold
a birth date in another form and becomes NULL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import ColumnMask, Mask

PSEUDONYM_PREFIX = "anon-"
PSEUDONYM_HEX = 20  # hex digits of a keyed hash
KEYED_HASH_LENGTH = len(PSEUDONYM_PREFIX) + PSEUDONYM_HEX  # 25 characters
# The narrowest pseudonym: 12 hex digits (48 bits); 100,000 values collide with a probability
# of at most 1.8e-5. Narrower ones give no useful bound (10 digits: 0.45% for 100,000).
PSEUDONYM_MIN_LENGTH = len(PSEUDONYM_PREFIX) + 12
PSEUDONYM_MAX_LENGTH = len(PSEUDONYM_PREFIX) + 64  # all of an HMAC-SHA256 in hex
_DIGITS_RE = re.compile(r"[^0-9]+")
POSTCODE_DIGITS = 4


def pseudonym(value: str, pepper: bytes, length: int = KEYED_HASH_LENGTH) -> str:
    """A stable pseudonym of exactly `length` characters (PSEUDONYM_MIN_LENGTH to
    PSEUDONYM_MAX_LENGTH): `anon-` and the first `length - 5` hex digits of the value's
    HMAC-SHA256 under `pepper`. Raises ValueError for a length outside those bounds."""
    if not PSEUDONYM_MIN_LENGTH <= length <= PSEUDONYM_MAX_LENGTH:
        raise ValueError(
            f"a pseudonym is {PSEUDONYM_MIN_LENGTH} to {PSEUDONYM_MAX_LENGTH} characters long"
        )
    digest = hmac.new(pepper, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[: length - len(PSEUDONYM_PREFIX)]


def keyed_hash(value: str, pepper: bytes) -> str:
    """A stable pseudonym: the same value under the same pepper gives the same result."""
    return pseudonym(value, pepper, KEYED_HASH_LENGTH)


def is_pseudonym(value: str, length: int = KEYED_HASH_LENGTH) -> bool:
    """True when `value` has the shape of a pseudonym of `length` characters."""
    return _shape(length).fullmatch(value) is not None


@lru_cache(maxsize=64)
def _shape(length: int) -> re.Pattern[str]:
    digits = length - len(PSEUDONYM_PREFIX)
    return re.compile(rf"{re.escape(PSEUDONYM_PREFIX)}[0-9a-f]{{{digits}}}")


def collision_bound(values: int, length: int) -> float:
    """An upper bound on the probability that any two of `values` different values get the
    same pseudonym of `length` characters: n(n-1)/2 pairs, each equal with 16^-(length-5)."""
    pairs = values * (values - 1) / 2
    return min(1.0, pairs / float(16 ** (length - len(PSEUDONYM_PREFIX))))


def mask_length(mask: ColumnMask) -> int:
    """The characters a pseudonym or keyed hash writes (ValueError for another mask)."""
    if mask.mask is Mask.KEYED_HASH:
        return KEYED_HASH_LENGTH
    if mask.mask is Mask.PSEUDONYM and mask.length is not None:
        return mask.length
    raise ValueError(f"mask {mask.mask} of {mask.column} has no pseudonym length")


def mask_value(mask: ColumnMask, value: Any, pepper: bytes) -> Any:
    """The anonymised form of `value`; a value already in that form comes back unchanged."""
    if value is None:
        return None
    if mask.mask is Mask.NULL:
        return None
    if mask.mask is Mask.FIXED:
        return mask.text
    if mask.mask is Mask.YEAR:
        return _year(value)
    if mask.mask is Mask.POSTCODE_DIGITS:
        text = str(value)
        digits = _DIGITS_RE.sub("", text)[:POSTCODE_DIGITS]
        return text if digits == text else (digits or None)
    if mask.mask in (Mask.KEYED_HASH, Mask.PSEUDONYM):
        text, length = str(value), mask_length(mask)
        return text if is_pseudonym(text, length) else pseudonym(text, pepper, length)
    raise ValueError(f"unknown mask {mask.mask!r}")


_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_BEYOND_9999 = re.compile(r"^\d{5,}-\d{2}-\d{2}")  # PostgreSQL's text for years past 9999
_NO_DATE = {dt.date.min, dt.date.max}
_NO_INSTANT = {dt.datetime.min, dt.datetime.max}


def _year(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        naive = value.replace(tzinfo=None)
        if naive in _NO_INSTANT or naive.date() == dt.date.max:  # ±infinity, "never"
            return value
        return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if isinstance(value, dt.date):
        return value if value in _NO_DATE else value.replace(month=1, day=1)
    if isinstance(value, str):
        if not value.strip():
            return value  # holds no date
        if _BEYOND_9999.match(value):
            return value  # past 9999-12-31: a "never", left as is like 9999-12-31 itself
        found = _ISO_DATE.match(value)
        if found is not None:
            if found[2] == "00" or found[3] == "00":
                return value  # a zero date or zero-in-date: holds no date
            if value.rstrip().endswith(" BC"):  # PostgreSQL's text for a date before year 1
                return f"{found[1]}-01-01 BC"
            return f"{found[1]}-01-01"
    return None  # cannot be generalised; it may hold a date in another form


def done_clause(
    mask: ColumnMask, column: sa.ColumnElement[Any], dialect: str = ""
) -> ColumnElement[bool]:
    """SQL that is true when `column` already holds its anonymised form (or NULL).

    `dialect` (the SQLAlchemy dialect name) lets the year mask count the values it leaves
    as they are, because they hold no date, as done. Built once per mask, column and
    dialect (a clause is immutable; building the pseudonym's took 3 ms, once per rule and
    query of every customer).
    """
    return _done_clause(mask, column, dialect)


@functools.lru_cache(maxsize=4096)
def _done_clause(
    mask: ColumnMask, column: sa.ColumnElement[Any], dialect: str
) -> ColumnElement[bool]:
    if mask.mask is Mask.NULL:
        return column.is_(None)
    if mask.mask is Mask.FIXED:
        return sa.or_(column.is_(None), column == mask.text)
    if mask.mask is Mask.YEAR:
        return _year_done(column, dialect)
    if mask.mask is Mask.POSTCODE_DIGITS:
        # Done when at most four characters, all digits: strip the digits, nothing is left.
        stripped: sa.ColumnElement[Any] = column
        for digit in "0123456789":
            stripped = sa.func.replace(stripped, digit, "")
        return sa.or_(
            column.is_(None),
            sa.and_(sa.func.length(column) <= POSTCODE_DIGITS, sa.func.length(stripped) == 0),
        )
    if mask.mask in (Mask.KEYED_HASH, Mask.PSEUDONYM):
        return sa.or_(column.is_(None), _pseudonym_clause(column, mask_length(mask)))
    raise ValueError(f"unknown mask {mask.mask!r}")


def _year_done(column: sa.ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    january_first = sa.and_(sa.extract("month", column) == 1, sa.extract("day", column) == 1)
    typed = isinstance(column.type, sa.Date | sa.DateTime)
    done: list[ColumnElement[bool]] = [column.is_(None)]
    # The year of an instant is its first of January at midnight (`_year` zeroes the time):
    # an instant on the first of January at another time of day is not done yet.
    instant = isinstance(column.type, sa.DateTime)
    if dialect == "sqlite":  # no date type: numbers are not dates, blank text holds none
        raw = sa.type_coerce(column, sa.String)
        done.append(sa.func.trim(raw) == "")
        text = sa.func.typeof(raw) == "text"
        if instant:  # what follows the date is blank, a T, zeros, colons and points only
            midnight = sa.func.trim(sa.func.substr(raw, 11), " T0:.") == ""
            january_first = sa.and_(january_first, midnight)
        done.append(sa.and_(text, sa.or_(january_first, raw >= "9999-12-31")))
        return sa.or_(*done)
    if instant:  # the instant equals its own day's start (fractions of a second included)
        midnight = column == sa.cast(sa.cast(column, sa.Date), column.type)
        january_first = sa.and_(january_first, midnight)
    done.append(january_first)
    if not typed:
        done.append(sa.func.trim(column) == "")
        return sa.or_(*done)
    # The last day there is (9999-12-31, also PostgreSQL's infinity): a "never", left as is.
    last = dt.datetime(9999, 12, 31) if isinstance(column.type, sa.DateTime) else dt.date.max
    done.append(column >= sa.literal(last, column.type))
    if dialect == "postgresql":
        done.append(sa.not_(sa.func.isfinite(column)))
    elif dialect in ("mysql", "mariadb"):
        done.append(sa.or_(sa.func.month(column) == 0, sa.func.dayofmonth(column) == 0))
    return sa.or_(*done)


def _pseudonym_clause(column: sa.ColumnElement[Any], length: int) -> ColumnElement[bool]:
    """SQL for `is_pseudonym(value, length)`: a value merely shaped like one is not done.

    LIKE fixes the length in characters (on PostgreSQL a CHAR(n) value keeps its padding
    for LIKE, which is why validate asks a CHAR(n) column for a pseudonym of width n);
    REPLACE, case-sensitive everywhere unlike LIKE and `=`, checks the prefix and that only
    lowercase hex digits follow; LENGTH(...) = 0, not = '', because MariaDB's comparison
    ignores trailing spaces.
    """
    size = len(PSEUDONYM_PREFIX)
    head = sa.func.replace(sa.func.substr(column, 1, size), PSEUDONYM_PREFIX, "")
    rest: ColumnElement[Any] = sa.func.substr(column, size + 1)
    for digit in "0123456789abcdef":
        rest = sa.func.replace(rest, digit, "")
    return sa.and_(
        column.like(PSEUDONYM_PREFIX + "_" * (length - size)),
        sa.func.length(head) == 0,
        sa.func.length(rest) == 0,
    )
