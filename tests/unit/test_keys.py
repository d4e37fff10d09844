"""Record-key hashes: one text per key whatever its type, an unambiguous encoding, as documented."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import SchemaError
from tests.support import REPO
from worker.keys import KeyHasher, encode_fields, key_text, record_key_hash

PEPPER = b"keys-test-pepper-0123456789"


def test_the_operator_key_hashes_like_the_database_key() -> None:
    """`--key 7` (text) names the row whose integer key is 7; dates the same way."""
    args = (PEPPER, "kdv-zonnestraal", "flexkids", "invoice")
    assert record_key_hash(*args, (7,)) == record_key_hash(*args, ("7",))
    day = dt.date(2026, 1, 31)
    assert record_key_hash(*args, (day,)) == record_key_hash(*args, ("2026-01-31",))
    assert record_key_hash(*args, (1042, 7)) == record_key_hash(*args, ("1042", "7"))
    assert record_key_hash(*args, (7,)) != record_key_hash(*args, (8,))
    assert record_key_hash(*args, (7,)) != record_key_hash(
        PEPPER, "other", "flexkids", "invoice", (7,)
    )


@given(st.lists(st.text(), max_size=5), st.lists(st.text(), max_size=5))
def test_the_encoding_never_confuses_two_field_lists(a: list[str], b: list[str]) -> None:
    """Netstrings are injective: different field lists never encode alike (`a,b` vs `a`,`b`)."""
    if a != b:
        assert encode_fields(a) != encode_fields(b)


KEY_PARTS = st.one_of(
    st.integers(),
    st.booleans(),
    st.text(),
    st.dates(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.binary(max_size=8),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(
    st.lists(KEY_PARTS, min_size=1, max_size=3),
    st.binary(max_size=100),  # peppers longer than SHA-256's block (64 bytes) are hashed first
    st.text(min_size=1, max_size=20),
)
def test_the_fast_hasher_equals_the_plain_formula(
    key: list[object], pepper: bytes, customer: str
) -> None:
    """KeyHasher (two prepared SHA-256 states) computes exactly `hmac.new(pepper, encoding,
    sha256)` over the whole encoding, for every kind of key part, pepper length and name;
    and a remembered page gives the same hashes."""
    fields = [customer, "flexkids", "child", *(key_text(k) for k in key)]
    expected = hmac.new(pepper, encode_fields(fields), hashlib.sha256).hexdigest()
    hasher = KeyHasher(pepper, customer, "flexkids", "child")
    assert hasher(tuple(key)) == expected
    zero = hmac.new(pepper, encode_fields([customer, "flexkids", "child", "0"]), "sha256")
    # (False,) == (0,) in Python; they are different records (`false`, `0`).
    assert hasher.remember([tuple(key), (0,)]) == [expected, zero.hexdigest()]
    assert hasher((0,)) == zero.hexdigest()
    assert hasher(tuple(key)) == expected


DOCUMENTED = [
    (7, "7"),
    (-12, "-12"),
    ("K-001", "K-001"),
    (dt.date(2020, 1, 1), "2020-01-01"),
    (dt.datetime(2020, 1, 1, 10, 0), "2020-01-01T10:00:00"),
    (dt.datetime(2020, 1, 1, 10, 0, 0, 250000), "2020-01-01T10:00:00.250000"),
    (
        dt.datetime(2020, 1, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "2020-01-01T09:00:00+00:00",
    ),
    (uuid.UUID("0B8E4C6A-1F2D-4C3B-9A7E-5D6C7B8A9F01"), "0b8e4c6a-1f2d-4c3b-9a7e-5d6c7b8a9f01"),
    (decimal.Decimal("7.10"), "7.10"),
    (0.1, "0.1"),
    (b"\x00\xff", "00ff"),
    (True, "true"),
]


@pytest.mark.parametrize(("value", "text"), DOCUMENTED)
def test_each_key_part_is_written_as_docs_audit_md_says(value: object, text: str) -> None:
    assert key_text(value) == text
    docs = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Record-key hashes") :]
    assert f"`{text}`" in section, f"docs/audit.md gives no example {text!r}"


@given(
    st.datetimes(timezones=st.just(dt.UTC)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_a_date_time_hashes_the_same_in_every_session_time_zone(
    instant: dt.datetime, minutes: int
) -> None:
    """PostgreSQL returns `timestamptz` in the session's zone: the text must not depend on it."""
    shown = instant.astimezone(dt.timezone(dt.timedelta(minutes=minutes)))
    assert key_text(shown) == key_text(instant)
    assert key_text(instant).endswith("+00:00")


def test_a_null_key_part_fails_with_a_schema_error_naming_the_table() -> None:
    """A NULL key part (a key on a nullable column) is a SchemaError, the rule's own failure,
    naming the table and the fix; never a bare ValueError."""
    hasher = KeyHasher(b"pepper", "kdv-a", "kids", "acct")
    with pytest.raises(SchemaError, match=r"a row of acct has NULL in its mapped key.*NOT NULL"):
        hasher((1, None))
