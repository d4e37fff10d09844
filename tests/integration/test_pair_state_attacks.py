"""Attacks on the one read of a pair's state at a run's start (worker/pairstate.py), on
SQLite and PostgreSQL state databases: holds of every scope placed just after it (with and
without earlier work to settle in between), approvals decided just after it, and a state
database that fails it.

A hold placed while the run settles a crashed run's work (which reads the product database
and may take long) must bind the run's gate as it did when the holds were read after
settling; one placed after the read of an idle pair binds the batches (their guard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import MISTYPED, OLD, RECENT, config, place, run, seed
from tests.support import NOW, PEPPER
from worker.approvals import ApprovalLedger
from worker.events import RuleGated
from worker.holds import HoldLedger
from worker.keys import record_key_hash
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.state.models import runs

SCOPES = {
    "customer-wide": {"customer": "kdv-a"},
    "product": {"customer": "kdv-a", "product": kidsapp.PRODUCT},
    "rule": {"customer": "kdv-a", "product": kidsapp.PRODUCT, "rule": kidsapp.RULE},
}


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url, retry=RetryPolicy(sleep=lambda _s: None))
    try:
        yield found
    finally:
        found.close()


def _pair_read(statement: str) -> bool:
    """The first read of a run's pair: the one read of all three (or, before it, the read
    for unsettled work, which came first too)."""
    return "FROM open_batches" in statement and "JOIN audit_events" not in statement


def _settle_read(statement: str) -> bool:
    """Settling's read of the open batches (only when there is open work)."""
    return "FROM open_batches" in statement and "JOIN audit_events" in statement


@contextmanager
def after_statement(
    store: StateStore, which: Callable[[str], bool], act: Callable[[], object]
) -> Iterator[list[bool]]:
    """Call `act()` once, right after the first statement on the state database that
    `which` picks; yields a list that holds True once it acted."""
    done: list[bool] = []

    def seen(*args: Any) -> None:
        if not done and which(str(args[2])):
            done.append(True)
            act()

    engine = store._engine
    sa.event.listen(engine, "after_cursor_execute", seen)
    try:
        yield done
    finally:
        sa.event.remove(engine, "after_cursor_execute", seen)


def crashed_run(store: StateStore) -> None:
    """A run of kdv-a × kidsapp left without an outcome by a process long gone."""
    store.write(
        "seeding a crashed run",
        lambda conn: conn.execute(
            runs.insert().values(
                run_id="crashed-1",
                customer="kdv-a",
                product=kidsapp.PRODUCT,
                started_at=NOW - dt.timedelta(days=2),
                outcome=None,
                dry_run=False,
                rows_changed=0,
            )
        ),
    )


def _closed(store: StateStore) -> str | None:
    return store.read(
        "reading the crashed run",
        lambda c: c.execute(sa.select(runs.c.outcome).where(runs.c.run_id == "crashed-1")).scalar(),
    )


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_a_hold_placed_while_settling_binds_the_gate_and_asks_no_approval(
    tmp_path: Path, product_url: str, store: StateStore, scope: str
) -> None:
    """A crashed run's work is settled first; a hold placed meanwhile is in force when the
    rule is gated: the breaking rule is held, not sent for approval (as when the holds
    were read after settling)."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    crashed_run(store)
    placed: list[str] = []

    def hold() -> None:
        placed.append(place(store, **SCOPES[scope]))

    with after_statement(store, _settle_read, hold) as done:
        reports, seen = run(cfg, product_url, store, customer="kdv-a")

    assert done and _closed(store) == "crashed"
    assert (reports[0].changed, reports[0].held) == (0, 3_000)
    assert [(g.gate, g.hold_ids) for g in seen.of(RuleGated)] == [("held", tuple(placed))]
    assert ApprovalLedger(store).list(include_closed=True) == []  # nobody asked to approve


def test_a_record_hold_placed_while_settling_is_counted_as_held(
    tmp_path: Path, product_url: str, store: StateStore
) -> None:
    """A record hold placed while settling keeps its row and is counted as held by the
    rule's plan (the gate's eligible rows leave it out)."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(product_url, [(i, 1, OLD) for i in range(1, 6)])
    crashed_run(store)
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (3,))

    def hold() -> None:
        place(store, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)

    with after_statement(store, _settle_read, hold) as done:
        reports, _ = run(cfg, product_url, store, customer="kdv-a")

    assert done
    assert set(kidsapp.rows_by_id(product_url)) == {3}
    assert (reports[0].changed, reports[0].held) == (4, 1)


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_a_hold_placed_just_after_the_read_of_an_idle_pair_keeps_every_row(
    tmp_path: Path, any_db_url: str, store: StateStore, scope: str
) -> None:
    """Nothing to settle: a hold placed right after the one read is missed by the gate
    (as one placed right after the full read was) but the batches obey it: no row changes,
    the rule ends held (every product database kind)."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(any_db_url, [(i, 1, OLD) for i in range(1, 6)])

    with after_statement(store, _pair_read, lambda: place(store, **SCOPES[scope])) as done:
        reports, seen = run(cfg, any_db_url, store, customer="kdv-a")

    assert done
    assert set(kidsapp.rows_by_id(any_db_url)) == set(range(1, 6))
    assert reports[0].changed == 0
    assert [g.gate for g in seen.of(RuleGated)] == ["held"]


def test_a_record_hold_placed_just_after_the_read_keeps_its_row(
    tmp_path: Path, any_db_url: str, store: StateStore
) -> None:
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(any_db_url, [(i, 1, OLD) for i in range(1, 6)])
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))

    def hold() -> None:
        place(store, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)

    with after_statement(store, _pair_read, hold) as done:
        reports, _ = run(cfg, any_db_url, store, customer="kdv-a")

    assert done
    assert set(kidsapp.rows_by_id(any_db_url)) == {2}
    assert reports[0].changed == 4


def test_a_hold_released_just_after_the_read_frees_the_rows(
    tmp_path: Path, product_url: str, store: StateStore
) -> None:
    """The read said held; the full read a moment later finds it released: the run goes on."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(product_url, [(i, 1, OLD) for i in range(1, 4)])
    hold_id = place(store, customer="kdv-a")

    def release() -> None:
        HoldLedger(store).release(hold_id, by="bob", reason="closed", at=NOW)

    with after_statement(store, _pair_read, release) as done:
        reports, _ = run(cfg, product_url, store, customer="kdv-a")

    assert done and reports[0].changed == 3


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_an_approval_decided_just_after_the_read_is_used_or_not(
    tmp_path: Path, product_url: str, store: StateStore, decision: str
) -> None:
    """A waiting request approved right after the read is used by this run; rejected, it
    changes nothing and no new request replaces it in this run."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, store)
    (waiting,) = ApprovalLedger(store).list()

    def decide() -> None:
        ApprovalLedger(store).decide(waiting.approval_id, decision, by="alice", reason="ok", at=NOW)

    with after_statement(store, _pair_read, decide) as done:
        reports, _ = run(cfg, product_url, store, customer="kdv-a")

    assert done
    statuses = [a.status for a in ApprovalLedger(store).list(include_closed=True)]
    if decision == "approve":
        assert reports[0].changed == 3_000 and statuses == ["used"]
    else:
        assert reports[0].changed == 0
        assert sorted(statuses) == ["rejected", "waiting"]


def test_an_approved_request_shows_in_a_dry_run(
    tmp_path: Path, product_url: str, store: StateStore
) -> None:
    """The plan shows what the approved request lets the run change, and leaves it open."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, store)
    (waiting,) = ApprovalLedger(store).list()
    ApprovalLedger(store).decide(waiting.approval_id, "approve", by="alice", reason="ok", at=NOW)

    planned, _ = run(cfg, product_url, store, dry_run=True, customer="kdv-a")

    assert planned[0].rules[0].gate == "approved"
    assert planned[0].would_change == {"child": 3_000}
    assert [a.status for a in ApprovalLedger(store).list()] == ["approved"]


def _failing(store: StateStore, times: int) -> Callable[..., None]:
    left = [times]

    def fail(*args: Any) -> None:
        if left[0] and "FROM holds" in str(args[2]) and "FROM approvals" in str(args[2]):
            left[0] -= 1
            raise sa.exc.OperationalError(str(args[2]), {}, Exception("connection lost"))

    return fail


@pytest.mark.parametrize(("times", "fails"), [(1, False), (10_000, True)])
def test_a_failing_read_is_retried_then_fails_the_run(
    tmp_path: Path, product_url: str, store: StateStore, times: int, fails: bool
) -> None:
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(product_url, [(i, 1, OLD) for i in range(1, 4)])
    place(store, customer="kdv-a", product=kidsapp.PRODUCT, rule=kidsapp.RULE)
    store._retry = RetryPolicy(budget_seconds=1.0, sleep=lambda _s: None, max_attempts=3)
    fail = _failing(store, times)
    sa.event.listen(store._engine, "before_cursor_execute", fail)
    try:
        reports, _ = run(cfg, product_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", fail)
    assert set(kidsapp.rows_by_id(product_url)) == {1, 2, 3}
    if fails:
        assert reports[0].outcome == "failed" and "state" in (reports[0].error or "")
    else:
        assert reports[0].outcome == "partial" or reports[0].held == 3
