"""APScheduler 3.x wiring, and nothing else: one job per customer × product.

A job calls back into the daemon, which runs the same `run_pairs` as `run --once`.
Coalescing folds missed ticks into one run, `max_instances=1` keeps a pair from running
twice at once, and a misfire grace time lets a late start (a restarted pod) still run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from worker.config import Customer, ProductMapping, Schedule
from worker.configload import Config
from worker.cron import cron_trigger

MISFIRE_GRACE_SECONDS = 6 * 3600
MAX_PARALLEL_RUNS = 4

Job = Callable[[str, str], None]


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
    """The customer's own schedule for the product when it sets one, else the product's."""
    own = customer.products[mapping.product].schedule
    return own if own is not None else mapping.schedule


def job_id(customer: str, product: str) -> str:
    return f"{customer}/{product}"


def sync_jobs(scheduler: BackgroundScheduler, config: Config, job: Job) -> dict[str, Schedule]:
    """Make the scheduler's jobs exactly the configuration's pairs; returns id → schedule."""
    wanted: dict[str, Schedule] = {}
    for customer, mapping in config.pairs():
        ident = job_id(customer.customer, mapping.product)
        schedule = schedule_for(customer, mapping)
        wanted[ident] = schedule
        scheduler.add_job(
            job,
            trigger=cron_trigger(schedule.cron, schedule.timezone),
            args=(customer.customer, mapping.product),
            id=ident,
            name=ident,
            replace_existing=True,
        )
    for existing in scheduler.get_jobs():
        if existing.id not in wanted:
            existing.remove()
    return wanted
