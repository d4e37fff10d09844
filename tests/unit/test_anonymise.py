"""Masking strategies (connectors/anonymise.py): values, NULLs and idempotence."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.anonymise import done_clause, is_pseudonym, keyed_hash, mask_value
from connectors.base import ColumnMask, Mask

PEPPER = b"unit-pepper-0123456789"
NULL = ColumnMask("c", Mask.NULL)
FIXED = ColumnMask("c", Mask.FIXED, "removed")
YEAR = ColumnMask("c", Mask.YEAR)
DIGITS = ColumnMask("c", Mask.POSTCODE_DIGITS)
HASH = ColumnMask("c", Mask.KEYED_HASH)
TEXT_MASKS = [NULL, FIXED, DIGITS, HASH]  # YEAR needs a date, so it is tested apart

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))  # as drivers give
# Near misses of a pseudonym: right length or prefix, wrong letters or case.
lookalikes = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(["anon-", "ANON-", "Anon-", "anon_", "anon"]),
    st.text(alphabet="0123456789abcdefABCDEFg.@ -", min_size=18, max_size=22),
)
dates = st.one_of(st.dates(), st.datetimes())


def masked(mask: ColumnMask, value: Any) -> Any:
    return mask_value(mask, value, PEPPER)


@pytest.fixture(scope="module")
def sqlite() -> Iterator[sa.Connection]:
    """An in-memory SQLite connection to evaluate `done_clause` with."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def done_in_sql(conn: sa.Connection, mask: ColumnMask, value: Any, kind: Any) -> bool:
    clause = done_clause(mask, sa.literal(value, kind), conn.dialect.name)
    return bool(conn.execute(sa.select(clause)).scalar())


# --- each mask ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [NULL, FIXED, YEAR, DIGITS, HASH], ids=str)
def test_none_stays_none(mask: ColumnMask) -> None:
    """Every mask leaves NULL as NULL: it holds no personal data."""
    assert masked(mask, None) is None


@pytest.mark.parametrize("value", ["Eva Smit", dt.date(1990, 5, 17), 42])
def test_null_mask_clears_any_value(value: Any) -> None:
    """The null mask replaces any value with NULL."""
    assert masked(NULL, value) is None


def test_fixed_mask_writes_its_text() -> None:
    """The fixed mask replaces a value with the mask's text."""
    assert masked(FIXED, "Eva Smit") == "removed"
    assert masked(ColumnMask("c", Mask.FIXED, "Former member"), "x") == "Former member"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(1990, 5, 17), dt.date(1990, 1, 1)),
        (dt.datetime(1990, 5, 17, 13, 45, 2, 5), dt.datetime(1990, 1, 1)),
        ("1990-05-17", "1990-01-01"),
        ("1990-05-17 08:30:00", "1990-01-01"),
        (dt.date(2000, 1, 1), dt.date(2000, 1, 1)),
        ("0044-03-15 BC", "0044-01-01 BC"),  # PostgreSQL's text for dates before year 1
        ("0044-03-15 10:00:00 BC", "0044-01-01 BC"),
        ("0044-03-15 10:00:00+00 BC", "0044-01-01 BC"),
    ],
)
def test_year_mask_keeps_only_the_year(value: Any, expected: Any) -> None:
    """The year mask generalises a date, timestamp or ISO text to 1 January of its year."""
    assert masked(YEAR, value) == expected


@pytest.mark.parametrize("value", ["Eva Smit", "15-01-1990", 1700000000, 2460000.5])
def test_year_mask_removes_what_it_cannot_read_as_a_date(value: Any) -> None:
    """A number or a text that is no ISO date may hold a date in another form: it becomes NULL."""
    assert masked(YEAR, value) is None


@pytest.mark.parametrize(
    "value",
    [
        *("", "  ", "0000-00-00", "2024-00-10", "2024-05-00 10:00:00", dt.date.min, dt.date.max),
        *(dt.datetime.min, dt.datetime.max, dt.datetime.max.replace(tzinfo=dt.UTC)),
        *("12000-06-01", "12000-06-01 10:00:00", "12000-06-01 10:00:00+00"),  # after 9999
    ],
)
def test_year_mask_leaves_values_that_hold_no_date(value: Any) -> None:
    """Empty text, zero dates and ±infinity (read as min/max) hold no date: left as they are."""
    assert masked(YEAR, value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1234 AB", "1234"), ("12345", "1234"), ("B-1000", "1000"), ("AB CD", None), ("1234", "1234")],
)
def test_postcode_mask_keeps_the_first_four_digits(value: str, expected: str | None) -> None:
    """The postcode mask keeps up to four digits, NULL without any; short values are done."""
    assert masked(DIGITS, value) == expected


def test_keyed_hash_is_a_prefixed_hex_pseudonym() -> None:
    """A keyed hash is 'anon-' and 20 lowercase hex digits, recognised as a pseudonym."""
    pseudonym = masked(HASH, "eva@example.org")
    assert re.fullmatch(r"anon-[0-9a-f]{20}", pseudonym)
    assert is_pseudonym(pseudonym)
    assert pseudonym == keyed_hash("eva@example.org", PEPPER)


def test_keyed_hash_depends_on_value_and_pepper() -> None:
    """Same value and pepper give the same pseudonym; another value or pepper another one."""
    assert keyed_hash("Eva Smit", PEPPER) == keyed_hash("Eva Smit", PEPPER)
    assert keyed_hash("Eva Smit", PEPPER) != keyed_hash("Eva Smid", PEPPER)
    assert keyed_hash("Eva Smit", PEPPER) != keyed_hash("Eva Smit", b"other-pepper")


def test_keyed_hash_hashes_non_text_as_text() -> None:
    """A number or date under the keyed hash is hashed by its text form."""
    assert masked(HASH, 1234) == keyed_hash("1234", PEPPER)


@pytest.mark.parametrize(
    "value",
    ["anon-hanna.bos@example.nl", "ANON-0123456789abcdef0123", "anon-0123456789abcdef0123\n"],
)
def test_a_lookalike_is_not_a_pseudonym(value: str) -> None:
    """A value only shaped like a pseudonym is not one, so the keyed hash replaces it."""
    assert not is_pseudonym(value)
    assert masked(HASH, value) == keyed_hash(value, PEPPER)


# --- properties ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2000, 1, 1, 0, 0, 0, 1),
        dt.datetime(2000, 1, 1, 0, 0, 1),
        dt.datetime(2000, 1, 1, 9),
    ],
)
def test_an_instant_on_new_years_day_at_another_time_is_not_done(
    sqlite: sa.Connection, value: dt.datetime
) -> None:
    """The year of an instant is midnight of its first of January: SQL must not take an
    instant on that day at another time for done, or its time of day is never masked."""
    assert masked(YEAR, value) != value
    assert not done_in_sql(sqlite, YEAR, value, sa.DateTime())


@given(mask=st.sampled_from(TEXT_MASKS), value=st.one_of(texts, lookalikes))
@example(mask=HASH, value="anon-0123456789abcdef0123")
def test_text_masks_are_idempotent(mask: ColumnMask, value: str) -> None:
    """Masking text twice gives what masking it once gives."""
    once = masked(mask, value)
    assert masked(mask, once) == once


@given(mask=st.sampled_from([*TEXT_MASKS, YEAR]), value=st.one_of(dates, dates.map(str)))
def test_date_masks_are_idempotent(mask: ColumnMask, value: Any) -> None:
    """Masking a date, timestamp or date text twice gives what masking it once gives."""
    once = masked(mask, value)
    assert masked(mask, once) == once


@given(mask=st.sampled_from(TEXT_MASKS), value=st.one_of(texts, lookalikes))
@example(mask=DIGITS, value="\u0661\u0662\u0663")  # Arabic-Indic digits are not 0-9
@example(mask=HASH, value="anon-0123456789abcdef0123\n")
def test_masked_text_is_done_in_sql(sqlite: sa.Connection, mask: ColumnMask, value: str) -> None:
    """SQL's done test holds for every masked text, so a masked row is never selected again."""
    assert done_in_sql(sqlite, mask, masked(mask, value), sa.String())


@given(value=dates)
def test_masked_dates_are_done_in_sql(sqlite: sa.Connection, value: dt.date) -> None:
    """SQL's done test holds for every date or timestamp under the year mask."""
    kind = sa.DateTime() if isinstance(value, dt.datetime) else sa.Date()
    assert done_in_sql(sqlite, YEAR, masked(YEAR, value), kind)


@given(mask=st.sampled_from(TEXT_MASKS), value=st.one_of(texts, lookalikes))
@example(mask=HASH, value="anon-hanna.bos@example.nl")
def test_sql_calls_text_done_only_when_the_mask_keeps_it(
    sqlite: sa.Connection, mask: ColumnMask, value: str
) -> None:
    """A text SQL deems done is one the mask maps to itself: no personal data is skipped."""
    if done_in_sql(sqlite, mask, value, sa.String()):
        assert masked(mask, value) == value
