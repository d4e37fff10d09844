"""The blast-radius breaker: a rule that would change far more rows than usual waits for a person.

Before a rule changes anything, its eligible rows are compared with three limits:

- `max_rows`: an absolute cap on the rows one rule may change in one run;
- `max_share`: a share of the rows the customer has in that table (of the whole table in a
  database of its own);
- `max_multiple`: a multiple of the rows that rule changed on average over its last `history`
  successful runs (judged once at least `MIN_HISTORY` runs exist: a first run is judged by
  the cap and the share alone).

The share and the multiple are judged only from `min_rows` eligible rows up, so a small table
or a quiet night never trips. The defaults catch a mistyped "1 month" on a large table (a
200,000-row table of which 58 % is past one month trips the cap and the share) while letting a
normal nightly run through (a night's expiries are a small share, near the usual count).
Limits are set in layers, each overriding the one before: these defaults, the product mapping's
`breaker:`, the rule's `breaker:`, the customer's `breaker:` for that product. A rule that
trips changes nothing and waits for `retention-worker approve` (see docs/approvals.md).

Pure: no I/O; counts are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MIN_HISTORY = 3
"""Runs of history needed before the trailing average is judged."""


class BreakerLimits(BaseModel):
    """One layer of breaker limits as the configuration writes it; unset fields inherit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_rows: int | None = Field(default=None, ge=1, le=10**12)
    max_share: float | None = Field(default=None, gt=0, le=1)
    max_multiple: float | None = Field(default=None, ge=1, le=10**6)
    min_rows: int | None = Field(default=None, ge=0, le=10**12)
    history: int | None = Field(default=None, ge=MIN_HISTORY, le=366)


@dataclass(frozen=True)
class Limits:
    """Resolved limits of one rule for one customer (every field set)."""

    max_rows: int = 50_000
    max_share: float = 0.25
    max_multiple: float = 10.0
    min_rows: int = 1_000
    history: int = 7

    def over(self, layer: BreakerLimits | None) -> Limits:
        """These limits with the fields `layer` sets replaced."""
        if layer is None:
            return self
        changes = {k: v for k, v in layer.model_dump().items() if v is not None}
        return Limits(**{**self.__dict__, **changes})


DEFAULT_LIMITS = Limits()


def resolve(*layers: BreakerLimits | None) -> Limits:
    """Defaults, then each layer in order (product, rule, customer)."""
    limits = DEFAULT_LIMITS
    for layer in layers:
        limits = limits.over(layer)
    return limits


@dataclass(frozen=True)
class Verdict:
    """The breaker's judgement of one rule in one run.

    `tripped` lists each limit exceeded in words (empty: the rule may run); `figures` holds
    the numbers an approver needs, for the approvals ledger and the log.
    """

    tripped: tuple[str, ...]
    figures: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.tripped


def judge(eligible: int, table_rows: int | None, history: Sequence[int], limits: Limits) -> Verdict:
    """Compare `eligible` rows with the limits.

    `table_rows`: the customer's rows in the rule's table (None when not counted, which the
    caller does only below `min_rows`); `history`: rows the rule changed in its last
    successful runs, newest first.
    """
    tripped: list[str] = []
    figures: dict[str, Any] = {
        "eligible": eligible,
        "limits": {
            "max_rows": limits.max_rows,
            "max_share": limits.max_share,
            "max_multiple": limits.max_multiple,
            "min_rows": limits.min_rows,
            "history": limits.history,
        },
    }
    if eligible > limits.max_rows:
        tripped.append(f"{eligible} eligible rows exceed max_rows {limits.max_rows}")
    if eligible >= limits.min_rows:
        if table_rows:
            share = eligible / table_rows
            figures["table_rows"] = table_rows
            figures["share"] = round(share, 4)
            if share > limits.max_share:
                tripped.append(
                    f"{eligible} of {table_rows} rows ({share:.1%}) exceed max_share "
                    f"{limits.max_share:.1%}"
                )
        recent = list(history[: limits.history])
        if len(recent) >= MIN_HISTORY:
            average = sum(recent) / len(recent)
            figures["average"] = round(average, 1)
            figures["history_runs"] = len(recent)
            if eligible > limits.max_multiple * average:
                tripped.append(
                    f"{eligible} eligible rows exceed {limits.max_multiple:g} × the average of "
                    f"{average:.1f} over the last {len(recent)} runs"
                )
    return Verdict(tuple(tripped), figures)
