"""APScheduler 3.x wiring, and nothing else: one job per customer × product.

A job calls back into the daemon, which runs the same `run_pairs` as `run --once`.
Coalescing folds missed ticks into one run, `max_instances=1` keeps a pair from running
twice at once, and a misfire grace time lets a late start (a restarted pod) still run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from worker.config import Customer, ProductMapping, Schedule
from worker.configload import Config
from worker.cron import CrontabTrigger, cron_trigger

MISFIRE_GRACE_SECONDS = 6 * 3600
MAX_PARALLEL_RUNS = 4

Job = Callable[[str, str], None]
LastStarted = Callable[[str, str], dt.datetime | None]


def build_scheduler() -> BackgroundScheduler:
    return BackgroundScheduler(
        timezone=dt.UTC,
        executors={"default": ThreadPoolExecutor(max_workers=MAX_PARALLEL_RUNS)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )


def schedule_for(customer: Customer, mapping: ProductMapping) -> Schedule:
    """The customer's own schedule for the product when it sets one, else the product's;
    a schedule without a time zone runs in the customer's."""
    own = customer.products[mapping.product].schedule
    chosen = own if own is not None else mapping.schedule
    return Schedule(cron=chosen.cron, timezone=chosen.timezone or customer.timezone)


def job_id(customer: str, product: str) -> str:
    return f"{customer}/{product}"


def missed_tick(
    trigger: CrontabTrigger, now: dt.datetime, last_started: dt.datetime | None
) -> dt.datetime | None:
    """The latest tick within the misfire grace time that no run has started since.

    `now` and `last_started` are aware instants; the result is a tick in UTC, or None when
    nothing is owed. A worker that was down at 02:00 and starts at 02:05 still owes that
    night's run; one that ran at 02:00 summer time and restarts in the repeated hour owes
    nothing (that local time is one tick, see worker/cron.py). Walks forward over the ticks
    of the window only (at most one per second of MISFIRE_GRACE_SECONDS), so it always ends.
    """
    start = now - dt.timedelta(seconds=MISFIRE_GRACE_SECONDS)
    if last_started is not None:
        start = max(start, last_started + dt.timedelta(microseconds=1))
    latest: dt.datetime | None = None
    for tick in trigger.ticks_between(start, now):
        latest = tick
    return latest


def sync_jobs(
    scheduler: BackgroundScheduler,
    config: Config,
    job: Job,
    *,
    now: dt.datetime,
    last_started: LastStarted,
) -> dict[str, Schedule]:
    """Make the scheduler's jobs exactly the configuration's pairs; returns id → schedule.

    A new job whose latest tick passed unserved (within the misfire grace time) runs now.
    """
    wanted: dict[str, Schedule] = {}
    known = {j.id for j in scheduler.get_jobs()}
    for customer, mapping in config.pairs():
        ident = job_id(customer.customer, mapping.product)
        schedule = schedule_for(customer, mapping)
        wanted[ident] = schedule
        trigger = cron_trigger(schedule.cron, schedule.timezone or customer.timezone)
        owed = None
        if ident not in known:
            owed = missed_tick(trigger, now, last_started(customer.customer, mapping.product))
        extra: dict[str, Any] = {"next_run_time": now} if owed is not None else {}
        scheduler.add_job(
            job,
            trigger=trigger,
            args=(customer.customer, mapping.product),
            id=ident,
            name=ident,
            replace_existing=True,
            **extra,
        )
    for existing in scheduler.get_jobs():
        # `pair#lease`: a pair asked again when another process's lease expires (daemon.py).
        if existing.id.partition("#")[0] not in wanted:
            existing.remove()
    return wanted
