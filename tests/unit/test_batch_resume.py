"""Where the next set-based delete batch starts (worker/batches.py, `resume_after`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.batches import resume_after


@given(
    keys=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1), before=st.none() | st.integers()
)
def test_integer_keys_resume_after_the_largest(keys: list[int], before: int | None) -> None:
    start = None if before is None else (before,)
    found = resume_after([(k,) for k in keys], start)
    assert found == (max([*keys, *([] if before is None else [before])]),)


def test_other_keys_start_from_the_first_key() -> None:
    """Texts order by the database's collation, not Python's; composite keys, booleans and
    an empty batch give no resume point (the batch scans from the first key)."""
    assert resume_after([("b",), ("a",)], None) is None
    assert resume_after([(1, 2), (3, 4)], None) is None
    assert resume_after([(True,), (2,)], None) is None
    assert resume_after([], (5,)) is None
    assert resume_after([(1,), ("x",)], None) is None
