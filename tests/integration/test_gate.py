"""Holds, approvals and the blast-radius breaker, on real SQLite product and state databases.

Each test builds its own `kidsapp` configuration (tests/kidsapp.py): tenant 1 (kdv-a) and
tenant 2 (kdv-b) share one table; rows are asserted by id after each run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from demo.walkthrough import walkthrough
from tests import dbs, kidsapp
from tests.support import NOW, PEPPER, copy_config
from worker.app import build_runner, run_pairs, subscribe_state
from worker.approvals import ApprovalError, ApprovalLedger
from worker.audit import verify
from worker.configload import Config, load_config
from worker.daemon import Daemon
from worker.events import (
    ApprovalChanged,
    BatchApplied,
    BatchIntent,
    Event,
    EventBus,
    RuleGated,
)
from worker.fingerprint import policy_fingerprint
from worker.holds import HoldError, HoldLedger
from worker.http import HealthServer
from worker.keys import record_key_hash
from worker.metrics import Metrics
from worker.periods import Period, Unit, cutoff
from worker.runreport import RunReport
from worker.settings import Settings
from worker.state import StateStore

OLD = dt.date(2023, 6, 1)  # past 1 month and past the default 24 months on NOW (2026-11-28)
RECENT = dt.date(2026, 11, 20)  # inside 1 month


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def state(tmp_path: Path) -> Any:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def product_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kidsapp.db'}"


def config(tmp_path: Path, **kwargs: Any) -> Config:
    loaded = load_config(kidsapp.write_config(tmp_path / "config", **kwargs))
    loaded.raise_for_problems()
    return loaded


def run(
    cfg: Config,
    url: str,
    state: StateStore,
    *,
    dry_run: bool = False,
    now: dt.datetime = NOW,
    customer: str | None = None,
    extra: list[Any] | None = None,
) -> tuple[list[RunReport], Recorder]:
    bus = EventBus()
    subscribe_state(bus, state, lambda: now)
    recorder = Recorder()
    bus.subscribe(recorder)
    for subscriber in extra or []:
        bus.subscribe(subscriber)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=lambda: now, store=state
    )
    pairs = [(c, p) for c, p in cfg.pairs() if customer is None or c.customer == customer]
    return run_pairs(runner, pairs, now, dry_run=dry_run), recorder


def seed(url: str, tenant_a: list[dt.date | None], tenant_b: list[dt.date | None]) -> None:
    rows = [(i, 1, d) for i, d in enumerate(tenant_a, 1)]
    rows += [(10_000 + i, 2, d) for i, d in enumerate(tenant_b, 1)]
    kidsapp.create(url, rows)


MISTYPED = {"kdv-a": {"settings": {"child_months": 1}}, "kdv-b": {}}


def test_a_mistyped_month_trips_the_breaker_and_changes_nothing(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """1 month on a table where 3,000 of 4,000 rows are older: the rule waits for approval
    with the figures that tripped it; the other customer's run goes on."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [OLD] * 5)
    before = kidsapp.rows_by_id(product_url)

    reports, seen = run(cfg, product_url, state)

    after = kidsapp.rows_by_id(product_url)
    assert {i for i in before if i > 10_000} & set(after) == set()  # kdv-b: 5 rows deleted
    assert {i: v for i, v in after.items() if v[0] == 1} == {
        i: v for i, v in before.items() if v[0] == 1
    }
    a = next(r for r in reports if r.customer == "kdv-a")
    assert [p.rule for p in a.awaiting] == [kidsapp.RULE]
    assert a.changed == 0
    (gated,) = seen.of(RuleGated)
    assert (gated.gate, gated.why, gated.eligible) == ("awaiting_approval", "breaker", 3_000)
    assert "3000 of 4000 rows (75%) exceed max_share 25%" in gated.reasons
    (waiting,) = ApprovalLedger(state).list()
    assert (waiting.customer, waiting.status, waiting.eligible) == ("kdv-a", "waiting", 3_000)
    assert waiting.figures["table_rows"] == 4_000
    assert [e.change for e in seen.of(ApprovalChanged)] == ["requested"]
    assert verify(state).ok

    # The next night asks nothing new: the waiting request is updated, not duplicated.
    run(cfg, product_url, state, now=NOW + dt.timedelta(days=1))
    (still,) = ApprovalLedger(state).list()
    assert (still.approval_id, still.requested_at) == (waiting.approval_id, waiting.requested_at)


def test_an_approval_lets_the_next_run_do_what_was_counted_once(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """After approve, the next run deletes exactly the counted rows and uses the approval up;
    a later large backlog asks again."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    (waiting,) = ApprovalLedger(state).list()
    ApprovalLedger(state).decide(
        waiting.approval_id, "approve", by="alice", reason="leavers", at=NOW
    )

    reports, seen = run(cfg, product_url, state)

    assert reports[0].changed == 3_000
    assert set(kidsapp.rows_by_id(product_url)) == set(range(3_001, 4_001))
    assert [e.change for e in seen.of(ApprovalChanged)] == ["used"]
    (used,) = ApprovalLedger(state).list(include_closed=True)
    assert used.status == "used"
    assert ApprovalLedger(state).list() == []
    assert verify(state).ok


def test_more_rows_than_approved_ask_again(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """An approval covers its count plus a tenth: finding far more supersedes it."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 2_000 + [RECENT] * 500, [])
    run(cfg, product_url, state)
    (first,) = ApprovalLedger(state).list()
    ApprovalLedger(state).decide(first.approval_id, "approve", by="alice", reason="ok", at=NOW)
    kidsapp.create(product_url, [(5_000 + i, 1, OLD) for i in range(1_000)])

    reports, _ = run(cfg, product_url, state)

    assert reports[0].changed == 0
    assert [p.why for p in reports[0].awaiting] == ["exceeds_approval"]
    statuses = {a.approval_id: a.status for a in ApprovalLedger(state).list(include_closed=True)}
    assert statuses[first.approval_id] == "superseded"
    (again,) = ApprovalLedger(state).list()
    assert again.approval_id != first.approval_id
    assert again.eligible == 3_000


def test_four_eyes_needs_a_second_different_approver(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """With four-eyes one approval is not enough; the same approver twice is refused."""
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(approval={"four_eyes": True}),
        customers=MISTYPED,
    )
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    ledger = ApprovalLedger(state)
    (waiting,) = ledger.list()
    assert waiting.approvers_needed == 2
    once = ledger.decide(waiting.approval_id, "approve", by="alice", reason="ok", at=NOW)
    assert once.status == "waiting"
    with pytest.raises(ApprovalError, match="second, different approver"):
        ledger.decide(waiting.approval_id, "approve", by="alice", reason="again", at=NOW)
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 0  # still one approver short
    twice = ledger.decide(waiting.approval_id, "approve", by="bob", reason="ok", at=NOW)
    assert twice.status == "approved"
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 3_000


def test_a_rejected_request_changes_nothing_and_cannot_be_approved(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """reject closes the request; the rows stay; deciding it again is refused."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    ledger = ApprovalLedger(state)
    (waiting,) = ledger.list()
    ledger.decide(waiting.approval_id, "reject", by="carol", reason="typo: 1 month", at=NOW)
    with pytest.raises(ApprovalError, match="rejected, not waiting"):
        ledger.decide(waiting.approval_id, "approve", by="dave", reason="ok", at=NOW)
    assert len(kidsapp.rows_by_id(product_url)) == 4_000


def test_an_approval_only_rule_is_counted_but_never_run_unapproved(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """`approval: required`: plan counts it; run leaves it waiting; approve lets one run do
    it; the next rows wait for a new approval."""
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(rules=[kidsapp.rule(approval="required")]),
    )
    seed(product_url, [OLD] * 3 + [RECENT], [OLD] * 2)
    planned, _ = run(cfg, product_url, state, dry_run=True)
    assert [(r.customer, r.rules[0].eligible, r.rules[0].gate) for r in planned] == [
        ("kdv-a", 3, "awaiting_approval"),
        ("kdv-b", 2, "awaiting_approval"),
    ]
    assert ApprovalLedger(state).list() == []  # a dry run asks nobody

    reports, _ = run(cfg, product_url, state)
    assert [r.changed for r in reports] == [0, 0]
    assert len(kidsapp.rows_by_id(product_url)) == 6
    requests = {a.customer: a for a in ApprovalLedger(state).list()}
    assert {c: a.why for c, a in requests.items()} == {"kdv-a": "flagged", "kdv-b": "flagged"}

    ApprovalLedger(state).decide(
        requests["kdv-a"].approval_id, "approve", by="alice", reason="audit log", at=NOW
    )
    reports, _ = run(cfg, product_url, state)
    assert [r.changed for r in reports] == [3, 0]
    assert set(kidsapp.rows_by_id(product_url)) == {4, 10_001, 10_002}

    kidsapp.create(product_url, [(50, 1, OLD)])
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 0  # a new approval is needed for new rows
    assert 50 in kidsapp.rows_by_id(product_url)


def place(state: StateStore, **scope: Any) -> str:
    fields: dict[str, Any] = {"product": None, "rule": None, "table": None, "key_hash": None}
    fields.update(scope)
    hold = HoldLedger(state).place(matter="M-1", reason="dossier", by="alice", at=NOW, **fields)
    return hold.hold_id


def test_holds_keep_a_pair_a_rule_or_one_record(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """A hold on a customer's product or rule keeps all its rows; a record hold keeps that
    record only; a released hold frees the rows at the next run."""
    cfg = config(tmp_path)
    seed(product_url, [OLD] * 4, [OLD] * 3)
    pair = place(state, customer="kdv-a", product=kidsapp.PRODUCT)
    rule = place(state, customer="kdv-b", product=kidsapp.PRODUCT, rule=kidsapp.RULE)

    reports, seen = run(cfg, product_url, state)

    assert [(r.changed, r.held) for r in reports] == [(0, 4), (0, 3)]
    assert {g.hold_ids for g in seen.of(RuleGated)} == {(pair,), (rule,)}
    ledger = HoldLedger(state)
    ledger.release(pair, by="bob", reason="closed", at=NOW)
    ledger.release(rule, by="bob", reason="closed", at=NOW)
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))
    place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)

    reports, seen = run(cfg, product_url, state)

    assert [(r.changed, r.held) for r in reports] == [(3, 1), (3, 0)]
    assert set(kidsapp.rows_by_id(product_url)) == {2}
    assert verify(state).ok


def test_a_hold_beats_an_approval(tmp_path: Path, product_url: str, state: StateStore) -> None:
    """An approved request does not move a held rule: the hold wins."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    (waiting,) = ApprovalLedger(state).list()
    ApprovalLedger(state).decide(waiting.approval_id, "approve", by="alice", reason="ok", at=NOW)
    place(state, customer="kdv-a")
    reports, _ = run(cfg, product_url, state)
    assert (reports[0].changed, reports[0].held) == (0, 3_000)
    assert ApprovalLedger(state).list()[0].status == "approved"  # kept for after the hold


def test_a_hold_placed_after_counting_is_honoured_by_the_next_batch(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """A record hold placed while the rule runs (after batch 1) keeps that record; the
    batch that would have taken it lists its hash as held (every backend)."""
    product_url = any_db_url
    cfg = config(tmp_path, product=kidsapp.mapping(batch_size=2))
    seed(product_url, [OLD] * 6, [])
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (4,))

    def hold_after_first_batch(event: Event) -> None:
        if getattr(event, "name", "") == "batch.applied" and getattr(event, "batch", 0) == 1:
            place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)

    reports, seen = run(cfg, product_url, state, customer="kdv-a", extra=[hold_after_first_batch])

    assert set(kidsapp.rows_by_id(product_url)) == {4}
    assert reports[0].changed == 5
    held = [e for e in seen.events if getattr(e, "name", "") == "batch.applied" and e.held]
    assert [e.held for e in held] == [(key,)]


def test_holds_need_a_complete_scope(state: StateStore) -> None:
    """A rule hold needs its product; a record hold its table and key; empty texts refused."""
    ledger = HoldLedger(state)
    common = {"matter": "M", "reason": "r", "by": "x", "at": NOW, "key_hash": None}
    with pytest.raises(HoldError, match="needs --product"):
        ledger.place(customer="c", product=None, rule="r", table=None, **common)
    with pytest.raises(HoldError, match="both --table and --key"):
        ledger.place(customer="c", product="p", rule=None, table="t", **common)
    with pytest.raises(HoldError, match="--reason is required"):
        ledger.place(customer="c", product=None, rule=None, table=None, **{**common, "reason": " "})
    hold = ledger.place(customer="c", product=None, rule=None, table=None, **common)
    ledger.release(hold.hold_id, by="y", reason="done", at=NOW)
    with pytest.raises(HoldError, match="already released"):
        ledger.release(hold.hold_id, by="z", reason="again", at=NOW)
    assert [h.hold_id for h in ledger.list(include_released=True)] == [hold.hold_id]
    assert ledger.list() == []


def test_normal_nights_never_trip_the_default_breaker(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """Twenty nights on a 40,000-row table, 800 to 1,800 rows expiring each night (history,
    share and cap all judged): no night waits for approval, and every expiring row goes."""
    cfg = config(tmp_path)
    period = Period(24, Unit.MONTHS)
    rows: list[tuple[int, int, dt.date | None]] = []
    nights = [NOW + dt.timedelta(days=n) for n in range(20)]
    for n, night in enumerate(nights):
        due = cutoff(night.date(), period) - dt.timedelta(days=1)  # eligible from night n
        start = len(rows) + 1
        rows += [(start + k, 1, due) for k in range(800 + (n * 377) % 1_000)]
    expiring = len(rows)
    rows += [(k, 1, None) for k in range(expiring + 1, 40_001)]  # still enrolled
    kidsapp.create(product_url, rows)

    for night in nights:
        reports, seen = run(cfg, product_url, state, now=night, customer="kdv-a")
        assert seen.of(RuleGated) == [], night
        assert reports[0].awaiting == []

    assert len(kidsapp.rows_by_id(product_url)) == 40_000 - expiring
    assert ApprovalLedger(state).list(include_closed=True) == []


TENANTS = {"kdv-a": 1, "kdv-b": 2}
STRANGER = 3  # a tenant value no customer claims


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from([1, 2, STRANGER]),
            st.one_of(st.none(), st.dates(dt.date(2018, 1, 1), dt.date(2026, 12, 31))),
        ),
        min_size=1,
        max_size=40,
    ),
    held=st.sets(st.integers(1, 40), max_size=8),
    pair_hold=st.sampled_from([None, "kdv-a", "kdv-b"]),
    months=st.sampled_from([1, 12, 24, 60]),
)
def test_no_held_row_no_other_tenant_no_row_inside_its_period_ever_changes(
    tmp_path_factory: pytest.TempPathFactory,
    any_db_url: str,
    data: list[tuple[int, dt.date | None]],
    held: set[int],
    pair_hold: str | None,
    months: int,
) -> None:
    """Random tenants, dates and holds: a run deletes exactly the unheld rows of configured
    tenants past their period, and nothing else."""
    folder = tmp_path_factory.mktemp("prop")
    url = any_db_url
    kidsapp.drop(url)
    store = StateStore(f"sqlite:///{folder / 'state.db'}")
    store.migrate()
    try:
        customers = {"kdv-a": {"settings": {"child_months": months}}, "kdv-b": {}}
        cfg = config(folder, customers=customers)
        kidsapp.create(url, [(i, t, d) for i, (t, d) in enumerate(data, 1)])
        for i in held:
            if i <= len(data):
                tenant = data[i - 1][0]
                owner = next((c for c, t in TENANTS.items() if t == tenant), "kdv-a")
                key = record_key_hash(PEPPER, owner, kidsapp.PRODUCT, "child", (i,))
                place(store, customer=owner, product=kidsapp.PRODUCT, table="child", key_hash=key)
        if pair_hold:
            place(store, customer=pair_hold)
        before = kidsapp.rows_by_id(url)
        run(cfg, url, store)
        after = kidsapp.rows_by_id(url)
    finally:
        store.close()
    today = NOW.astimezone(ZoneInfo("Europe/Amsterdam")).date()
    limits = {
        1: cutoff(today, Period(months, Unit.MONTHS)),
        2: cutoff(today, Period(24, Unit.MONTHS)),
    }
    for i, (tenant, left) in before.items():
        expired = tenant in limits and left is not None and left < limits[tenant]
        owner = next((c for c, t in TENANTS.items() if t == tenant), None)
        kept = i in held or owner == pair_hold or owner is None or not expired
        assert (i in after) == kept, (i, tenant, left, kept)


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


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


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


def test_the_demo_never_trips_the_default_breaker(tmp_path: Path) -> None:
    """The whole demo (seed, plan, run, verify) on the tests' copy of the configuration:
    no rule waits for approval with the default limits, and the demo exits 0."""
    lines: list[str] = []
    code = walkthrough(tmp_path / "demo", copy_config(tmp_path), reset=False, echo=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert "awaits approval" not in text and "wait for approval" not in text
    store = StateStore(f"sqlite:///{tmp_path / 'demo' / 'state.db'}")
    try:
        assert ApprovalLedger(store).list(include_closed=True) == []
    finally:
        store.close()


def test_a_hold_placed_inside_the_batch_is_honoured_by_its_own_transaction(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """A record hold lands after the batch's keys were chosen and before its change: the
    batch's own re-check, inside the transaction, keeps that record and names it."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(any_db_url, [(i, 1, OLD) for i in range(1, 6)])
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))
    bus = EventBus()
    subscribe_state(bus, state, lambda: NOW)
    seen = Recorder()
    bus.subscribe(seen)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: any_db_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    original = runner.gatekeeper.active_holds
    calls = {"n": 0}

    def late_hold(customer: str, product: str) -> Any:
        found = original(customer, product)
        calls["n"] += 1
        if calls["n"] == 2:  # the batch's keys were chosen on call 2; its guard comes next
            place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
        return found

    runner.gatekeeper.active_holds = late_hold  # type: ignore[method-assign]
    [report] = run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)

    assert report.changed == 4
    assert set(kidsapp.rows_by_id(any_db_url)) == {2}
    (applied,) = seen.of(BatchApplied)
    assert applied.held == (key,)
    (intent,) = seen.of(BatchIntent)
    assert key not in intent.key_hashes and len(intent.key_hashes) == 4
    assert verify(state).ok
