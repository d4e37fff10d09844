"""One retry policy for transient database errors, product and state databases alike.

A transient error is one a retry may cure: a lost or refused connection, a deadlock, a
serialization failure, an administrator's termination of a backend (see
`connectors.errors.is_transient`). A managed database's failover looks like that for a while,
so retries go on for a *budget* of time (RETENTION_RETRY_BUDGET_SECONDS, 60 s by default)
rather than a number of attempts. Waits grow exponentially with full jitter (tenacity's
`wait_random_exponential`: a random wait between 0 and min(`max_wait`, `first_wait` × 2^n)
seconds), so replicas that lost the same database do not come back in lock step.

The budget is one total for the whole call, not a per-attempt allowance: time spent is the
larger of the time since the first attempt began (on `clock`) and the sum of the waits (so the
policy stays exact under an injected `sleep`: tests never sleep). Each wait is cut to what is
left of the budget, so the last wait ends at the budget, never past it; once it is spent, the
last error is raised. A budget of 0 turns retries off. Errors that are not transient are
raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")

DEFAULT_BUDGET_SECONDS = 60.0

Transient = Callable[[BaseException], bool]
OnRetry = Callable[[int, float, BaseException], None]
"""Told of each retry: attempt number that failed (1-based), seconds to wait, the error."""


class _Budget:
    """One call's budget: seconds spent are the larger of the clock's time since the start
    and the waits slept so far (deterministic with a fake sleep)."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def left(self, retry_state: RetryCallState) -> float:
        spent = max(self.clock() - self.started, retry_state.idle_for)
        return max(0.0, self.seconds - spent)


class _budget_spent(stop_base):
    """Stop once nothing is left of the budget."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.budget.left(retry_state) <= 0


class _within_budget(wait_base):
    """The backoff's wait, cut to what is left of the budget."""

    def __init__(self, backoff: wait_base, budget: _Budget) -> None:
        self.backoff = backoff
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> float:
        return min(float(self.backoff(retry_state)), self.budget.left(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how to retry transient errors.

    `budget_seconds`: total time to keep trying (0: never retry). `first_wait` and
    `max_wait` (seconds) shape the exponential backoff. `max_attempts` caps attempts as well
    (None: only the budget counts). `sleep` (seconds) and `clock` (a monotonic reading in
    seconds) are injected by tests.
    """

    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    first_wait: float = 0.5
    max_wait: float = 10.0
    max_attempts: int | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        transient: Transient,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Call `fn(*args)`; retry it while it raises a `transient` error and budget remains.

        Raises the last error when the budget is spent, or at once when it is not transient.
        No wait goes past the budget: the last one is cut to what is left of it.
        """
        if self.budget_seconds <= 0:
            return fn(*args)
        budget = _Budget(self.budget_seconds, self.clock)
        stops: list[stop_base] = [_budget_spent(budget)]
        if self.max_attempts is not None:
            stops.append(stop_after_attempt(self.max_attempts))

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if on_retry is not None and error is not None:
                on_retry(state.attempt_number, state.upcoming_sleep, error)

        retrying = Retrying(
            retry=retry_if_exception(transient),
            wait=_within_budget(
                wait_random_exponential(multiplier=self.first_wait, max=self.max_wait), budget
            ),
            stop=stop_any(*stops),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn, *args)


NO_RETRY = RetryPolicy(budget_seconds=0)
"""For callers that must answer at once (a readiness probe)."""
