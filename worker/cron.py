"""Crontab lines as the configuration writes them, turned into APScheduler triggers.

Five fields are standard crontab (minute hour day month weekday); six fields put seconds
first (for tests and short demos). Weekday numbers follow crontab (0 and 7 are Sunday),
not APScheduler 3's own numbering (0 is Monday): they are rewritten as names, so
`0 2 * * 1-5` means 02:00 Monday to Friday, as any crontab reader expects.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMBER = re.compile(r"(?<![/\w])([0-7])(?![\w])")


def _weekdays(field: str) -> str:
    """Crontab weekday numbers as names; a step stays a step (`*/2` = every other day)."""
    return _NUMBER.sub(lambda m: _DAYS[int(m.group(1))], field)


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """A trigger for a crontab line in `timezone`; ValueError says what is wrong."""
    fields = expr.split()
    if len(fields) == 5:
        second = "0"
    elif len(fields) == 6:
        second, fields = fields[0], fields[1:]
    else:
        raise ValueError(f"{len(fields)} fields instead of five or six")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=ZoneInfo(timezone),
    )
