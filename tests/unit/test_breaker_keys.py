"""A fault found in `KeyHasher.remember` (worker/keys.py, 4df984c): the memo is keyed by the
key's Python value and its parts' types, but two values of one type can be equal in Python
and still have different canonical texts (`Decimal('1.0')` and `Decimal('1.00')`: "a
decimal as the database returns it, with its scale"; `0.0` and `-0.0`). After a page is
remembered, the hasher answers the other key with the remembered key's hash: the same call
gives two different hashes for one key depending on what was remembered before."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from worker.keys import KeyHasher, record_key_hash

PEPPER = b"breaker-test-pepper"


@pytest.mark.parametrize(
    ("remembered", "asked"),
    [
        (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
        (0.0, -0.0),
    ],
)
def test_a_remembered_page_never_lends_its_hash_to_an_equal_key_of_another_text(
    remembered: Any, asked: Any
) -> None:
    hasher = KeyHasher(PEPPER, "kdv-a", "kidsapp", "child")
    hasher.remember([(remembered,)])

    assert hasher((asked,)) == record_key_hash(PEPPER, "kdv-a", "kidsapp", "child", (asked,))
