"""One retry policy for transient database errors, product and state databases alike.

A transient error is one a retry may cure: a lost or refused connection, a deadlock, a
serialization failure, an administrator's termination of a backend (see
`connectors.errors.is_transient`). A managed database's failover looks like that for a while,
so retries go on for a *budget* of time (RETENTION_RETRY_BUDGET_SECONDS, 60 s by default)
rather than a number of attempts. Waits grow exponentially with full jitter (tenacity's
`wait_random_exponential`: a random wait between 0 and min(`max_wait`, `first_wait` × 2^n)
seconds), so replicas that lost the same database do not come back in lock step.

The budget is spent when either the real time since the first attempt or the sum of the waits
reaches it; the second makes the policy exact under an injected `sleep` (tests never sleep).
A budget of 0 turns retries off. Errors that are not transient are raised at once.
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
    stop_after_delay,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

T = TypeVar("T")

DEFAULT_BUDGET_SECONDS = 60.0

Transient = Callable[[BaseException], bool]
OnRetry = Callable[[int, float, BaseException], None]
"""Told of each retry: attempt number that failed (1-based), seconds to wait, the error."""


class _waited_past(stop_base):
    """Stop once the waits slept so far add up to `seconds` (deterministic with fake sleeps)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for >= self.seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how to retry transient errors.

    `budget_seconds`: total time to keep trying (0: never retry). `first_wait` and
    `max_wait` (seconds) shape the exponential backoff. `max_attempts` caps attempts as well
    (None: only the budget counts). `sleep` is injected by tests.
    """

    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    first_wait: float = 0.5
    max_wait: float = 10.0
    max_attempts: int | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        transient: Transient,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Call `fn(*args)`; retry it while it raises a `transient` error and budget remains.

        Raises the last error when the budget is spent, or at once when it is not transient.
        """
        if self.budget_seconds <= 0:
            return fn(*args)
        stops: list[stop_base] = [
            stop_after_delay(self.budget_seconds),
            _waited_past(self.budget_seconds),
        ]
        if self.max_attempts is not None:
            stops.append(stop_after_attempt(self.max_attempts))

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if on_retry is not None and error is not None:
                on_retry(state.attempt_number, state.upcoming_sleep, error)

        retrying = Retrying(
            retry=retry_if_exception(transient),
            wait=wait_random_exponential(multiplier=self.first_wait, max=self.max_wait),
            stop=stop_any(*stops),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn, *args)


NO_RETRY = RetryPolicy(budget_seconds=0)
"""For callers that must answer at once (a readiness probe)."""
