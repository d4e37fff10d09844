"""Properties of periods and calendar arithmetic (worker/periods.py)."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from worker.periods import Period, Unit, add_period, cutoff, local_today, start_of_day

D = dt.date
FIRST = D(1900, 1, 1)
LAST = D(2200, 12, 31)

dates = st.dates(min_value=FIRST, max_value=LAST)
leap_years = st.sampled_from([y for y in range(1900, 2201) if calendar.isleap(y)])


def periods(
    max_days: int = 3650, max_months: int = 240, max_years: int = 20
) -> st.SearchStrategy[Period]:
    """Periods of every unit, short enough that results stay within datetime.date."""
    return st.one_of(
        st.builds(Period, st.integers(0, max_days), st.just(Unit.DAYS)),
        st.builds(Period, st.integers(0, max_months), st.just(Unit.MONTHS)),
        st.builds(Period, st.integers(0, max_years), st.just(Unit.YEARS)),
    )


def last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


# --- add_period -------------------------------------------------------------------------


@given(dates, st.integers(0, 3650))
def test_days_add_exactly_that_many_days(start: D, n: int) -> None:
    """Adding n days moves the date by exactly n days."""
    assert add_period(start, Period(n, Unit.DAYS)) - start == dt.timedelta(days=n)


@given(dates, st.integers(0, 240))
def test_months_move_the_month_and_clamp_the_day(start: D, n: int) -> None:
    """Adding n months lands n calendar months on, on the same day or the month's last day."""
    end = add_period(start, Period(n, Unit.MONTHS))
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == n
    assert end.day == min(start.day, last_day(end.year, end.month))


@given(st.integers(1900, 2200))
def test_31_january_plus_one_month_is_the_end_of_february(year: int) -> None:
    """31 January + 1 month is 28 February, or 29 February in a leap year."""
    end = add_period(D(year, 1, 31), Period(1, Unit.MONTHS))
    assert end == D(year, 2, 29 if calendar.isleap(year) else 28)


@given(dates, st.integers(0, 20))
def test_years_are_twelve_months(start: D, n: int) -> None:
    """Adding n years is the same as adding 12n months."""
    in_years = add_period(start, Period(n, Unit.YEARS))
    assert in_years == add_period(start, Period(12 * n, Unit.MONTHS))


@given(leap_years)
def test_29_february_plus_one_year_is_28_february(year: int) -> None:
    """29 February + 1 year is 28 February of the next (never leap) year."""
    assert add_period(D(year, 2, 29), Period(1, Unit.YEARS)) == D(year + 1, 2, 28)


@given(leap_years)
@example(2024).via("a leap year four years on")
@example(2096).via("2100 is not a leap year")
def test_29_february_plus_four_years(year: int) -> None:
    """29 February + 4 years is 29 February when that year is leap, else 28 February."""
    target = year + 4
    expected = D(target, 2, 29 if calendar.isleap(target) else 28)
    assert add_period(D(year, 2, 29), Period(4, Unit.YEARS)) == expected


def test_leap_day_examples() -> None:
    """Known leap-day results, including the non-leap century year 2100."""
    assert add_period(D(2024, 2, 29), Period(4, Unit.YEARS)) == D(2028, 2, 29)
    assert add_period(D(2096, 2, 29), Period(4, Unit.YEARS)) == D(2100, 2, 28)
    assert add_period(D(2024, 2, 29), Period(1, Unit.YEARS)) == D(2025, 2, 28)


@given(dates, dates, periods())
def test_add_period_never_decreases_as_the_start_grows(a: D, b: D, period: Period) -> None:
    """A later start never gives an earlier end."""
    early, late = sorted((a, b))
    assert add_period(early, period) <= add_period(late, period)


@given(dates, periods(), st.integers(0, 100))
def test_a_longer_period_of_the_same_unit_never_ends_earlier(
    start: D, period: Period, extra: int
) -> None:
    """Adding more of the same unit never gives an earlier end."""
    longer = Period(period.amount + extra, period.unit)
    assert add_period(start, period) <= add_period(start, longer)


@given(dates, periods())
def test_zero_or_more_never_goes_back(start: D, period: Period) -> None:
    """A period never ends before it starts, and a zero period ends where it starts."""
    end = add_period(start, period)
    assert end >= start
    if period.amount == 0:
        assert end == start


# --- cutoff --------------------------------------------------------------------------------


@given(dates, dates, periods())
def test_cutoff_splits_expired_from_kept_exactly(basis: D, today: D, period: Period) -> None:
    """`basis < cutoff(today, p)` holds exactly when `add_period(basis, p) < today`."""
    assert (basis < cutoff(today, period)) == (add_period(basis, period) < today)


@given(dates, periods(), st.integers(-3, 3))
def test_cutoff_is_exact_around_the_end_of_the_period(
    basis: D, period: Period, offset: int
) -> None:
    """Close to the day a period ends, the cutoff still splits expired from kept exactly."""
    today = add_period(basis, period) + dt.timedelta(days=offset)
    assert (basis < cutoff(today, period)) == (offset > 0)


@given(dates, periods())
def test_cutoff_is_the_first_kept_basis_date(today: D, period: Period) -> None:
    """The cutoff itself is kept and the day before it is expired."""
    edge = cutoff(today, period)
    assert not add_period(edge, period) < today
    assert add_period(edge - dt.timedelta(days=1), period) < today


def test_deregistered_31_january_with_one_month() -> None:
    """De-registered 2026-01-31 with 1m: kept through 2026-02-28, eligible on 2026-03-01."""
    basis, month = D(2026, 1, 31), Period.parse("1m")
    assert add_period(basis, month) == D(2026, 2, 28)
    assert not basis < cutoff(D(2026, 2, 28), month)
    assert basis < cutoff(D(2026, 3, 1), month)
    assert cutoff(D(2026, 2, 28), month) == D(2026, 1, 28)
    assert cutoff(D(2026, 3, 1), month) == D(2026, 2, 1)


def test_ninety_days_boundary() -> None:
    """With 90d a basis is kept on its 90th day and eligible on the 91st."""
    basis, period = D(2026, 1, 1), Period.parse("90d")
    assert add_period(basis, period) == D(2026, 4, 1)
    assert not basis < cutoff(D(2026, 4, 1), period)
    assert basis < cutoff(D(2026, 4, 2), period)


# --- Period --------------------------------------------------------------------------------


@given(periods(max_days=100_000, max_months=100_000, max_years=100_000))
def test_parse_reads_back_what_str_writes(period: Period) -> None:
    """Period.parse(str(p)) == p for every period."""
    assert Period.parse(str(period)) == period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", Period(90, Unit.DAYS)),
        ("24m", Period(24, Unit.MONTHS)),
        ("7y", Period(7, Unit.YEARS)),
        (" 7 y ", Period(7, Unit.YEARS)),
        ("0d", Period(0, Unit.DAYS)),
    ],
)
def test_parse_reads_the_documented_forms(text: str, expected: Period) -> None:
    """The forms 90d, 24m and 7y (spaces allowed) parse to the matching period."""
    assert Period.parse(text) == expected


@pytest.mark.parametrize("text", ["-3m", "3w", "", " ", "m", "3", "3.5m", "3 months", "3M", "3dd"])
def test_parse_rejects_bad_text_with_a_hint(text: str) -> None:
    """Text that is not a whole number followed by d, m or y is refused with an example."""
    with pytest.raises(ValueError, match="for example 90d"):
        Period.parse(text)


def test_negative_period_is_refused() -> None:
    """A period cannot be built with a negative amount."""
    with pytest.raises(ValueError, match="negative"):
        Period(-1, Unit.DAYS)


@given(periods(), periods(), dates)
def test_at_least_is_sound(a: Period, b: Period, start: D) -> None:
    """If a.at_least(b), then a ends no earlier than b from every start date."""
    if a.at_least(b):
        assert add_period(start, a) >= add_period(start, b)


_DAYS_PER = {Unit.DAYS: (1, 1), Unit.MONTHS: (28, 31), Unit.YEARS: (365, 366)}


@st.composite
def close_pairs(draw: st.DrawFn) -> tuple[Period, Period]:
    """Two periods of different units and nearly the same length: where at_least can err."""
    b = draw(periods(max_days=1500, max_months=48, max_years=4))
    low, high = _DAYS_PER[b.unit]
    days = draw(st.integers(low * b.amount - 2, high * b.amount + 2).filter(lambda n: n >= 0))
    unit = draw(st.sampled_from([u for u in Unit if u is not b.unit]))
    amount = max(0, round(days / _DAYS_PER[unit][0]) + draw(st.integers(-1, 1)))
    return Period(amount, unit), b


# Eight years around 2100: ordinary leap years and a century year that is not one.
_EVERY_KIND_OF_START = [D(2095, 1, 1) + dt.timedelta(days=n) for n in range(8 * 366)]


@given(close_pairs())
def test_at_least_is_sound_for_nearly_equal_periods(pair: tuple[Period, Period]) -> None:
    """Near the edge too: if a.at_least(b), a ends no earlier than b from every start date."""
    a, b = pair
    if a.at_least(b):
        late = [d for d in _EVERY_KIND_OF_START if add_period(d, a) < add_period(d, b)]
        assert late == []


@given(st.integers(0, 240), st.integers(0, 400), dates)
def test_at_least_across_units_near_the_edge(months: int, slack: int, start: D) -> None:
    """Days that at_least calls long enough for n months cover n months from any start."""
    days = Period(31 * months + slack, Unit.DAYS)
    month_period = Period(months, Unit.MONTHS)
    assert days.at_least(month_period)
    assert add_period(start, days) >= add_period(start, month_period)
    back = Period(months, Unit.MONTHS)
    short_days = Period(max(0, 28 * months - slack), Unit.DAYS)
    assert back.at_least(short_days)
    assert add_period(start, back) >= add_period(start, short_days)


def test_at_least_examples() -> None:
    """Clear cases: 7y covers 84m and 24m; 1m does not cover 31d; 31d covers 1m."""
    assert Period.parse("7y").at_least(Period.parse("84m"))
    assert Period.parse("7y").at_least(Period.parse("24m"))
    assert not Period.parse("1m").at_least(Period.parse("31d"))
    assert Period.parse("31d").at_least(Period.parse("1m"))
    assert not Period.parse("30d").at_least(Period.parse("1m"))
    assert Period.parse("1m").at_least(Period.parse("28d"))
    assert not Period.parse("1m").at_least(Period.parse("29d"))
    assert Period.parse("1y").at_least(Period.parse("12m"))
    assert Period.parse("12m").at_least(Period.parse("1y"))


def test_at_least_is_sound_for_every_short_pair() -> None:
    """Every pair up to 100d / 4m / 2y: at_least is never true where a can end before b."""
    small = [Period(n, Unit.DAYS) for n in range(101)]
    small += [Period(n, Unit.MONTHS) for n in range(5)]
    small += [Period(n, Unit.YEARS) for n in range(3)]
    ends = {p: [add_period(d, p) for d in _EVERY_KIND_OF_START] for p in small}
    unsound = [
        (str(a), str(b))
        for a in small
        for b in small
        if a.unit is not b.unit
        and a.at_least(b)
        and any(x < y for x, y in zip(ends[a], ends[b], strict=True))
    ]
    assert unsound == []


# --- time zones ---------------------------------------------------------------------------


def test_local_today_uses_the_given_zone() -> None:
    """23:30 UTC on 31 Dec is already 1 Jan in Amsterdam."""
    now = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert local_today(now, ZoneInfo("Europe/Amsterdam")) == D(2026, 1, 1)
    assert local_today(now, dt.UTC) == D(2025, 12, 31)


def test_local_today_refuses_a_naive_instant() -> None:
    """A naive datetime is refused rather than guessed."""
    with pytest.raises(ValueError, match="timezone-aware"):
        local_today(dt.datetime(2026, 1, 1, 12, 0), dt.UTC)


def test_start_of_day_is_local_midnight_in_utc() -> None:
    """Midnight in Amsterdam in winter is 23:00 UTC the day before."""
    start = start_of_day(D(2026, 1, 15), ZoneInfo("Europe/Amsterdam"))
    assert start == dt.datetime(2026, 1, 14, 23, 0, tzinfo=dt.UTC)
    assert start.tzinfo is dt.UTC
