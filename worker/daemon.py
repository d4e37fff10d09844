"""The long-running worker: schedule, HTTP probes and metrics, reload on SIGHUP, clean stop.

Signals: SIGTERM or SIGINT asks for a stop. No new batch starts; the batch in flight
commits (or rolls back); each run in progress is recorded as interrupted; the process
exits 0 once they are done, or 1 when they are not done within the grace period. A second
signal exits at once. SIGHUP reloads the configuration: a new configuration takes effect
only when it is valid; otherwise the old one stays and `retention_config_valid` drops to 0.
A new configuration closes the engines (connection pools) of product databases no pair uses
any more; the stop closes all of them.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import structlog

from connectors.engines import process_engines
from worker.app import (
    ConnectorFactory,
    build_runner,
    reconcile_all,
    run_pairs,
    subscribe_state,
    utc_now,
)
from worker.batchsize import LearnedSizes
from worker.configload import Config, load_config
from worker.errors import ExitCode, RetentionError
from worker.events import ConfigLoaded, EventBus
from worker.http import HealthServer
from worker.logging import LogSubscriber
from worker.metrics import Metrics
from worker.run import Clock
from worker.scheduler import build_scheduler, job_id, sync_jobs
from worker.settings import Settings
from worker.status import read_status

log = structlog.get_logger("worker.daemon")

HEARTBEAT_SECONDS = 1.0
HEALTHY_WITHIN_SECONDS = 30.0
LEASE_MARGIN_SECONDS = 0.5  # after a holder's lease would expire (it may have been renewed)


class Daemon:
    """Owns the scheduler, the HTTP server and the state store for the process's lifetime."""

    def __init__(
        self,
        settings: Settings,
        env: Mapping[str, str],
        config_dir: Path,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.env = env
        self.config_dir = config_dir
        self.clock = clock
        self.pepper = settings.require_pepper()
        self.signer = settings.checkpoint_signer()
        self.metrics = Metrics()
        self.engines = process_engines()  # product database engines, shared by every run
        # Tuned batch sizes, carried from job to job until a reload (worker/batchsize.py).
        self.learned_sizes = LearnedSizes()
        self.state = settings.state_store()
        self.stop = threading.Event()
        self.config: Config | None = None
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._signals = 0
        self._heartbeat = time.monotonic()
        self._active = 0
        self._active_lock = threading.Condition()
        self.scheduler = build_scheduler()
        self.bus = EventBus()
        subscribe_state(self.bus, self.state, clock)
        self.bus.subscribe(self.metrics)
        self.bus.subscribe(LogSubscriber())
        self.bus.on_error = lambda sub, event, exc: log.error(
            "subscriber.failed",
            subscriber=type(sub).__name__,
            event_name=event.name,
            error=str(exc),
        )
        self.http = HealthServer(
            settings.http_host, settings.http_port, self.metrics, self.healthy, self.ready
        )

    # --- probes ----------------------------------------------------------------------

    def healthy(self) -> bool:
        """The process and its scheduler loop are alive."""
        fresh = time.monotonic() - self._heartbeat < HEALTHY_WITHIN_SECONDS
        return bool(self.scheduler.running) and fresh

    def ready(self) -> tuple[bool, str]:
        """Configuration loaded and the state database reachable."""
        if self.config is None:
            return False, "configuration not loaded"
        if self.stop.is_set():
            return False, "stopping"
        try:
            self.state.ping()
        except RetentionError as exc:
            return False, f"state database unreachable: {exc}"
        return True, "ready"

    # --- configuration ---------------------------------------------------------------

    def load(self) -> bool:
        """Load (or reload) the configuration; an invalid one never replaces a valid one."""
        config = load_config(self.config_dir, self.env)
        if config.problems and self.config is not None:
            for problem in config.problems:
                log.error("config.problem", problem=str(problem))
            log.error(
                "config.reload_rejected",
                problems=len(config.problems),
                detail="the previous configuration stays in force",
            )
            self.bus.publish(ConfigLoaded(valid=False, problems=len(config.problems)))
            return False
        for problem in config.problems:
            log.error("config.problem", problem=str(problem))
        self.config = config
        # A reload may change a mapping's dependents: sizes are learned afresh.
        self.learned_sizes = LearnedSizes()
        # Engines of databases no configured pair uses any more are closed.
        disposed = ConnectorFactory(self.env, self.pepper, self.engines).retain(config.pairs())
        if disposed:
            log.info("engines.disposed", engines=disposed)
        jobs = sync_jobs(
            self.scheduler, config, self.run_job, now=self.clock(), last_started=self._last_started
        )
        for ident, schedule in sorted(jobs.items()):
            log.info("job.scheduled", job=ident, cron=schedule.cron, timezone=schedule.timezone)
        self.bus.publish(ConfigLoaded(valid=not config.problems, problems=len(config.problems)))
        return not config.problems

    def _reconcile(self) -> None:
        """Settle what a crash of an earlier process left open, before anything runs."""
        if self.config is None:
            return
        try:
            reconcile_all(
                self.config,
                self.env,
                self.bus,
                self.state,
                pepper=self.pepper,
                clock=self.clock,
                engines=self.engines,
            )
        except RetentionError as exc:
            log.exception("reconcile.failed", error=str(exc))

    def _restore_metrics(self) -> None:
        """Rebuild the per-pair gauges from the state database before the first scrape."""
        if self.config is None:
            return
        pairs = [(c.customer, p.product) for c, p in self.config.pairs()]
        try:
            self.metrics.restore(read_status(self.state, pairs))
        except RetentionError as exc:
            log.warning("metrics.restore_failed", error=str(exc))
            return
        log.info("metrics.restored", pairs=len(pairs))

    def _last_started(self, customer: str, product: str) -> dt.datetime | None:
        try:
            return self.state.last_started(customer, product)
        except RetentionError as exc:
            log.warning("state.unreadable", error=str(exc), detail="no catch-up run")
            # Unknown: assume served, so a flaky state database never causes extra runs.
            return self.clock()

    # --- jobs ------------------------------------------------------------------------

    @contextmanager
    def _tracked(self) -> Iterator[None]:
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1
                self._active_lock.notify_all()

    def run_job(self, customer: str, product: str, at: dt.datetime | None = None) -> None:
        """A scheduled tick: the same run as `run --once`, for one customer × product.

        When another process holds the pair's lease for this tick, the pair is asked
        again (`at` is then the first attempt's time, so the same tick) when that lease
        would expire: if its holder has crashed, this process takes the pair over.
        """
        if self.stop.is_set():
            return
        with self._tracked():
            config = self.config
            if config is None:
                return
            pairs = [
                (c, p) for c, p in config.pairs() if c.customer == customer and p.product == product
            ]
            runner = build_runner(
                config,
                self.env,
                self.bus,
                pepper=self.pepper,
                clock=self.clock,
                stop=self.stop,
                retry=self.settings.retry_policy(),
                store=self.state,
                signer=self.signer,
                lease_seconds=self.settings.lease_seconds,
                scheduled=True,
                schema_reuse_seconds=self.settings.schema_reuse_seconds,
                engines=self.engines,
                learned_sizes=self.learned_sizes,
            )
            now = at or self.clock()
            try:
                reports = run_pairs(runner, pairs, now, dry_run=False, announce=at is None)
            except Exception:
                log.exception("job.crashed", job=f"{customer}/{product}")
                return
            for report in reports:
                if report.skipped is not None and report.skipped.why == "held":
                    self._ask_again(customer, product, now, report.skipped.wait_seconds)

    def _ask_again(self, customer: str, product: str, at: dt.datetime, wait: float) -> None:
        """Run the pair's job for the tick of `at` again in `wait` seconds (real time)."""
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait + LEASE_MARGIN_SECONDS)
        try:
            self.scheduler.add_job(
                self.run_job,
                trigger="date",
                run_date=when,
                args=(customer, product, at),
                id=f"{job_id(customer, product)}#lease",
                replace_existing=True,
            )
        except Exception:  # noqa: BLE001  (a scheduler shut down by a stop)
            log.debug("job.not_asked_again", job=job_id(customer, product))

    # --- lifetime --------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload.set()
            self._wake.set()
            return
        self._signals += 1
        if self._signals > 1:
            os.write(
                2,
                b'{"event": "daemon.killed", "level": "error", '
                b'"detail": "second signal: exiting at once"}\n',
            )
            os._exit(128 + signum)
        self.stop.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def serve(self) -> int:
        """Run until stopped; the exit code says whether the stop was clean."""
        self.state.check()
        self.load()
        self._reconcile()
        self._restore_metrics()
        self.http.start()
        self.scheduler.start()
        log.info(
            "daemon.started",
            http_port=self.http.port,
            jobs=len(self.scheduler.get_jobs()),
            grace_seconds=self.settings.stop_grace_seconds,
        )
        try:
            while not self.stop.is_set():
                self._heartbeat = time.monotonic()
                self._wake.wait(HEARTBEAT_SECONDS)
                self._wake.clear()
                if self._reload.is_set():
                    self._reload.clear()
                    log.info("config.reload_requested")
                    self.load()
        finally:
            code = self._shutdown()
        return code

    def _shutdown(self) -> int:
        log.info("daemon.stopping", runs_in_progress=self._active)
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.settings.stop_grace_seconds
        with self._active_lock:
            while self._active and time.monotonic() < deadline:
                self._active_lock.wait(timeout=max(0.0, deadline - time.monotonic()))
            unfinished = self._active
        self.http.stop()
        self.engines.dispose()
        if unfinished:
            log.error(
                "daemon.stopped",
                clean=False,
                runs_unfinished=unfinished,
                detail="grace period over; a batch in flight is rolled back by its database",
            )
            return int(ExitCode.RUN_FAILED)
        self.state.close()
        log.info("daemon.stopped", clean=True)
        return int(ExitCode.OK)
