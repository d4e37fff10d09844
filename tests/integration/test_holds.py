"""Legal holds on real databases: scopes, precedence over approvals, holds placed during a
run, and a property test: no held row, no other tenant's row, no row inside its period, and
the backlog a run leaves is the one it publishes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import kidsapp
from tests.gate_support import (
    MISTYPED,
    OLD,
    RECENT,
    config,
    place,
    run,
    run_with_late_hold,
    seed,
)
from tests.support import NOW, PEPPER
from worker.approvals import ApprovalLedger
from worker.events import (
    BatchApplied,
    BatchIntent,
    Event,
    RuleEvaluated,
    RuleGated,
)
from worker.holds import HoldError, HoldLedger
from worker.keys import record_key_hash
from worker.periods import Period, Unit, cutoff
from worker.state import StateStore
from worker.verify import verify


def test_holds_keep_a_pair_a_rule_or_one_record(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """A hold on a customer's product or rule keeps all its rows; a record hold keeps that
    record only; a released hold frees the rows at the next run."""
    cfg = config(tmp_path)
    seed(product_url, [OLD] * 4, [OLD] * 3)
    pair = place(state, customer="kdv-a", product=kidsapp.PRODUCT)
    rule = place(state, customer="kdv-b", product=kidsapp.PRODUCT, rule=kidsapp.RULE)

    planned, _ = run(cfg, product_url, state, dry_run=True)
    assert [(r.would_change, r.held) for r in planned] == [({}, 4), ({}, 3)]
    reports, seen = run(cfg, product_url, state)

    assert [(r.changed, r.held) for r in reports] == [(0, 4), (0, 3)]
    assert {g.hold_ids for g in seen.of(RuleGated)} == {(pair,), (rule,)}
    ledger = HoldLedger(state)
    ledger.release(pair, by="bob", reason="closed", at=NOW)
    ledger.release(rule, by="bob", reason="closed", at=NOW)
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))
    place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
    planned, _ = run(cfg, product_url, state, dry_run=True)
    assert [r.would_change for r in planned] == [{"child": 3}, {"child": 3}]  # the plan

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


def test_a_hold_placed_inside_the_batch_is_honoured_by_its_own_transaction(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """A record hold lands after the batch's keys were chosen and before its change: the
    batch's own re-check, inside the transaction, keeps that record and names it."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(any_db_url, [(i, 1, OLD) for i in range(1, 6)])
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))
    report, seen, placed = run_with_late_hold(cfg, any_db_url, state, key)

    assert placed
    assert report.changed == 4
    assert set(kidsapp.rows_by_id(any_db_url)) == {2}
    (applied,) = seen.of(BatchApplied)
    assert applied.held == (key,)
    (intent,) = seen.of(BatchIntent)
    assert key not in intent.key_hashes and len(intent.key_hashes) == 4
    assert verify(state).ok


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
        _, seen = run(cfg, url, store)
        after = kidsapp.rows_by_id(url)
        planned, _ = run(cfg, url, store, dry_run=True)
    finally:
        store.close()
    # The backlog each run publishes last (what the eligible and lag gauges keep) is what a
    # plan counts right after it: held rows and all (the run counts again only when its
    # batches skipped some row; otherwise it knows nothing is left).
    published = {(e.customer, e.rule): (e.eligible, e.lag_seconds) for e in seen.of(RuleEvaluated)}
    counted = {(r.customer, p.rule): (p.eligible, p.lag_seconds) for r in planned for p in r.rules}
    assert published == counted
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
