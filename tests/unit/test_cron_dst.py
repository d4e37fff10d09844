"""Schedules on the nights the clocks change: Europe/Amsterdam, 2026-2030, every minute.

The expected ticks are worked out here from the meaning alone (Debian cron's, see
worker/cron.py), by walking the nights minute by minute in UTC:

- a fixed line (neither minute nor hour starts with `*`) fires at each instant whose local
  minute matches and is the first occurrence of that local time (fold 0), and once at the
  first instant after a skip in which some skipped local minute matches;
- a wildcard line fires at each instant whose local minute matches, both hours of the
  repeated hour included, nothing in the skipped hour;
- a six-field line fires at its seconds within each of those minutes.

Then the trigger, `missed_tick` and the daemon's restart logic are held to it: the next and the
missed tick are computed (and return) for every minute of every night and for random instants
down to the microsecond, and no tick is ever run twice. cronsim, the library the trigger is
built on, is checked against the same nights as the oracle for five-field lines.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_cron import CrontabSpec
from worker.cron import CrontabTrigger, cron_trigger
from worker.scheduler import MISFIRE_GRACE_SECONDS, build_scheduler, missed_tick

UTC = dt.UTC
AMSTERDAM = "Europe/Amsterdam"
ZONE = ZoneInfo(AMSTERDAM)
MINUTE = dt.timedelta(minutes=1)
GRACE = dt.timedelta(seconds=MISFIRE_GRACE_SECONDS)
# The night around a change: local evening before to morning after, in UTC.
BEFORE, AFTER = dt.timedelta(hours=3), dt.timedelta(hours=4)
# The expected ticks are worked out over a wider span: the grace time before the night,
# and three days after it, so that every line's next tick after the night is inside.
SPAN_BEFORE, SPAN_AFTER = BEFORE + GRACE + dt.timedelta(hours=1), dt.timedelta(days=3)

LINES = (
    "0 2 * * *",  # the default: daily at 02:00
    "30 2 * * *",  # inside the hour that is skipped or repeated
    "0 3 * * *",  # the first minute after the spring skip
    "0 * * * *",  # hourly (wildcard: real time)
    "*/15 * * * *",  # every 15 minutes (wildcard)
    "0,30 1-3 * * *",  # fixed, several times in and around the hour
    "0 2 * * 0-6",  # weekday range with Sunday as 0
    "30 2 * * 0-4",  # Sunday to Thursday (the changes fall on Sundays)
    "45 2 * * 1-5",  # Monday to Friday: nothing on the night itself
    "15 2 * * */2",  # Sunday, Tuesday, Thursday, Saturday
    "20 2 * * 1-7/2",  # Monday, Wednesday, Friday, Sunday
    "15 30 2 * * *",  # six fields, seconds first: 02:30:15, fixed
    "*/20 */30 * * * *",  # six fields, wildcard: every 20 s of each half-hour's first minute
)


def _changes() -> list[dt.datetime]:
    """Every instant (UTC) from 2026 to 2030 at which Amsterdam's offset changes."""
    found = []
    hour = dt.datetime(2026, 1, 1, tzinfo=UTC)
    while hour.year < 2031:
        after = hour + dt.timedelta(hours=1)
        if hour.astimezone(ZONE).utcoffset() != after.astimezone(ZONE).utcoffset():
            found.append(after)
        hour = after
    return found


CHANGES = _changes()


def test_the_nights_are_the_ten_changes_of_2026_to_2030() -> None:
    """Two changes a year at 01:00 UTC on a Sunday: the nights the tests below walk."""
    assert len(CHANGES) == 10
    assert all(c.hour == 1 and c.weekday() == 6 for c in CHANGES)
    assert CHANGES[:2] == [
        dt.datetime(2026, 3, 29, 1, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 1, tzinfo=UTC),
    ]


@functools.cache
def expected_ticks(line: str, change: dt.datetime) -> tuple[dt.datetime, ...]:
    """The ticks (UTC) of `line` around `change`, from the meaning alone (module docstring)."""
    spec = CrontabSpec(line)
    seconds = sorted(spec.allowed("second"))
    minutes: list[dt.datetime] = []
    begin, end = change - SPAN_BEFORE, change + SPAN_AFTER
    previous_wall: dt.datetime | None = None
    instant = begin
    while instant <= end:
        local = instant.astimezone(ZONE)
        wall = local.replace(tzinfo=None, fold=0)
        hit = spec.matches_minute(wall) and (spec.wildcard or local.fold == 0)
        if not hit and not spec.wildcard and previous_wall is not None:
            skipped = previous_wall + MINUTE
            while skipped < wall:
                hit = hit or spec.matches_minute(skipped)
                skipped += MINUTE
        if hit:
            minutes.append(instant)
        previous_wall = wall
        instant += MINUTE
    return tuple(m + dt.timedelta(seconds=s) for m in minutes for s in seconds)


def spec_next(line: str, change: dt.datetime, now: dt.datetime) -> dt.datetime:
    ticks = expected_ticks(line, change)
    index = bisect.bisect_left(ticks, now)
    assert index < len(ticks), f"{line}: no tick within three days after the night"
    return ticks[index]


def spec_missed(
    line: str, change: dt.datetime, now: dt.datetime, last_started: dt.datetime | None
) -> dt.datetime | None:
    ticks = expected_ticks(line, change)
    index = bisect.bisect_right(ticks, now) - 1
    if index < 0 or ticks[index] < now - GRACE:
        return None
    if last_started is not None and last_started >= ticks[index]:
        return None
    return ticks[index]


def night_minutes(change: dt.datetime) -> list[dt.datetime]:
    """Every minute (UTC) from three hours before the change to four hours after."""
    count = int((BEFORE + AFTER) / MINUTE)
    return [change - BEFORE + i * MINUTE for i in range(count + 1)]


# --- the small inputs of issue 6, as named examples ---------------------------------------


def test_the_missed_tick_at_0300_utc_on_the_night_the_clocks_go_back_returns() -> None:
    """Issue 6: `0 2 * * *` at 2026-10-25T03:00Z owed the 02:00 summer-time tick (00:00Z)."""
    trigger = cron_trigger("0 2 * * *", AMSTERDAM)
    now = dt.datetime(2026, 10, 25, 3, tzinfo=UTC)
    assert missed_tick(trigger, now, None) == dt.datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2026, 10, 26, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "change", "ticks"),
    [
        # Clocks go back at 03:00 summer time (01:00Z): 02:00-02:59 local happens twice.
        ("0 2 * * *", "2026-10-25", ["00:00"]),  # once, at the first 02:00
        ("30 2 * * *", "2026-10-25", ["00:30"]),
        ("0 * * * *", "2026-10-25", ["23:00", "00:00", "01:00", "02:00", "03:00"]),
        # Clocks go forward at 02:00 winter time (01:00Z): 02:00-02:59 local never happens.
        ("0 2 * * *", "2026-03-29", ["01:00"]),  # once, at 03:00 summer time
        ("30 2 * * *", "2026-03-29", ["01:00"]),
        ("0,30 1-3 * * *", "2026-03-29", ["00:00", "00:30", "01:00", "01:30"]),
        ("0 * * * *", "2026-03-29", ["23:00", "00:00", "01:00", "02:00", "03:00"]),
    ],
)
def test_ticks_of_named_lines_on_the_2026_nights(line: str, change: str, ticks: list[str]) -> None:
    """Fixed lines run once per local time (skipped: at 03:00); hourly stays hourly."""
    day = dt.date.fromisoformat(change)
    begin = dt.datetime.combine(day, dt.time(), tzinfo=UTC) - dt.timedelta(hours=1)
    got = cron_trigger(line, AMSTERDAM).ticks_between(begin, begin + dt.timedelta(hours=4))
    assert [t.strftime("%H:%M") for t in got] == ticks


# --- every minute of every night ---------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
def test_next_and_missed_tick_at_every_minute_of_every_dst_night(line: str) -> None:
    """For each minute of the ten nights, the next and the missed tick are the expected ones."""
    trigger = cron_trigger(line, AMSTERDAM)
    for change in CHANGES:
        for now in night_minutes(change):
            assert trigger.get_next_fire_time(None, now) == spec_next(line, change, now), now
            assert missed_tick(trigger, now, None) == spec_missed(line, change, now, None), now


def cronsim_ticks(line: str, after: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """cronsim on its own: the ticks strictly after `after` up to `end`, in UTC."""
    found = []
    for tick in CronSim(line, after.astimezone(ZONE)):
        if tick > end:
            break
        found.append(tick.astimezone(UTC))
    return found


@pytest.mark.parametrize("line", [line for line in LINES if len(line.split()) == 5])
def test_five_field_ticks_agree_with_cronsim_on_every_night(line: str) -> None:
    """The oracle: cronsim iterated on its own gives the same ticks over each night."""
    trigger = cron_trigger(line, AMSTERDAM)
    for change in CHANGES:
        begin, end = change - SPAN_BEFORE, change + SPAN_AFTER
        theirs = cronsim_ticks(line, begin - MINUTE, end)
        assert list(trigger.ticks_between(begin, end)) == theirs
        assert tuple(theirs) == expected_ticks(line, change)


def test_a_six_field_wildcard_line_agrees_with_cronsim_on_every_night() -> None:
    """cronsim reads six-field lines in real time, which is our meaning for wildcard lines."""
    line = "*/20 */30 * * * *"
    trigger = cron_trigger(line, AMSTERDAM)
    for change in CHANGES:
        begin, end = change - BEFORE, change + AFTER
        theirs = cronsim_ticks(line, begin - dt.timedelta(seconds=1), end)
        assert list(trigger.ticks_between(begin, end)) == theirs


@pytest.mark.parametrize("line", LINES)
def test_apschedulers_own_run_time_loop_ends_on_every_night(line: str) -> None:
    """APScheduler 3 collects a job's due run times by asking the trigger again and again
    (`Job._get_run_times`, the loop that never ended with its CronTrigger): over each night
    it ends with exactly the expected ticks. Private API of the pinned 3.x line, used on purpose."""
    scheduler = build_scheduler()
    for change in CHANGES:
        begin, end = change - BEFORE, change + AFTER
        job = scheduler.add_job(
            lambda: None, trigger=cron_trigger(line, AMSTERDAM), next_run_time=begin
        )
        expected = [t for t in expected_ticks(line, change) if begin < t <= end]
        assert job._get_run_times(end) == [begin, *expected]
        job.remove()


# --- any instant, any start: hypothesis --------------------------------------------------

nights = st.sampled_from(CHANGES)
lines = st.sampled_from(LINES)
offsets = st.integers(0, int((BEFORE + AFTER).total_seconds() * 1_000_000))


def _at(change: dt.datetime, micros: int) -> dt.datetime:
    return change - BEFORE + dt.timedelta(microseconds=micros)


@settings(max_examples=400, deadline=None)
@given(line=lines, change=nights, micros=offsets, back=st.one_of(st.none(), offsets))
def test_any_instant_of_a_dst_night_gives_the_expected_ticks_in_order(
    line: str, change: dt.datetime, micros: int, back: int | None
) -> None:
    """From any instant: the next tick, the missed tick (with any last start), and the chain
    of following ticks as APScheduler walks it are the expected ones, strictly increasing."""
    trigger = cron_trigger(line, AMSTERDAM)
    now = _at(change, micros)
    last_started = None if back is None else now - dt.timedelta(microseconds=back)
    assert missed_tick(trigger, now, last_started) == spec_missed(line, change, now, last_started)
    tick = trigger.get_next_fire_time(None, now)
    assert tick == spec_next(line, change, now)
    ticks = expected_ticks(line, change)
    index = ticks.index(tick)
    for expected in ticks[index + 1 : index + 40]:
        # APScheduler 3 asks for the next fire time after the one it just ran.
        following = trigger.get_next_fire_time(tick, tick)
        assert following == expected
        tick = following


@settings(max_examples=300, deadline=None)
@given(
    line=lines,
    change=nights,
    restarts=st.lists(offsets, min_size=1, max_size=6, unique=True).map(sorted),
)
def test_restarts_during_a_dst_night_never_run_a_tick_twice(
    line: str, change: dt.datetime, restarts: list[int]
) -> None:
    """The daemon, (re)started at random instants of the night as the scheduler does it:
    every tick while it is up runs once, a missed one runs at start, none runs twice."""
    trigger = cron_trigger(line, AMSTERDAM)
    starts = [_at(change, m) for m in restarts]
    end = change + AFTER
    served: list[dt.datetime] = []
    last_started: dt.datetime | None = None
    for start, stop in zip(starts, [*starts[1:], end], strict=True):
        owed = missed_tick(trigger, start, last_started)
        assert owed == spec_missed(line, change, start, last_started)
        if owed is not None:  # sync_jobs: run now, then the scheduler goes on from now
            served.append(owed)
            last_started = start
            tick = trigger.get_next_fire_time(start, start)
        else:
            tick = trigger.get_next_fire_time(None, start)
        while tick is not None and tick < stop:
            served.append(tick)
            last_started = tick
            tick = trigger.get_next_fire_time(tick, tick)
        ticks = expected_ticks(line, change)
        up = [t for t in ticks if start <= t < stop]
        assert set(up) <= set(served), f"a tick while up did not run: {set(up) - set(served)}"
    assert len(served) == len(set(served)), "a tick ran twice"
    assert served == sorted(served)
    assert set(served) <= set(expected_ticks(line, change))


@pytest.mark.parametrize("line", LINES)
def test_a_trigger_made_for_each_night_is_the_same_one(line: str) -> None:
    """A trigger holds no state: ticks from a later start are the tail of an earlier start's."""
    trigger = cron_trigger(line, AMSTERDAM)
    for change in CHANGES:
        begin = change - BEFORE
        full = list(trigger.ticks_between(begin, change + AFTER))
        for now in night_minutes(change)[::7]:
            tail = list(CrontabTrigger(line, AMSTERDAM).ticks_between(now, change + AFTER))
            assert tail == [t for t in full if t >= now]
