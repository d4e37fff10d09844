"""Which tick a run of a pair belongs to: the key of its lease (worker/leases.py).

A pair's tick is the latest instant at or before the run's `now` that the pair's schedule
names, so every process that runs the pair for that schedule slot agrees on it.
"""

from __future__ import annotations

import datetime as dt

from worker.config import Customer, ProductMapping
from worker.cron import cron_trigger
from worker.scheduler import schedule_for

# Look-back windows for the latest tick: a minute, an hour, a day, a month, a year, 5 years.
_WINDOWS = (60, 3_600, 86_400, 32 * 86_400, 400 * 86_400, 1_830 * 86_400)

_LATEST: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = {}
"""Per crontab line and time zone: the latest tick found and the tick after it (UTC)."""
_LATEST_MOST = 1_024  # lines kept before the cache starts again (a reload may change them)


def latest_tick(cron: str, timezone: str, now: dt.datetime) -> dt.datetime:
    """The latest tick of the crontab line `cron` in `timezone` at or before `now` (aware),
    in UTC; `now` itself (in UTC) when the line has no tick in the five years before it.

    Searches back in widening windows, so the work is about the number of ticks in the
    first window that holds one (a line ticking every 2 s costs 30 ticks, a daily one a few).
    The tick found and the next one are kept per line: until that next tick, the answer is
    the same tick without a search (every run of a pair asks).
    ValueError for a bad line or time zone (configload rejects those before).
    """
    now = now.astimezone(dt.UTC)
    known = _LATEST.get((cron, timezone))
    if known is not None and known[0] <= now < known[1]:
        return known[0]
    trigger = cron_trigger(cron, timezone)
    for seconds in _WINDOWS:
        found = None
        for tick in trigger.ticks_between(now - dt.timedelta(seconds=seconds), now):
            found = tick
        if found is not None:
            following = trigger.get_next_fire_time(found, now)
            if following is not None:
                if len(_LATEST) >= _LATEST_MOST:
                    _LATEST.clear()
                _LATEST[(cron, timezone)] = (found, following)
            return found
    return now


def pair_tick(customer: Customer, mapping: ProductMapping, now: dt.datetime) -> dt.datetime:
    """The tick of a customer × product that a run at `now` belongs to (UTC), from the
    schedule the daemon uses for it (the customer's own, else the product's)."""
    schedule = schedule_for(customer, mapping)
    return latest_tick(schedule.cron, schedule.timezone or customer.timezone, now)
