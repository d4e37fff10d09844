"""Schedules: crontab weekday numbers, and the run owed after a missed tick."""

from __future__ import annotations

import datetime as dt

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from tests.support import fixture_config
from worker.cron import cron_trigger
from worker.scheduler import build_scheduler, missed_tick, sync_jobs

UTC = dt.UTC
# 02:00 in Amsterdam on 2026-11-28 (winter time) is 01:00 UTC.
TICK = dt.datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def test_weekday_numbers_follow_crontab() -> None:
    """`0 2 * * 0` fires on Sunday and `1-5` on weekdays, as crontab means, not APScheduler 3."""
    sunday = cron_trigger("0 2 * * 0", "Europe/Amsterdam")
    weekdays = cron_trigger("0 2 * * 1-5", "Europe/Amsterdam")
    saturday = dt.datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert sunday.get_next_fire_time(None, saturday).weekday() == 6
    assert weekdays.get_next_fire_time(None, saturday).date() == dt.date(2026, 11, 30)


def test_six_fields_put_seconds_first_and_other_counts_are_refused() -> None:
    """A sixth, leading field is seconds; four or seven fields are an error."""
    trigger = cron_trigger("*/2 * * * * *", "UTC")
    start = dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, start) == dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    for bad in ("* * * *", "* * * * * * *"):
        with pytest.raises(ValueError, match="instead of five or six"):
            cron_trigger(bad, "UTC")


def test_a_tick_missed_while_down_is_owed_within_the_grace_time() -> None:
    """Starting at 02:05 after the 02:00 tick with no run since: that tick is owed."""
    trigger = cron_trigger("0 2 * * *", "Europe/Amsterdam")
    now = TICK + dt.timedelta(minutes=5)
    assert missed_tick(trigger, now, last_started=TICK - dt.timedelta(days=1)) == TICK
    assert missed_tick(trigger, now, last_started=None) == TICK


def test_no_run_is_owed_once_served_or_past_the_grace_time() -> None:
    """A run started at or after the tick, or a tick older than the grace time, owes nothing."""
    trigger = cron_trigger("0 2 * * *", "Europe/Amsterdam")
    assert missed_tick(trigger, TICK + dt.timedelta(minutes=5), last_started=TICK) is None
    assert missed_tick(trigger, TICK + dt.timedelta(hours=7), last_started=None) is None


def test_sync_runs_owed_jobs_now_and_others_on_their_schedule() -> None:
    """A pair that missed its tick is due now; a pair served since is due at its next tick."""
    config = fixture_config()
    now = TICK + dt.timedelta(minutes=5)
    scheduler: BackgroundScheduler = build_scheduler()

    def last(customer: str, product: str) -> dt.datetime | None:
        return TICK + dt.timedelta(seconds=30) if customer == "kdv-zonnestraal" else None

    jobs = sync_jobs(scheduler, config, lambda c, p: None, now=now, last_started=last)
    assert len(jobs) == 4
    # Before the scheduler starts, only a job told to run at once has a next run time.
    due = {j.id: getattr(j, "next_run_time", None) for j in scheduler.get_jobs()}
    assert due["bso-de-vlinder/flexkids"] == now
    assert due["bso-de-vlinder/konnect"] == now
    assert due["kdv-zonnestraal/flexkids"] is None
    assert due["kdv-zonnestraal/konnect"] is None
    # A reload does not run a job again just because it was reloaded.
    sync_jobs(scheduler, config, lambda c, p: None, now=now, last_started=lambda c, p: None)
    assert {j.id for j in scheduler.get_jobs()} == set(jobs)
