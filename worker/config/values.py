"""The scalar values of configuration files, each with its bounds: SQL identifiers, periods,
customer dates and tenant values.

Every check here runs offline, before any database is opened. A value that would reach SQL
(a table or column name) must be a plain identifier, so it can never carry SQL of its own; a
number must fit what the worker computes with it (a period that overflows a date is refused
here, not found at 02:00 by a run); a tenant value must be exactly one whole number or one
text, never a value YAML or a driver would convert on the way.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from connectors.anonymise import (
    PSEUDONYM_MAX_LENGTH,
    PSEUDONYM_MIN_LENGTH,
    PSEUDONYM_PREFIX,
    collision_bound,
)
from worker.periods import Period, Unit

# PostgreSQL cuts identifiers at 63 bytes (NAMEDATALEN - 1): a longer name would silently name
# another column. MariaDB allows 64; the stricter limit holds for both.
MAX_IDENTIFIER = 63
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

# Ids (customers, rules), environment variable names and setting names in the files.
_ID_RE = r"^[a-z0-9][a-z0-9_.-]*$"
_ENV_RE = r"^[A-Z_][A-Z0-9_]*$"
_NAME_RE = r"^[a-z][a-z0-9_]*$"
MAX_ID = 100  # ids end up in metric labels, job ids and file names

# A period beyond 50 years is a typo, not a policy; it also keeps every cutoff inside the
# calendar (a date minus 10**30 days does not exist).
ABSURD = {Unit.DAYS: 18_262, Unit.MONTHS: 600, Unit.YEARS: 50}
_PERIOD_RE = re.compile(r"\s*([0-9]+)\s*([dmy])\s*")
_SHORT = {"d": Unit.DAYS, "m": Unit.MONTHS, "y": Unit.YEARS}

# Customer dates (end_of_service …): years the worker's date arithmetic is checked for.
FIRST_YEAR, LAST_YEAR = 1900, 2199
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")

# A tenant value binds to an integer column of at most 64 bits, or to a text column.
TENANT_INT_MAX = 2**63 - 1
TENANT_TEXT_MAX = 255
_NULL_WORDS = frozenset({"null", "none", "nil", "~", "undefined"})


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, for messages about hostile input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}…{text[-4:]}"


# --- identifiers -------------------------------------------------------------------------


def identifier(value: Any) -> Any:
    """Check a table or column name: a plain SQL identifier, at most 63 characters.

    Plain: an ASCII letter or `_`, then letters, digits, `_` or `$`. Raises ValueError
    (with the fix) otherwise; a value that is not text is left to the type check.
    """
    if not isinstance(value, str):
        return value
    if not _IDENTIFIER_RE.fullmatch(value):
        raise ValueError(
            f"{short(value)} is not a plain SQL identifier; write the table or column name "
            "with letters, digits and _ only (starting with a letter or _), as the database "
            "names it"
        )
    if len(value) > MAX_IDENTIFIER:
        raise ValueError(
            f"{short(value)} is {len(value)} characters long; SQL identifiers have at most "
            f"{MAX_IDENTIFIER} (PostgreSQL cuts longer ones): use the name the database has"
        )
    return value


Identifier = Annotated[str, BeforeValidator(identifier)]


# --- periods -----------------------------------------------------------------------------


def check_amount(amount: int, unit: Unit, what: str = "a period") -> None:
    """Raise ValueError unless 1 <= amount <= 50 years in `unit` (18 262 d, 600 m, 50 y)."""
    if amount < 1:
        raise ValueError(
            f"{what} of {amount} {unit} would make data eligible the day its time basis "
            "passes; set at least 1 (and think twice: is that the promise?)"
        )
    if amount > ABSURD[unit]:
        raise ValueError(
            f"{what} of {short(amount, 40)} {unit} is more than 50 years "
            f"({ABSURD[unit]} {unit}): an absurd period is taken for a typo; correct it"
        )


def parse_period(value: Any) -> Period:
    """Read "90d", "24m" or "7y" into a Period of 1 day to 50 years.

    Raises ValueError naming the fix for anything else: another type, another shape, zero,
    or a number too large (e.g. "1000000000000000000000000000000d").
    """
    if isinstance(value, Period):
        check_amount(value.amount, value.unit)
        return value
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{short(value)} is not a period; write for example 90d, 24m or 7y"
        )
    match = _PERIOD_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{short(value)} is not a period; write a whole number followed by d, m or y, "
            "for example 90d, 24m or 7y"
        )
    digits, unit = match.group(1), _SHORT[match.group(2)]
    if len(digits) > 6:  # before int(): never convert a thousand digits
        raise ValueError(
            f"{short(value)} is more than 50 years: an absurd period is taken for a typo; "
            "correct it"
        )
    amount = int(digits)
    check_amount(amount, unit)
    return Period(amount, unit)


# --- customer dates ----------------------------------------------------------------------


def customer_date(value: Any) -> dt.date:
    """Read a customer date written as YYYY-MM-DD, in the years 1900 to 2199.

    The YAML loader leaves dates as text (see `worker.config.yamlsafe`), so an impossible
    date such as 2026-02-30 is reported here, at its place in the file. Numbers (epoch
    seconds) and date-times are refused: a customer date is a calendar day.
    """
    if isinstance(value, dt.datetime):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{value.isoformat()} is a date and time; write the day: YYYY-MM-DD"
        )
    if isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{short(value)} is not a date; write it as YYYY-MM-DD, e.g. 2026-06-30"
        )
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{short(value)} is not a date; write it as YYYY-MM-DD, e.g. 2026-06-30")
    year = int(match.group(1))
    try:
        day = dt.date(year, int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise ValueError(
            f"{text} is not a day of the calendar ({exc}); correct the date (YYYY-MM-DD)"
        ) from None
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(
            f"{text} is outside the years {FIRST_YEAR} to {LAST_YEAR} the worker computes with; "
            "correct the year"
        )
    return day


CustomerDate = Annotated[dt.date, BeforeValidator(customer_date)]


# --- tenant values -----------------------------------------------------------------------


def tenant_value(value: Any) -> Any:
    """Check a customer's tenant value as written: one whole number or one text, exactly.

    Refused, each with the fix: true/false (YAML reads `yes`, `on`, `true` as booleans, and a
    driver would bind true as 1), decimal numbers, null or an empty text, text with spaces
    around it or control characters (a binary comparison with trailing-space padding would
    widen the match), numbers outside 64 bits and texts over 255 characters. Returns the
    value unchanged: the worker binds it converted to the tenant column's type.
    """
    if value is None:
        raise ValueError(
            "the tenant is empty; write this customer's value of the tenant column, a whole "
            "number (1042) or a quoted text ('KDV-A')"
        )
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{str(value).lower()} is a yes/no value, not a tenant (YAML reads true, yes and "
            "on as true); write the customer's value, and quote it if it is a word: 'on'"
        )
    if isinstance(value, int):
        if not -TENANT_INT_MAX - 1 <= value <= TENANT_INT_MAX:
            raise ValueError(
                f"{short(value, 30)} does not fit a 64-bit tenant column; correct the value"
            )
        return value
    if isinstance(value, float):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{value!r} is a decimal number; a tenant is a whole number (1042) or a quoted "
            "text ('1042.5')"
        )
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{short(value)} is not a tenant value; write a whole number (1042) or a quoted "
            "text ('KDV-A')"
        )
    if value.strip() == "" or value.strip().lower() in _NULL_WORDS:
        raise ValueError(
            f"{short(value)} reads as an empty value; write this customer's value of the "
            "tenant column"
        )
    if value != value.strip():
        raise ValueError(
            f"{short(value)} has spaces around it; a database may ignore trailing spaces when "
            "it compares, so remove them"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{short(value)} holds control characters; write the plain value")
    if len(value) > TENANT_TEXT_MAX:
        raise ValueError(
            f"the tenant text is {len(value)} characters long; at most {TENANT_TEXT_MAX}"
        )
    return value


# --- pseudonyms --------------------------------------------------------------------------


def pseudonym_length(value: Any) -> int:
    """The width of `{pseudonym: {length: N}}`: a whole number of characters from
    PSEUDONYM_MIN_LENGTH (17) to PSEUDONYM_MAX_LENGTH (69). Narrower pseudonyms have too few
    hex digits for a useful collision bound (connectors.anonymise.collision_bound); the
    message says what the asked width would give. Raises ValueError with the fix."""
    form = "write {pseudonym: {length: N}}, N the column's width in characters"
    if not isinstance(value, dict) or set(value) != {"length"}:
        raise ValueError(f"{short(value)} is not a pseudonym's settings; {form}")
    length = value["length"]
    if isinstance(length, bool) or not isinstance(length, int):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"length {short(length)} is not a whole number; {form}"
        )
    if length > PSEUDONYM_MAX_LENGTH:
        raise ValueError(
            f"length {length} is more than a pseudonym holds ({PSEUDONYM_MAX_LENGTH}: "
            f"{PSEUDONYM_PREFIX!r} and 64 hex digits); set at most {PSEUDONYM_MAX_LENGTH}"
        )
    if length < PSEUDONYM_MIN_LENGTH:
        digits = max(0, length - len(PSEUDONYM_PREFIX))
        chance = collision_bound(10_000, length) if digits else 1.0
        raise ValueError(
            f"a pseudonym of {length} characters leaves {digits} hex digit(s) after "
            f"{PSEUDONYM_PREFIX!r}: two of 10,000 people would share one with a probability "
            f"up to {chance:.2g}; set a length of at least {PSEUDONYM_MIN_LENGTH} (widen the "
            'column if it is narrower), or use "null" where no link is needed'
        )
    return length
