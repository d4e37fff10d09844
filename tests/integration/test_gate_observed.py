"""What holds, approvals and policies leave behind: metrics (after a restart too), the policy
fingerprint in the trail, and the longest retention winning between rules."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import urllib.request
from pathlib import Path

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests import dbs, kidsapp
from tests.gate_support import (
    OLD,
    RECENT,
    config,
    place,
    run,
    sample,
    seed,
)
from tests.support import NOW, PEPPER
from worker.approvals import ApprovalLedger
from worker.daemon import Daemon
from worker.fingerprint import policy_fingerprint
from worker.http import HealthServer
from worker.keys import record_key_hash
from worker.metrics import Metrics
from worker.settings import Settings
from worker.state import StateStore
from worker.verify import verify


def test_scraped_metrics_equal_holds_and_approvals_after_a_run(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """/metrics after a run: rows held and rules awaiting approval (with since) are what the
    ledgers and the data say; promtool accepts the exposition."""
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(rules=[kidsapp.rule(approval="required")]),
    )
    seed(product_url, [OLD] * 5 + [RECENT], [OLD] * 4)
    for i in (2, 3, 6):  # 6 is inside its period: held, but not an eligible row
        key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (i,))
        place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
    metrics = Metrics()
    with HealthServer("127.0.0.1", 0, metrics, lambda: True, lambda: (True, "ready")) as http:
        run(cfg, product_url, state, extra=[metrics])
        with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/metrics") as response:
            text = response.read().decode()

    waiting = {a.customer: a for a in ApprovalLedger(state).list()}
    assert set(waiting) == {"kdv-a", "kdv-b"}
    for customer, held in (("kdv-a", 2), ("kdv-b", 0)):
        target = {"product": kidsapp.PRODUCT, "customer": customer}
        assert sample(text, "retention_rows_held", target) == held
        assert sample(text, "retention_runs_awaiting_approval", target) == 1
        since = sample(
            text,
            "retention_approval_pending_since_timestamp_seconds",
            {**target, "rule": kidsapp.RULE},
        )
        assert since == waiting[customer].requested_at.timestamp()
    promtool = shutil.which("promtool")
    if promtool is None:
        dbs.unavailable("promtool is not installed (apt-get install prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_audit_verify_names_the_policy_each_run_followed(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """run.started records the policy fingerprint; verify counts the runs per policy."""
    cfg = config(tmp_path)
    seed(product_url, [OLD], [OLD])
    run(cfg, product_url, state)
    run(cfg, product_url, state, customer="kdv-a")
    expected = {c.customer: policy_fingerprint(cfg.catalogue, c, p) for c, p in cfg.pairs()}
    result = verify(state)
    assert result.ok
    assert result.policies == {expected["kdv-a"]: 2, expected["kdv-b"]: 1}


def test_a_restarted_daemon_shows_every_pair_before_its_first_run(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """The gauges a run left (last success, backlog, lag, held, awaiting approval, connector,
    checkpoint) are on /metrics of a new daemon before it runs anything."""
    yearly = {"cron": "0 2 1 1 *"}  # no tick within the catch-up window of NOW
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(schedule=yearly),
        customers={"kdv-a": {}, "kdv-b": {"breaker": {"max_rows": 1}}},
    )
    seed(product_url, [OLD] * 3, [OLD] * 2)
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (1,))
    place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
    before = Metrics()
    run(cfg, product_url, state, extra=[before])
    series = [
        "retention_last_success_timestamp_seconds",
        "retention_rows_eligible",
        "retention_compliance_lag_seconds",
        "retention_rows_held",
        "retention_runs_awaiting_approval",
        "retention_approval_pending_since_timestamp_seconds",
        "retention_connector_up",
        "retention_audit_checkpoint_seq",
    ]
    expected = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in before.registry.collect()
        for s in family.samples
        if s.name in series
    }
    assert {name for name, _ in expected} == set(series)
    assert expected[("retention_rows_held", (("customer", "kdv-a"), ("product", "kidsapp")))] == 1

    settings = Settings(
        config_dir=cfg.directory,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        http_host="127.0.0.1",
        http_port=0,
        pepper=PEPPER,
    )
    daemon = Daemon(settings, {kidsapp.URL_ENV: product_url}, cfg.directory, clock=lambda: NOW)
    daemon.load()
    daemon._restore_metrics()  # what serve() does before it starts the HTTP endpoint
    daemon.http.start()
    try:
        url = f"http://127.0.0.1:{daemon.http.port}/metrics"
        with urllib.request.urlopen(url) as response:
            text = response.read().decode()
    finally:
        daemon.http.stop()
        daemon.state.close()
    restored = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in series
    }
    assert restored == expected


def test_between_two_rules_on_one_column_the_longest_retention_wins(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """`name` masked after 1 month by one rule and after 12 by another: a row 2 months gone
    keeps its name, 13 months gone loses it. With a delete after 24 months on the table, that
    delete keeps every column 24 months: the 1-month mask waits too, and a row 30 months
    gone is deleted."""
    mask = {"subject": "child", "action": "anonymise", "with": {"name": "null"}}
    early = {**mask, "id": "kidsapp.name.early", "after": {"date": "left", "period": "1m"}}
    late = {**mask, "id": "kidsapp.name.late", "after": {"date": "left", "period": "12m"}}
    ages = {1: dt.date(2026, 9, 20), 2: dt.date(2025, 10, 20), 3: dt.date(2024, 5, 20)}
    kidsapp.create(any_db_url, [(i, 1, d) for i, d in ages.items()])

    def names() -> dict[int, str | None]:
        engine = sa.create_engine(any_db_url)
        with engine.connect() as conn:
            found = {r.id: r.name for r in conn.execute(sa.select(kidsapp.CHILD))}
        engine.dispose()
        return found

    two = config(
        tmp_path / "a", product=kidsapp.mapping(rules=[early, late]), customers={"kdv-a": {}}
    )
    run(two, any_db_url, state)
    assert names() == {1: "Kind 1", 2: None, 3: None}

    kidsapp.drop(any_db_url)
    kidsapp.create(any_db_url, [(i, 1, d) for i, d in ages.items()])
    with_delete = config(
        tmp_path / "b",
        product=kidsapp.mapping(rules=[early, kidsapp.rule()]),
        customers={"kdv-a": {}},
    )
    run(with_delete, any_db_url, state)
    assert names() == {1: "Kind 1", 2: "Kind 2"}
