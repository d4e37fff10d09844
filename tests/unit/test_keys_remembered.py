"""`KeyHasher.remember` (worker/keys.py) never lends a remembered key's hash to a key that is
equal in Python but has another canonical text: `Decimal('1.0')` and `Decimal('1.00')` ("a
decimal as the database returns it, with its scale"), `0.0` and `-0.0`. Whatever was
remembered before, one key always has one hash."""

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
