"""Crontab lines as the configuration writes them, as APScheduler 3 triggers.

A line has five fields (minute hour day month weekday), as in crontab(5), or six with
seconds first (for tests and short demos). The library cronsim reads and evaluates the
line; it follows Debian's cron, so every field keeps crontab's meaning:

- weekday numbers 0-7, where 0 and 7 are Sunday: `0-6` and `1-7` are every day, `0-4` is
  Sunday to Thursday, `*/2` is Sunday, Tuesday, Thursday and Saturday (0-7 in steps of 2),
  `1-7/2` is Monday, Wednesday, Friday and Sunday; names (`mon-fri`) work too;
- when the day of month and the weekday are both restricted (neither starts with `*`), a day
  that matches either one runs, as crontab(5) says (`0 2 1 * 1`: the 1st and every Monday).

Daylight saving time, as Debian's cron handles it (crontab(8), "Local time changes of less
than three hours"):

- A line with a fixed minute and hour (neither field starts with `*`: `0 2 * * *`,
  `30 1-3 * * 1-5`) runs once per matching local time. A local time that occurs twice (the
  night the clocks go back) runs at its first occurrence only. A local time the clocks skip
  (the night they go forward) runs once, at the first instant after the skip (03:00 summer
  time in Europe/Amsterdam); several skipped times of one line make that one run.
- A line whose minute or hour starts with `*` (`0 * * * *`, `*/15 * * * *`) follows real time:
  it runs at every instant whose local time matches. In the hour that repeats it runs in both
  hours (an hourly job stays hourly); the skipped hour does not exist, so nothing runs in it.
- A six-field line follows the same rule by its minute and hour fields; its seconds are
  offsets within each minute that the other five fields give.

Ticks are instants (UTC), strictly increasing: a computation from any instant ends, and no
tick comes twice. `CrontabTrigger` is the project's trigger; APScheduler 3's own CronTrigger
is not used (it numbers weekdays from Monday, always ANDs the two day fields, and returns the
same fire time forever after the repeated 02:00 of the night the clocks go back).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim, CronSimError

UTC = dt.UTC
_ANCHOR = dt.datetime(2000, 1, 1, tzinfo=UTC)  # any instant: only to parse a line
_ONE_MICROSECOND = dt.timedelta(microseconds=1)

# cronsim's error message → which field of the line, and what it may hold.
_FIELD_HELP = {
    "Bad second": ("second", "0-59"),
    "Bad minute": ("minute", "0-59"),
    "Bad hour": ("hour", "0-23"),
    "Bad day-of-month": ("day of month", "1-31, and a day that the months given have"),
    "Bad month": ("month", "1-12 or jan-dec"),
    "Bad day-of-week": ("weekday", "0-7, where 0 and 7 are Sunday, or sun-sat"),
}
_FIELD_INDEX = {"second": 0, "minute": 1, "hour": 2, "day of month": 3, "month": 4, "weekday": 5}


def _one_value_ranges(field: str) -> str:
    """`a-a/n` written as `a`: a range of one value is that value, stepped or not.

    crontab(5) steps through the range `a-a`, which holds `a` only; cronsim reads a range of
    one value with a step as "from a to the field's end in steps of n", so `0-0/1` in the
    weekday field would mean every day. Rewriting the term keeps crontab's meaning.
    """
    terms = []
    for term in field.split(","):
        span, slash, step = term.partition("/")
        first, dash, last = span.partition("-")
        same = first.lower() == last.lower() or (
            first.isdigit() and last.isdigit() and int(first) == int(last)
        )
        if slash and dash and same and step.isdigit() and int(step) > 0:
            term = first
        terms.append(term)
    return ",".join(terms)


def _why(exc: CronSimError, fields: list[str]) -> str:
    """A ValueError message naming the bad field of a six-field line (seconds first)."""
    known = _FIELD_HELP.get(str(exc))
    if known is None:
        return str(exc)
    name, allowed = known
    return f"the {name} field {fields[_FIELD_INDEX[name]]!r} is not valid; it takes {allowed}"


class CrontabTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler 3 ships no types
    """APScheduler 3 trigger for one crontab line read in one IANA time zone.

    Implements APScheduler 3's BaseTrigger contract: `get_next_fire_time(previous, now)`
    returns the first tick strictly after `previous` when given, else the first tick at or
    after `now`, or None when the line has no tick within 50 years (cronsim's horizon).
    All instants are timezone-aware; ticks are returned in UTC. The DST and field semantics
    are Debian cron's, as the module docstring describes.

    Raises ValueError (message: what is wrong) for a bad line or an unknown time zone.
    """

    __slots__ = ("_minute_line", "_seconds", "_zone", "line", "timezone")

    def __init__(self, line: str, timezone: str) -> None:
        fields = line.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise ValueError(f"{len(fields)} fields instead of five or six")
        original = fields
        fields = [_one_value_ranges(f) for f in fields]
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
        minute_line = " ".join(fields[1:])
        try:
            CronSim(minute_line, _ANCHOR.astimezone(zone))
            seconds = CronSim(f"{fields[0]} * * * * *", _ANCHOR).seconds
        except CronSimError as exc:
            raise ValueError(_why(exc, original)) from None
        self.line = line
        self.timezone = timezone
        self._zone = zone
        self._minute_line = minute_line
        self._seconds = tuple(dt.timedelta(seconds=s) for s in sorted(seconds))

    def ticks(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """Every tick at or after `start` (aware), in UTC, strictly increasing.

        Endless unless the line has no tick within 50 years of the previous one. Bounded
        work per tick: cronsim always moves forward, and the few minute ticks it gives before
        `start` (at most an hour's worth, when `start` lies in the repeated hour) are skipped.
        """
        start = _aware(start, "start").astimezone(UTC)
        # cronsim yields minute ticks strictly after its anchor, read as local time; a
        # minute early keeps the later seconds of the minute that `start` falls in.
        anchor = (start - dt.timedelta(minutes=1)).astimezone(self._zone)
        last: dt.datetime | None = None
        for minute in CronSim(self._minute_line, anchor):
            base = minute.astimezone(UTC)
            for offset in self._seconds:
                tick = base + offset
                if tick < start or (last is not None and tick <= last):
                    continue
                last = tick
                yield tick

    def ticks_between(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """The ticks `start` <= tick <= `end` (aware instants), in UTC, in order."""
        end = _aware(end, "end")
        return itertools.takewhile(lambda tick: tick <= end, self.ticks(start))

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        """APScheduler 3: the first tick after `previous_fire_time`, else at or after `now`.

        Strictly after the previous fire time even when the clock has gone back, so no tick
        is ever run twice.
        """
        if previous_fire_time is None:
            start = now
        else:
            start = _aware(previous_fire_time, "previous_fire_time") + _ONE_MICROSECOND
        return next(self.ticks(start), None)

    def __str__(self) -> str:
        return f"cron[{self.line!r} in {self.timezone}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger ({self.line!r}, timezone={self.timezone!r})>"


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def cron_trigger(expr: str, timezone: str) -> CrontabTrigger:
    """A trigger for a crontab line in `timezone` (IANA name); ValueError says what is wrong."""
    return CrontabTrigger(expr, timezone)
