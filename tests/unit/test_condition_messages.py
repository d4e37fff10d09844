"""Row conditions written with NULL or an empty list get the fix, not a validator's wording
(worker/config/language.py, Condition)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from worker.config.language import Condition


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ({"column": "status", "equals": None}, "`equals: null` compares with nothing"),
        ({"column": "status", "not_equals": None}, "write `is_null: true`"),
        ({"column": "grade", "lt": None}, "`lt: null` compares with nothing"),
        ({"column": "status", "in": []}, "`in: []` lists no value: give at least one"),
        ({"column": "status", "not_in": []}, "`not_in: []` lists no value"),
        ({"column": "status", "in": ["Left", None]}, "`in` holds null, which matches nothing"),
    ],
)
def test_a_test_on_null_or_on_nothing_says_what_to_write(
    written: dict[str, Any], said: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Condition.model_validate(written)
    text = str(caught.value)
    assert said in text
    assert "Tuple should have" not in text and "valid string" not in text


def test_well_written_conditions_still_load() -> None:
    assert Condition.model_validate({"column": "status", "is_null": True}).value is True
    found = Condition.model_validate({"column": "status", "in": ["Left", "Moved"]})
    assert found.value == ("Left", "Moved")
