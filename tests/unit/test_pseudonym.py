"""The pseudonym mask (connectors/anonymise.py) and how a mapping writes it
(worker/config/models.py): its shape, stability, width bounds and collision bound."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.anonymise import (
    PSEUDONYM_MAX_LENGTH,
    PSEUDONYM_MIN_LENGTH,
    collision_bound,
    is_pseudonym,
    keyed_hash,
    mask_value,
    pseudonym,
)
from connectors.base import ColumnMask, Mask
from worker.config.models import Rule, Strategy

PEPPER = b"unit-pepper-0123456789"
widths = st.integers(PSEUDONYM_MIN_LENGTH, PSEUDONYM_MAX_LENGTH)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@given(value=texts, length=widths)
def test_a_pseudonym_is_the_prefix_and_the_hmac_cut_to_the_width(value: str, length: int) -> None:
    """`anon-` and the first length-5 hex digits of HMAC-SHA256(pepper, value): exactly
    `length` characters, recognised as a pseudonym of that width and no other."""
    digest = hmac.new(PEPPER, value.encode("utf-8"), hashlib.sha256).hexdigest()
    found = pseudonym(value, PEPPER, length)
    assert found == "anon-" + digest[: length - 5]
    assert len(found) == length
    assert is_pseudonym(found, length)
    assert not is_pseudonym(found, length - 1) and not is_pseudonym(found, length + 1)


@given(value=texts)
def test_a_keyed_hash_is_the_pseudonym_of_width_25(value: str) -> None:
    """keyed_hash, as mappings have always written it, is the pseudonym of 25 characters."""
    assert keyed_hash(value, PEPPER) == pseudonym(value, PEPPER, 25)


@given(value=texts, length=widths)
def test_the_mask_is_stable_and_idempotent(value: str, length: int) -> None:
    """Same value and pepper, same pseudonym; masking the pseudonym again keeps it."""
    mask = ColumnMask("c", Mask.PSEUDONYM, length=length)
    once = mask_value(mask, value, PEPPER)
    assert once == mask_value(mask, value, PEPPER)
    assert mask_value(mask, once, PEPPER) == once
    assert once != mask_value(mask, value, b"other-pepper") or value == once


@pytest.mark.parametrize("length", [0, 5, 16, 70])
def test_a_width_outside_the_bounds_is_refused_by_the_function(length: int) -> None:
    """pseudonym() refuses widths below 17 or above 69 instead of writing a weak one."""
    with pytest.raises(ValueError, match="17 to 69"):
        pseudonym("x", PEPPER, length)


def test_the_collision_bound_is_the_birthday_bound() -> None:
    """n(n-1)/2 pairs, each equal with probability 16^-(width-5), capped at 1."""
    assert collision_bound(2, 17) == 16.0**-12
    assert math.isclose(collision_bound(1_000_000, 20), 999_999 * 1_000_000 / 2 / 16**15)
    assert collision_bound(1, 17) == 0.0
    assert collision_bound(10**9, 17) == 1.0
    assert collision_bound(100_000, 17) < 2e-5  # the documented figure for the minimum


def rule(mask: Any) -> Rule:
    return Rule.model_validate(
        {
            "id": "kids.child.left",
            "subject": "child",
            "after": {"date": "left", "period": "12m"},
            "action": "anonymise",
            "with": {"username": mask},
        }
    )


def test_a_mapping_writes_a_pseudonym_with_its_width() -> None:
    """`{pseudonym: {length: 20}}` reads as the pseudonym strategy of 20 characters."""
    masking = rule({"pseudonym": {"length": 20}}).stages[0].with_["username"]
    assert (masking.strategy, masking.length) == (Strategy.PSEUDONYM, 20)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("pseudonym", "write a pseudonym as {pseudonym: {length: N}}"),
        ({"pseudonym": 20}, "20 is not a pseudonym's settings"),
        ({"pseudonym": {"length": "20"}}, "length '20' is not a whole number"),
        ({"pseudonym": {"length": True}}, "length True is not a whole number"),
        ({"pseudonym": {"length": 20, "alphabet": "x"}}, "is not a pseudonym's settings"),
        (
            {"pseudonym": {"length": 12}},
            "a pseudonym of 12 characters leaves 7 hex digit(s) after 'anon-': two of 10,000 "
            "people would share one with a probability up to 0.19; set a length of at least 17",
        ),
        ({"pseudonym": {"length": 70}}, "length 70 is more than a pseudonym holds (69"),
        ("pseudonyms", "use one of null, year, postcode_digits, keyed_hash, {fixed: TEXT} or"),
    ],
)
def test_a_pseudonym_written_wrong_is_refused_with_the_fix(written: Any, message: str) -> None:
    """Each wrong form of a pseudonym is refused, saying how to write it."""
    with pytest.raises(ValidationError) as refused:
        rule(written)
    assert message in str(refused.value)


def test_a_mask_without_a_width_dumps_as_before() -> None:
    """Only a pseudonym's dump has `length`: the policy fingerprint of a mapping without
    pseudonyms is the one it had before the mask existed."""
    masks = rule({"pseudonym": {"length": 20}}).model_dump(mode="json", by_alias=True)["with"]
    assert masks == {"username": {"strategy": "pseudonym", "text": None, "length": 20}}
    plain = rule({"fixed": "gone"}).model_dump(mode="json", by_alias=True)["with"]
    assert plain == {"username": {"strategy": "fixed", "text": "gone"}}
