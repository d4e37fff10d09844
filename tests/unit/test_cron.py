"""Crontab lines keep crontab's meaning: weekday forms, day fields, seconds, errors.

`CrontabSpec` below is a reading of crontab(5) as Debian's cron implements it, written
independently of the library that worker/cron.py uses, so the tests compare the trigger with
the manual's meaning rather than with itself. test_cron_dst.py uses it too.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from dataclasses import dataclass

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.cron import cron_trigger

UTC = dt.UTC
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# (lowest, highest) per field, as crontab(5) gives them; weekday 7 is Sunday again.
BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekday": (0, 7),
}
MONDAY = dt.date(2026, 11, 30)  # a Monday, in winter time


@functools.cache
def spec_field(text: str, name: str) -> frozenset[int]:
    """The values a crontab field allows: lists of numbers, names, ranges, steps (crontab(5)).

    `*` is first-last; `a-b/n` and `*/n` take every n-th value of the range from its start.
    Weekday 7 is folded onto 0 (both are Sunday).
    """
    low, high = BOUNDS[name]
    names = DAYS if name == "weekday" else MONTHS if name == "month" else ()
    offset = 0 if name == "weekday" else 1

    def number(word: str) -> int:
        if word.lower() in names:
            return names.index(word.lower()) + offset
        value = int(word)
        assert low <= value <= high, f"{word} out of range for {name}"
        return value

    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-")
            first, last = number(a), number(b)
        else:
            first = last = number(span)
        values.update(range(first, last + 1, step))
    if name == "weekday":
        values = {v % 7 for v in values}
    return frozenset(values)


@dataclass(frozen=True)
class CrontabSpec:
    """A crontab line (five fields, or six with seconds first) as crontab(5) defines it."""

    line: str

    @property
    def fields(self) -> list[str]:
        parts = self.line.split()
        return parts if len(parts) == 6 else ["0", *parts]

    def allowed(self, name: str) -> frozenset[int]:
        index = ["second", "minute", "hour", "day", "month", "weekday"].index(name)
        return spec_field(self.fields[index], name)

    @property
    def wildcard(self) -> bool:
        """Debian cron: a minute or hour field starting with `*` follows real time on DST nights."""
        return self.fields[1].startswith("*") or self.fields[2].startswith("*")

    def matches_day(self, day: dt.date) -> bool:
        """crontab(5): if either day field starts with `*`, both must match; else either."""
        dom = day.day in self.allowed("day")
        dow = (day.isoweekday() % 7) in self.allowed("weekday")
        if self.fields[3].startswith("*") or self.fields[5].startswith("*"):
            return dom and dow
        return dom or dow

    def matches_minute(self, wall: dt.datetime) -> bool:
        """Whether a local wall-clock minute (seconds ignored) matches the five minute fields."""
        return (
            wall.minute in self.allowed("minute")
            and wall.hour in self.allowed("hour")
            and wall.month in self.allowed("month")
            and self.matches_day(wall.date())
        )


def fire_days(line: str, start: dt.date = MONDAY, days: int = 14) -> set[str]:
    """Weekday names on which `line` fires at least once in `days` days from `start` (UTC)."""
    trigger = cron_trigger(line, "UTC")
    begin = dt.datetime.combine(start, dt.time(), tzinfo=UTC)
    end = begin + dt.timedelta(days=days) - dt.timedelta(microseconds=1)
    return {DAYS[tick.isoweekday() % 7] for tick in trigger.ticks_between(begin, end)}


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [
        ("0", {"sun"}),
        ("7", {"sun"}),
        ("0,7", {"sun"}),
        ("0-6", set(DAYS)),
        ("1-7", set(DAYS)),
        ("0-7", set(DAYS)),
        ("0-4", {"sun", "mon", "tue", "wed", "thu"}),
        ("1-5", {"mon", "tue", "wed", "thu", "fri"}),
        ("5-7", {"fri", "sat", "sun"}),
        ("1,3,5", {"mon", "wed", "fri"}),
        ("*/2", {"sun", "tue", "thu", "sat"}),
        ("1-7/2", {"mon", "wed", "fri", "sun"}),
        ("0-6/3", {"sun", "wed", "sat"}),
        ("0-0/1", {"sun"}),
        ("3-3/2", {"wed"}),
        ("mon-fri", {"mon", "tue", "wed", "thu", "fri"}),
        ("sat,sun", {"sat", "sun"}),
        ("*", set(DAYS)),
    ],
)
def test_weekday_field_keeps_crontab_meaning(weekday: str, expected: set[str]) -> None:
    """Weekday numbers 0-7, ranges, lists and steps fire on the days crontab(5) names."""
    assert fire_days(f"0 2 * * {weekday}") == expected


def test_the_weekday_line_the_issue_reported_refused_is_accepted() -> None:
    """`0 2 * * 0-6` (issue 6) is a valid line: daily at 02:00, Sunday included."""
    trigger = cron_trigger("0 2 * * 0-6", "Europe/Amsterdam")
    saturday_noon = dt.datetime(2026, 11, 28, 11, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, saturday_noon) == dt.datetime(
        2026, 11, 29, 1, tzinfo=UTC
    )


def test_day_of_month_and_weekday_both_restricted_fire_on_either() -> None:
    """`0 2 1 * 1` fires on the 1st of the month and on every Monday (crontab's OR)."""
    trigger = cron_trigger("0 2 1 * 1", "UTC")
    start = dt.datetime(2026, 11, 28, tzinfo=UTC)  # a Saturday
    days = [t.date() for t in itertools.islice(trigger.ticks(start), 4)]
    assert days == [
        dt.date(2026, 11, 30),  # Monday
        dt.date(2026, 12, 1),  # the 1st, a Tuesday
        dt.date(2026, 12, 7),  # Monday
        dt.date(2026, 12, 14),  # Monday
    ]


def test_a_star_day_field_makes_both_day_fields_required() -> None:
    """`0 2 */2 * 1`: a day field starting with `*` means both must match (Mondays on odd days)."""
    trigger = cron_trigger("0 2 */2 * 1", "UTC")
    start = dt.datetime(2026, 11, 28, tzinfo=UTC)
    for tick in itertools.islice(trigger.ticks(start), 6):
        assert tick.weekday() == 0
        assert tick.day % 2 == 1


weekday_item = st.one_of(
    st.integers(0, 7).map(str),
    st.sampled_from(DAYS),
    st.tuples(st.integers(0, 7), st.integers(0, 7)).map(lambda ab: f"{min(ab)}-{max(ab)}"),
    st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(1, 8)).map(
        lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"
    ),
    st.integers(1, 8).map(lambda n: f"*/{n}"),
)
weekday_field = st.lists(weekday_item, min_size=1, max_size=4).map(",".join)


@settings(max_examples=300, deadline=None)
@given(weekday=weekday_field)
def test_every_weekday_field_fires_on_the_days_crontab_gives(weekday: str) -> None:
    """Random weekday fields (numbers, names, ranges, steps, lists) match crontab(5)'s days."""
    expected = {DAYS[d] for d in spec_field(weekday, "weekday")}
    assert fire_days(f"0 2 * * {weekday}") == expected


minute_or_hour_item = st.one_of(
    st.integers(0, 23).map(str),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).map(lambda ab: f"{min(ab)}-{max(ab)}"),
    st.tuples(st.integers(0, 23), st.integers(0, 23), st.integers(1, 12)).map(
        lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"
    ),
    st.integers(1, 12).map(lambda n: f"*/{n}"),
    st.just("*"),
)
day_item = st.one_of(
    st.integers(1, 28).map(str),
    st.integers(1, 10).map(lambda n: f"*/{n}"),
    st.just("*"),
)


@settings(max_examples=200, deadline=None)
@given(
    minute=st.lists(minute_or_hour_item, min_size=1, max_size=3).map(",".join),
    hour=st.lists(minute_or_hour_item, min_size=1, max_size=3).map(",".join),
    day=st.lists(day_item, min_size=1, max_size=2).map(",".join),
    weekday=weekday_field,
)
def test_random_lines_fire_exactly_at_the_minutes_crontab_gives(
    minute: str, hour: str, day: str, weekday: str
) -> None:
    """In UTC (no DST), a line fires at exactly the minutes of nine days that crontab(5) gives."""
    line = f"{minute} {hour} {day} * {weekday}"
    spec = CrontabSpec(line)
    begin = dt.datetime(2026, 11, 23, tzinfo=UTC)
    days = [begin + dt.timedelta(days=d) for d in range(9)]
    expected = [
        midnight.replace(hour=h, minute=m)
        for midnight in days
        if spec.matches_day(midnight.date())
        for h in sorted(spec.allowed("hour"))
        for m in sorted(spec.allowed("minute"))
    ]
    end = days[-1] + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    assert list(cron_trigger(line, "UTC").ticks_between(begin, end)) == expected


def test_six_fields_put_seconds_first_and_other_counts_are_refused() -> None:
    """A sixth, leading field is seconds; four or seven fields are an error."""
    trigger = cron_trigger("*/2 * * * * *", "UTC")
    start = dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, start) == dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    for bad in ("* * * *", "* * * * * * *", ""):
        with pytest.raises(ValueError, match="instead of five or six"):
            cron_trigger(bad, "UTC")


def test_six_field_ticks_are_the_seconds_of_each_minute_tick() -> None:
    """`10,40 */30 * * * *` fires at :10 and :40 seconds of every half hour, in order."""
    trigger = cron_trigger("10,40 */30 * * * *", "UTC")
    start = dt.datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC)
    got = list(itertools.islice(trigger.ticks(start), 4))
    assert [t.strftime("%H:%M:%S") for t in got] == ["00:00:40", "00:30:10", "00:30:40", "01:00:10"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("60 2 * * *", "the minute field '60' is not valid; it takes 0-59"),
        ("0 24 * * *", "the hour field '24' is not valid"),
        ("0 2 32 * *", "the day of month field '32' is not valid"),
        ("0 2 31 2 *", "the day of month field '31' is not valid"),
        ("0 2 * 13 *", "the month field '13' is not valid"),
        ("0 2 * * 8", "the weekday field '8' is not valid; it takes 0-7, where 0 and 7 are Sunday"),
        ("0 2 * * 6-1", "the weekday field '6-1' is not valid"),
        ("0 2 * * */0", "the weekday field '*/0' is not valid"),
        ("61 0 2 * * *", "the second field '61' is not valid"),
        ("0 2 * * monday", "the weekday field 'monday' is not valid"),
    ],
)
def test_a_bad_field_is_named_in_the_error(line: str, message: str) -> None:
    """Each bad field gets a ValueError naming the field, its text and what it may hold."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cron_trigger(line, "UTC")


any_item = st.one_of(
    st.integers(0, 70).map(str),
    st.sampled_from(["*", "?", "L", "LW", "5L", "MON#5", "sun", "JAN", "mon-fri", "", "-", "/"]),
    st.text(alphabet="0123456789*/,-#LWmonsuMONSU?", min_size=1, max_size=6),
)
any_field = st.one_of(
    st.lists(any_item, min_size=1, max_size=3).map(",".join),
    st.tuples(any_item, st.integers(-1, 70)).map(lambda x: f"{x[0]}/{x[1]}"),
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(any_field, min_size=4, max_size=7),
    now=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1), timezones=st.just(UTC)),
)
def test_any_line_is_a_trigger_or_a_value_error_and_its_ticks_move_forward(
    fields: list[str], now: dt.datetime
) -> None:
    """Whatever the text, a line is refused with a ValueError (never another exception), or it
    gives a next tick at or after `now` and a following one strictly after that."""
    try:
        trigger = cron_trigger(" ".join(fields), "Europe/Amsterdam")
    except ValueError as exc:
        assert str(exc)
        return
    tick = trigger.get_next_fire_time(None, now)
    if tick is not None:
        assert tick >= now
        following = trigger.get_next_fire_time(tick, tick)
        assert following is None or following > tick


def test_an_unknown_time_zone_is_a_value_error() -> None:
    """A zone name that is not in the IANA database is a ValueError, not a KeyError."""
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Amsterdm'"):
        cron_trigger("0 2 * * *", "Europe/Amsterdm")


def test_naive_instants_are_refused() -> None:
    """A datetime without a zone is a programming error: it is refused, never guessed."""
    trigger = cron_trigger("0 2 * * *", "UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        trigger.get_next_fire_time(None, dt.datetime(2026, 1, 1))


def test_next_fire_time_is_strictly_after_the_previous_even_if_the_clock_went_back() -> None:
    """APScheduler's contract, made strict: after `previous`, never at it, whatever `now` says."""
    trigger = cron_trigger("0 2 * * *", "UTC")
    previous = dt.datetime(2026, 1, 1, 2, tzinfo=UTC)
    earlier_now = previous - dt.timedelta(hours=1)
    assert trigger.get_next_fire_time(previous, earlier_now) == previous + dt.timedelta(days=1)
    assert trigger.get_next_fire_time(None, previous) == previous  # at or after `now`


def test_a_tick_years_away_is_found() -> None:
    """`0 0 29 2 *` after March 2026 next fires on 29 February 2028."""
    trigger = cron_trigger("0 0 29 2 *", "UTC")
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, start) == dt.datetime(2028, 2, 29, tzinfo=UTC)


def test_cronsim_is_the_engine_and_agrees_on_a_plain_line() -> None:
    """A guard on the dependency: cronsim's own iteration gives the trigger's ticks in UTC."""
    start = dt.datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    trigger = cron_trigger("*/20 9-17 * * 1-5", "UTC")
    ours = list(itertools.islice(trigger.ticks(start + dt.timedelta(seconds=1)), 30))
    theirs = list(itertools.islice(CronSim("*/20 9-17 * * 1-5", start), 30))
    assert ours == theirs
