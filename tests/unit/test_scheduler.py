"""Schedules: the run owed after a missed tick, the jobs per pair, and the daemon on DST nights.

Each test writes its own small configuration (one product, `diary`, over the demo Konnect
schema's `child` table, in one database per customer); none reads the shipped config/.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from demo.schemas import create_schema
from tests.acceptance.harness import poll
from worker.configload import Config, load_config
from worker.cron import cron_trigger
from worker.daemon import Daemon
from worker.scheduler import build_scheduler, missed_tick, sync_jobs
from worker.settings import Settings
from worker.state import StateStore

UTC = dt.UTC
# 02:00 in Amsterdam on 2026-11-28 (winter time) is 01:00 UTC.
TICK = dt.datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
# Issue 6: the night the clocks go back, one hour after the second 02:00 local.
BACK_NIGHT = dt.datetime(2026, 10, 25, 3, 0, tzinfo=UTC)
PEPPER = b"scheduler-test-pepper-0123456789"

CATALOGUE = """\
kinds:
  child: {label: Kind}
categories:
  name: {label: Naam}
products:
  diary:
    label: Diary
    annex: A.9
    processes:
      child: [name]
"""

PRODUCT = """\
product: diary
tenancy: {per_customer: true}
schedule: {cron: "SCHEDULE"}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {first_name: name, last_name: name}
    dates: {left: left_on}
rules:
  - id: diary.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""

CUSTOMER = """\
customer: CUSTOMER
timezone: Europe/Amsterdam
products:
  diary:
    database: {url_env: DATABASE_ENV}
"""


def write_config(
    directory: Path, customers: tuple[str, ...] = ("kdv-a", "kdv-b"), cron: str = "0 2 * * *"
) -> Path:
    """A configuration folder: product `diary` on `cron`, and each customer in its own database
    named by DIARY_<CUSTOMER>_URL (dashes as underscores)."""
    (directory / "products").mkdir(parents=True)
    (directory / "customers").mkdir()
    (directory / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    product = PRODUCT.replace("SCHEDULE", cron)
    (directory / "products" / "diary.yaml").write_text(product, encoding="utf-8")
    for customer in customers:
        text = CUSTOMER.replace("CUSTOMER", customer).replace(
            "DATABASE_ENV", database_env(customer)
        )
        (directory / "customers" / f"{customer}.yaml").write_text(text, encoding="utf-8")
    return directory


def database_env(customer: str) -> str:
    return f"DIARY_{customer.upper().replace('-', '_')}_URL"


def own_config(tmp_path: Path, cron: str = "0 2 * * *") -> Config:
    config = load_config(write_config(tmp_path / "config", cron=cron))
    config.raise_for_problems()
    return config


# --- the missed tick -------------------------------------------------------------------


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


def test_a_restart_in_the_repeated_hour_owes_nothing_after_the_first_0200() -> None:
    """Ran at 02:00 summer time (00:00Z); restarted at 02:30 winter time: 02:00 was one tick."""
    trigger = cron_trigger("0 2 * * *", "Europe/Amsterdam")
    first = dt.datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    restart = dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert missed_tick(trigger, restart, last_started=first) is None
    assert missed_tick(trigger, restart, last_started=None) == first


# --- jobs ------------------------------------------------------------------------------


def test_sync_runs_owed_jobs_now_and_others_on_their_schedule(tmp_path: Path) -> None:
    """A pair that missed its tick is due now; a pair served since is due at its next tick."""
    config = own_config(tmp_path)
    now = TICK + dt.timedelta(minutes=5)
    scheduler: BackgroundScheduler = build_scheduler()

    def last(customer: str, product: str) -> dt.datetime | None:
        return TICK + dt.timedelta(seconds=30) if customer == "kdv-a" else None

    jobs = sync_jobs(scheduler, config, lambda c, p: None, now=now, last_started=last)
    assert set(jobs) == {"kdv-a/diary", "kdv-b/diary"}
    # Before the scheduler starts, only a job told to run at once has a next run time.
    due = {j.id: getattr(j, "next_run_time", None) for j in scheduler.get_jobs()}
    assert due == {"kdv-b/diary": now, "kdv-a/diary": None}
    # A reload does not run a job again just because it was reloaded.
    sync_jobs(scheduler, config, lambda c, p: None, now=now, last_started=lambda c, p: None)
    assert {j.id for j in scheduler.get_jobs()} == set(jobs)


def test_started_jobs_are_due_at_the_next_tick_of_their_line(tmp_path: Path) -> None:
    """Once the scheduler runs, a job's next run time is the trigger's next tick, in UTC."""
    config = own_config(tmp_path, cron="0 2 * * 1-5")
    scheduler = build_scheduler()
    sync_jobs(scheduler, config, lambda c, p: None, now=TICK, last_started=lambda c, p: TICK)
    before = dt.datetime.now(UTC)  # APScheduler computes the first run time from its own clock
    scheduler.start(paused=True)
    after = dt.datetime.now(UTC)
    try:
        job = scheduler.get_job("kdv-a/diary")
        candidates = {job.trigger.get_next_fire_time(None, t) for t in (before, after)}
        assert job.next_run_time in candidates
        assert job.next_run_time.tzinfo is not None
        local = job.next_run_time.astimezone(ZoneInfo("Europe/Amsterdam"))
        assert (local.hour, local.minute, local.second) == (2, 0, 0)
        assert local.weekday() < 5
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.parametrize("cron", ["0 2 * * 0-6", "0 2 * * */2", "0 2 * * 1-7/2", "0 2 * * 7"])
def test_crontab_weekday_forms_are_accepted_and_the_product_runs(tmp_path: Path, cron: str) -> None:
    """Issue 6: `0 2 * * 0-6` set the whole product aside; every crontab weekday form loads."""
    config = load_config(write_config(tmp_path / "config", cron=cron))
    assert config.problems == ()
    assert sorted((c.customer, p.product) for c, p in config.pairs()) == [
        ("kdv-a", "diary"),
        ("kdv-b", "diary"),
    ]


def test_a_bad_weekday_is_refused_with_the_field_named(tmp_path: Path) -> None:
    """`0 2 * * 8` is a located problem that names the weekday field and its range."""
    config = load_config(write_config(tmp_path / "config", cron="0 2 * * 8"))
    assert len(config.problems) == 1
    problem = str(config.problems[0])
    assert "products/diary.yaml" in problem
    assert "schedule.cron" in problem
    assert "the weekday field '8' is not valid; it takes 0-7, where 0 and 7 are Sunday" in problem


# --- the daemon on the night the clocks go back -------------------------------------------


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """Restore the test process's own SIGTERM/SIGINT/SIGHUP handlers afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  (a local test URL)
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)


def test_daemon_started_in_the_night_the_clocks_go_back_serves_readyz_and_stops_on_sigterm(
    tmp_path: Path, signal_handlers: None
) -> None:
    """Issue 6: the daemon (default `0 2 * * *`, Amsterdam) with its clock at 2026-10-25T03:00Z
    never served /readyz and ignored SIGTERM. Now: ready, and the first SIGTERM stops it (0)."""
    config_dir = write_config(tmp_path / "config", customers=("kdv-a",))
    product_url = f"sqlite:///{tmp_path / 'diary.db'}"
    create_schema(product_url, "konnect")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(state_url).migrate()
    settings = Settings(
        config_dir=config_dir,
        state_url=state_url,
        http_host="127.0.0.1",
        http_port=0,
        stop_grace_seconds=10,
        pepper=PEPPER,
    )
    env = {database_env("kdv-a"): product_url}
    daemon = Daemon(settings, env, config_dir, clock=lambda: BACK_NIGHT)
    daemon.install_signal_handlers()
    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(daemon.serve()), daemon=True)
    thread.start()
    try:

        def ready() -> bool:
            if not daemon.http.port:
                return False
            return _get(f"http://127.0.0.1:{daemon.http.port}/readyz") == (200, "ready\n")

        poll(ready, timeout=30, what="/readyz to answer 200 ready")
        job = daemon.scheduler.get_job("kdv-a/diary")
        assert job is not None
        os.kill(os.getpid(), signal.SIGTERM)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the daemon did not stop on the first SIGTERM"
        assert exit_codes == [0]
    finally:
        if thread.is_alive():  # a failed test must not leave the daemon serving
            daemon.stop.set()
            daemon._wake.set()
            thread.join(timeout=5)
