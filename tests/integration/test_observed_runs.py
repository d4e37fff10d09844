"""What ops see of real runs on PostgreSQL: /metrics figures, probes, and a killed connection."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import dbs
from tests.rows import flexkids_row
from tests.support import FIXTURE_CONFIG, NOW, PEPPER, fixture_config, insert
from worker.app import build_runner, run_pairs
from worker.audit import AuditTrail
from worker.daemon import Daemon
from worker.events import BatchApplied, BatchIntent, EventBus, Outcome
from worker.http import HealthServer
from worker.metrics import Metrics
from worker.retry import RetryPolicy
from worker.settings import Settings
from worker.state import StateStore
from worker.verify import verify

KDV = "kdv-zonnestraal"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (local test server)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a text exposition, or None when it is absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _invoices(env: dict[str, str], dates: list[dt.date], org: int = 1042, start: int = 1) -> None:
    rows = [flexkids_row("invoice", start + i, org, d) for i, d in enumerate(dates)]
    insert(env["FLEXKIDS_DATABASE_URL"], "invoice", rows)


def test_metrics_after_a_run_equal_what_the_run_did(
    product_dbs: dict[str, str], state: StateStore
) -> None:
    """Scraped backlog, lag, processed rows and outcomes match the plan and the run exactly."""
    # 5 invoices one day past the 7-year cutoff, 3 of them a week older, 4 still kept.
    dates = [dt.date(2019, 11, 27)] * 5 + [dt.date(2019, 11, 20)] * 3 + [dt.date(2019, 11, 28)] * 4
    _invoices(product_dbs, dates)
    config = fixture_config()
    metrics = Metrics()
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: NOW), required=True)
    bus.subscribe(metrics)
    runner = build_runner(config, product_dbs, bus, pepper=PEPPER, clock=lambda: NOW)
    pairs = [(c, p) for c, p in config.pairs() if c.customer == KDV and p.product == "flexkids"]
    labels = {
        "customer": KDV,
        "product": "flexkids",
        "rule": "flexkids.invoice.fiscal",
        "action": "delete",
    }
    with HealthServer("127.0.0.1", 0, metrics, lambda: True, lambda: (True, "ready")) as http:
        base = f"http://127.0.0.1:{http.port}"
        planned = run_pairs(runner, pairs, NOW, dry_run=True)
        _, before = _get(f"{base}/metrics")
        done = run_pairs(runner, pairs, NOW, dry_run=False)
        status, after = _get(f"{base}/metrics")

    assert status == 200
    fiscal = next(p for p in planned[0].rules if p.rule == "flexkids.invoice.fiscal")
    assert fiscal.eligible == 8
    assert _sample(before, "retention_rows_eligible", **labels) == 8
    # Oldest: 2019-11-20 + 7 years = 2026-11-20, due from 2026-11-21 00:00 CET (23:00Z on
    # the 20th); now is 2026-11-28 12:00Z: 7 days and 13 hours late.
    assert _sample(before, "retention_compliance_lag_seconds", **labels) == 7 * 86400 + 13 * 3600
    assert _sample(before, "retention_rows_processed_total", **labels) in (None, 0.0)
    assert done[0].outcome is Outcome.SUCCEEDED
    assert _sample(after, "retention_rows_processed_total", **labels) == 8
    assert _sample(after, "retention_rows_eligible", **labels) == 0
    assert _sample(after, "retention_compliance_lag_seconds", **labels) == 0
    assert (
        _sample(
            after, "retention_runs_total", customer=KDV, product="flexkids", outcome="succeeded"
        )
        == 2
    )  # the plan and the run
    assert (
        _sample(after, "retention_last_success_timestamp_seconds", customer=KDV, product="flexkids")
        == NOW.timestamp()
    )
    promtool = shutil.which("promtool")
    if promtool is None:
        dbs.unavailable("promtool is not installed (apt-get install prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=after, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_readyz_answers_503_when_the_state_database_is_down(
    pg_server_url: str, tmp_path: Path
) -> None:
    """/healthz and /readyz answer 200 when healthy; /readyz 503 once the state DB is gone."""
    with dbs.postgres_database(pg_server_url) as state_url:
        StateStore(state_url).migrate()
        settings = Settings(
            config_dir=FIXTURE_CONFIG,
            state_url=state_url,
            http_host="127.0.0.1",
            http_port=0,
            pepper=PEPPER,
        )
        daemon = Daemon(settings, {}, FIXTURE_CONFIG, clock=lambda: NOW)
        daemon.load()
        daemon.scheduler.start()
        daemon.http.start()
        try:
            base = f"http://127.0.0.1:{daemon.http.port}"
            assert _get(f"{base}/healthz")[0] == 200
            assert _get(f"{base}/readyz") == (200, "ready\n")
            admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
            name = sa.make_url(state_url).database
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
            status, body = _get(f"{base}/readyz")
            assert status == 503
            assert "state database unreachable" in body
            assert _get(f"{base}/healthz")[0] == 200  # alive, just not ready
        finally:
            daemon.http.stop()
            daemon.scheduler.shutdown(wait=False)
            daemon.state.close()


def test_a_connection_killed_mid_batch_is_retried_and_counts_stay_exact(
    product_dbs: dict[str, str], state: StateStore
) -> None:
    """pg_terminate_backend during the second batch: it is retried, every row done once."""
    expired = [dt.date(2019, 11, 1)] * 10
    kept = [dt.date(2020, 1, 1)] * 3
    _invoices(product_dbs, expired + kept)
    engine = sa.create_engine(product_dbs["FLEXKIDS_DATABASE_URL"])
    with engine.begin() as conn:
        # A statement trigger that kills its own connection on the second DELETE, once:
        # sequences are not rolled back, so the retry of that batch goes through.
        conn.execute(sa.text("CREATE SEQUENCE kill_switch"))
        conn.execute(
            sa.text(
                "CREATE FUNCTION kill_once() RETURNS trigger AS $$ BEGIN "
                "IF nextval('kill_switch') = 2 THEN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); "
                "END IF; RETURN NULL; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER kill_once BEFORE DELETE ON invoice "
                "FOR EACH STATEMENT EXECUTE FUNCTION kill_once()"
            )
        )
    config = fixture_config()
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: NOW), required=True)
    bus.subscribe(events.append)
    runner = build_runner(config, product_dbs, bus, pepper=PEPPER, clock=lambda: NOW, batch_size=4)
    runner.retry = RetryPolicy(sleep=lambda _s: None)
    pairs = [(c, p) for c, p in config.pairs() if c.customer == KDV and p.product == "flexkids"]

    report = run_pairs(runner, pairs, NOW, dry_run=False)[0]

    with engine.connect() as conn:
        killed = conn.execute(sa.text("SELECT last_value FROM kill_switch")).scalar_one()
        left = conn.execute(sa.text("SELECT id FROM invoice ORDER BY id")).scalars().all()
    engine.dispose()
    assert killed >= 3  # the kill happened, and the batch ran again after it
    assert report.outcome is Outcome.SUCCEEDED
    assert report.changed == 10
    assert left == [11, 12, 13]
    applied = [e for e in events if isinstance(e, BatchApplied)]
    intents = [e for e in events if isinstance(e, BatchIntent)]
    assert [e.total for e in applied] == [4, 4, 2]
    assert len(intents) == 3
    assert verify(state).ok


pytestmark = pytest.mark.postgres
