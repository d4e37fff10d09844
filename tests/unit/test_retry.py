"""The retry policy: a time budget for transient errors, backoff with jitter, no fake waits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import SettingsError
from worker.retry import DEFAULT_BUDGET_SECONDS, RetryPolicy
from worker.settings import Settings


class Flaky(Exception):
    """A made-up transient error."""


class Broken(Exception):
    """A made-up permanent error."""


def transient(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


class Failing:
    """Raises `error` for the first `failures` calls, then returns "done"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or Flaky("connection lost")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_the_default_budget_outlasts_a_failover() -> None:
    """At least 60 s of retries by default, in the policy and in the settings."""
    assert DEFAULT_BUDGET_SECONDS >= 60
    assert RetryPolicy().budget_seconds >= 60
    assert Settings.from_env({}).retry_budget_seconds >= 60


def test_a_transient_error_is_retried_until_it_succeeds() -> None:
    """Three lost connections, then success: four calls, three waits, the result returned."""
    waits: list[float] = []
    fn = Failing(3)
    told: list[int] = []
    policy = RetryPolicy(sleep=waits.append)
    result = policy.call(fn, transient=transient, on_retry=lambda n, _w, _e: told.append(n))
    assert result == "done"
    assert fn.calls == 4
    assert len(waits) == 3
    assert told == [1, 2, 3]


@settings(max_examples=50, deadline=None)
@given(
    budget=st.floats(min_value=0.5, max_value=600), first=st.floats(0.01, 2), cap=st.floats(1, 30)
)
def test_retries_stop_when_the_waits_spend_the_budget(
    budget: float, first: float, cap: float
) -> None:
    """A database that never comes back: waits add up to the budget, then the error is raised.

    Every wait lies within the exponential bound (full jitter); the waits before the last one
    stayed under the budget, so no retry was given up early; the last wait ends at the budget,
    never past it.
    """
    waits: list[float] = []
    fn = Failing(10**9)
    policy = RetryPolicy(
        budget_seconds=budget,
        first_wait=first,
        max_wait=cap,
        sleep=waits.append,
        clock=lambda: 0.0,
    )
    with pytest.raises(Flaky):
        policy.call(fn, transient=transient)
    assert fn.calls == len(waits) + 1
    assert sum(waits) == pytest.approx(budget)
    assert sum(waits) <= budget + 1e-9
    assert sum(waits[:-1]) < budget
    for n, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(cap, first * 2 ** min(n, 64))


def test_a_permanent_error_is_raised_at_once() -> None:
    """An error that a retry cannot cure is not retried."""
    fn = Failing(1, Broken("syntax error"))
    with pytest.raises(Broken):
        RetryPolicy(sleep=lambda _s: None).call(fn, transient=transient)
    assert fn.calls == 1


def test_a_budget_of_zero_turns_retries_off() -> None:
    """RETENTION_RETRY_BUDGET_SECONDS=0: one attempt, even for a transient error."""
    fn = Failing(1)
    with pytest.raises(Flaky):
        RetryPolicy(budget_seconds=0, sleep=lambda _s: None).call(fn, transient=transient)
    assert fn.calls == 1


def test_max_attempts_caps_the_attempts_too() -> None:
    """A cap on attempts ends retries before the budget is spent."""
    fn = Failing(10)
    with pytest.raises(Flaky):
        RetryPolicy(max_attempts=2, sleep=lambda _s: None).call(fn, transient=transient)
    assert fn.calls == 2


def test_the_budget_is_a_setting() -> None:
    """RETENTION_RETRY_BUDGET_SECONDS sets the budget; a bad value says what to write."""
    chosen = Settings.from_env({"RETENTION_RETRY_BUDGET_SECONDS": "180"})
    assert chosen.retry_policy().budget_seconds == 180
    with pytest.raises(SettingsError, match="RETENTION_RETRY_BUDGET_SECONDS"):
        Settings.from_env({"RETENTION_RETRY_BUDGET_SECONDS": "soon"})
    with pytest.raises(SettingsError, match="whole number from 0 to 3600"):
        Settings.from_env({"RETENTION_RETRY_BUDGET_SECONDS": "-1"})


class FakeTime:
    """A clock that moves only when slept on or when an attempt takes `attempt_seconds`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.waits.append(seconds)
        self.now += seconds


@settings(max_examples=25, deadline=None)
@given(
    budget=st.floats(min_value=1, max_value=300),
    attempt=st.floats(min_value=0, max_value=40),
    cap=st.floats(1, 30),
)
def test_the_budget_is_a_total_and_no_wait_goes_past_it(
    budget: float, attempt: float, cap: float
) -> None:
    """Attempts that take time (a connect timeout each) spend the budget as well: every wait
    is cut to what is left of the total, so the last wait ends by the budget (the attempts
    after it are the only time past it), and no wait is given once the budget is spent."""
    fake = FakeTime()
    start = fake.now
    ends: list[float] = []

    def slow() -> str:
        fake.now += attempt
        ends.append(fake.now)
        raise Flaky("connection timed out")

    policy = RetryPolicy(budget_seconds=budget, max_wait=cap, sleep=fake.sleep, clock=fake.clock)
    with pytest.raises(Flaky):
        policy.call(slow, transient=transient)
    assert len(ends) == len(fake.waits) + 1
    for end, wait in zip(ends, fake.waits, strict=False):
        assert end - start < budget  # a wait only when budget was left after that attempt
        assert end + wait - start <= budget + 1e-9  # and it ends by the budget
    assert ends[-1] - start <= budget + attempt + 1e-9


def test_the_last_wait_is_cut_to_the_remaining_budget() -> None:
    """Budget 10 s, attempts of 4 s, waits of up to 30 s: the waits end by the 10th second
    (uncut, a first wait alone could reach 30 s), then the last attempt runs and the error is
    raised."""
    for _ in range(20):  # the waits are random (jitter): several draws
        fake = FakeTime()
        start = fake.now

        def slow(fake: FakeTime = fake) -> str:
            fake.now += 4
            raise Flaky("connection timed out")

        policy = RetryPolicy(
            budget_seconds=10, first_wait=100, max_wait=30, sleep=fake.sleep, clock=fake.clock
        )
        with pytest.raises(Flaky):
            policy.call(slow, transient=transient)
        assert fake.waits
        assert fake.now - 4 - start <= 10 + 1e-9
