"""Record-key hashes: one text per key whatever its type, an unambiguous encoding, as documented."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

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


@given(st.lists(st.one_of(st.integers(), st.text(), st.dates()), min_size=1, max_size=3))
def test_the_fast_hasher_equals_the_plain_formula(key: list[object]) -> None:
    """KeyHasher (a copied HMAC state) computes exactly HMAC-SHA256 over the whole encoding."""
    fields = ["kdv-zonnestraal", "flexkids", "child", *(key_text(k) for k in key)]
    expected = hmac.new(PEPPER, encode_fields(fields), hashlib.sha256).hexdigest()
    assert KeyHasher(PEPPER, "kdv-zonnestraal", "flexkids", "child")(tuple(key)) == expected
