"""Periods ("90d", "24m", "7y") and calendar-correct date arithmetic. Pure: no clock."""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import functools
import re
from dataclasses import dataclass

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([dmy])\s*$")


class Unit(enum.StrEnum):
    """The unit of a period."""

    DAYS = "days"
    MONTHS = "months"
    YEARS = "years"


_SHORT = {"d": Unit.DAYS, "m": Unit.MONTHS, "y": Unit.YEARS}


@dataclass(frozen=True, order=True)
class Period:
    """A whole number of days, months or years."""

    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError(f"a period cannot be negative (got {self.amount} {self.unit})")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read "90d", "24m" or "7y"."""
        match = _PERIOD_RE.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a period; write a whole number followed by d, m or y, "
                "for example 90d, 24m or 7y"
            )
        return cls(int(match.group(1)), _SHORT[match.group(2)])

    def __str__(self) -> str:
        return f"{self.amount}{self.unit.value[0]}"

    def approx_days(self) -> float:
        """Length in days on average, for comparing periods of different units."""
        per = {Unit.DAYS: 1.0, Unit.MONTHS: 365.2425 / 12, Unit.YEARS: 365.2425}
        return self.amount * per[self.unit]

    def at_least(self, other: Period) -> bool:
        """True when this period is never shorter than `other`, whatever the start date."""
        if self.unit == other.unit:
            return self.amount >= other.amount
        return self.in_months_floor() >= other.in_months_ceil()

    def in_months_floor(self) -> float:
        if self.unit is Unit.YEARS:
            return self.amount * 12
        if self.unit is Unit.MONTHS:
            return self.amount
        return self.amount / 31  # a month has at most 31 days

    def in_months_ceil(self) -> float:
        if self.unit is Unit.YEARS:
            return self.amount * 12
        if self.unit is Unit.MONTHS:
            return self.amount
        return self.amount / 28  # a month has at least 28 days


def add_period(start: dt.date, period: Period) -> dt.date:
    """The date `period` after `start`; a month end that does not exist clamps.

    31 January + 1 month is the last day of February; 29 February + 1 year is 28 February.
    """
    if period.unit is Unit.DAYS:
        return start + dt.timedelta(days=period.amount)
    months = period.amount * (12 if period.unit is Unit.YEARS else 1)
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return dt.date(year, month, day)


@functools.lru_cache(maxsize=4096)
def cutoff(today: dt.date, period: Period) -> dt.date:
    """The first basis date that is *not* yet expired on `today`.

    A pure function of its two values, kept for the last 4,096 of them: every rule of every
    customer asks it for the same few days and periods in a tick.

    A record whose period ends on day D is kept through D and is eligible from D + 1:
    it is expired on `today` when ``add_period(basis, period) < today``. Because
    `add_period` never decreases as `basis` grows, the expired basis dates are exactly
    those before the returned date, so a database filter ``basis < cutoff`` is exact.
    """
    if period.unit is Unit.DAYS:
        return today - dt.timedelta(days=period.amount)
    # Start near the answer, then step to the exact boundary (a few days at most).
    months = period.amount * (12 if period.unit is Unit.YEARS else 1)
    index = today.year * 12 + (today.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    if year < dt.MINYEAR:
        return dt.date.min
    guess = dt.date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    one = dt.timedelta(days=1)
    while add_period(guess, period) >= today:
        guess -= one
    while add_period(guess, period) < today:
        guess += one
    return guess


def local_today(now: dt.datetime, timezone: dt.tzinfo) -> dt.date:
    """The calendar date in `timezone` at the instant `now` (which must be aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone).date()


def start_of_day(day: dt.date, timezone: dt.tzinfo) -> dt.datetime:
    """Midnight at the start of `day` in `timezone`, as an aware UTC instant."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=timezone).astimezone(dt.UTC)
