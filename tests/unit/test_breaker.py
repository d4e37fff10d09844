"""The blast-radius breaker's judgement: cap, share, trailing multiple, and their layers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.breaker import DEFAULT_LIMITS, MIN_HISTORY, BreakerLimits, Limits, judge, resolve


def test_the_cap_trips_whatever_the_table() -> None:
    """More rows than max_rows trips even on a huge table with no history."""
    verdict = judge(50_001, 10**9, [], DEFAULT_LIMITS)
    assert verdict.tripped == ("50001 eligible rows exceed max_rows 50000",)


def test_the_share_trips_a_mistyped_month() -> None:
    """58 % of a 200,000-row table (the issue's case): cap and share both trip."""
    verdict = judge(115_361, 200_000, [], DEFAULT_LIMITS)
    assert len(verdict.tripped) == 2
    assert "115361 of 200000 rows (57.7%) exceed max_share 25.0%" in verdict.tripped
    assert verdict.figures["share"] == 0.5768


def test_the_multiple_needs_history_and_min_rows() -> None:
    """A spike of 10× the trailing average trips once there are enough runs; below min_rows,
    or with too little history, it never does."""
    history = [150, 120, 180, 160, 140, 150, 100]
    assert judge(1_600, 10**6, history, DEFAULT_LIMITS).tripped == (
        "1600 eligible rows exceed 10 × the average of 142.9 over the last 7 runs",
    )
    assert judge(999, 10**6, history, DEFAULT_LIMITS).ok
    assert judge(1_600, 10**6, history[: MIN_HISTORY - 1], DEFAULT_LIMITS).ok
    assert judge(1_400, 10**6, history, DEFAULT_LIMITS).ok


def test_small_counts_never_trip_on_share_or_history() -> None:
    """Below min_rows a small table may lose all its rows: only the cap is judged."""
    assert judge(999, 999, [0, 0, 0], DEFAULT_LIMITS).ok


@given(
    eligible=st.integers(0, 10**7),
    rows=st.integers(1, 10**8),
    history=st.lists(st.integers(0, 10**6), max_size=10),
)
def test_a_verdict_trips_exactly_when_a_limit_is_exceeded(
    eligible: int, rows: int, history: list[int]
) -> None:
    """The verdict is the disjunction of the three limits, as documented."""
    limits = DEFAULT_LIMITS
    table = max(rows, eligible)
    recent = history[: limits.history]
    over_cap = eligible > limits.max_rows
    judged = eligible >= limits.min_rows
    over_share = judged and eligible / table > limits.max_share
    over_history = (
        judged
        and len(recent) >= MIN_HISTORY
        and eligible > limits.max_multiple * sum(recent) / len(recent)
    )
    assert judge(eligible, table, history, limits).ok == (
        not (over_cap or over_share or over_history)
    )


def test_layers_override_in_order() -> None:
    """Defaults, then product, then rule, then customer: each sets only what it names."""
    product = BreakerLimits(max_rows=10_000, max_share=0.5)
    rule = BreakerLimits(max_share=0.1)
    customer = BreakerLimits(max_rows=200_000)
    assert resolve(product, rule, customer) == Limits(
        max_rows=200_000, max_share=0.1, max_multiple=10.0, min_rows=1_000, history=7
    )
    assert resolve() == DEFAULT_LIMITS
    assert resolve(None, rule, None).max_share == 0.1


def test_a_share_just_over_the_limit_is_not_shown_as_equal_to_it() -> None:
    """251 of 1,000 rows is 25.1 %: the message must not read "25% exceed 25%"."""
    (reason,) = judge(1_251, 4_984, [], DEFAULT_LIMITS).tripped
    assert reason == "1251 of 4984 rows (25.1%) exceed max_share 25.0%"
