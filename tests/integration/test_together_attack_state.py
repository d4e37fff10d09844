"""Customers asked together (worker/together.py) beside what the state database holds, on
PostgreSQL: legal holds on a pair, a rule and a record (of a due row and of a row inside
its period), approvals waiting and approved (an approved cutoff moves the rule's target),
open batches of a crashed run (settled first, rows gone or still there), and a pair
another process holds, which `run --once` asks for again later. Two ticks (the second a
day later) together must decide, change and publish as the same two ticks alone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.engines import Engines
from tests.integration import together_support as ts
from tests.integration.test_borrowed_schema_check import Clock
from tests.support import NOW, PEPPER, snapshot
from worker import app
from worker.approvals import ApprovalLedger
from worker.audit import AuditTrail
from worker.events import BatchIntent, Outcome, PairSkipped, RunStarted
from worker.holds import HoldLedger
from worker.keys import record_key_hash
from worker.leases import Leases
from worker.leaseticks import pair_tick
from worker.state import StateStore

pytestmark = pytest.mark.postgres

RULES = """\
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on, seen: seen_on}
  visit:
    kind: child
    table: visit
    key: [id]
    columns: {note: name}
    dates: {at: seen_on}
rules:
  - id: kids.child.left
    subject: child
    after:
      date: left
      period: {setting: months, default: 12, unit: months}
    action: delete
  - id: kids.child.seen
    subject: child
    after: {date: seen, period: 6m}
    action: anonymise
    with: {name: "null"}
  - id: kids.visit.old
    subject: visit
    after: {date: at, period: 6m}
    action: delete
    approval: required
"""
TENANTS = range(1, 11)
OLD, RECENT = dt.date(2019, 1, 1), dt.date(2026, 11, 1)
# Customer → rows (id, left_on, seen_on); every customer also has a recent row. A row is
# deleted only when past the anonymise rule's cutoff too (they overlap): seen_on OLD.
ROWS: dict[int, list[tuple[int, dt.date | None, dt.date | None]]] = {
    1: [(101, OLD, OLD), (102, OLD, OLD)],  # a record hold on 101
    2: [(201, OLD, OLD)],  # a hold on the pair
    3: [(301, OLD, OLD)],  # a hold on the delete rule
    4: [],  # a hold on the pair, nothing due
    5: [(501, RECENT, OLD)],  # a record hold on 502 (inside its period); a visit
    6: [(601, OLD, OLD)],  # an open batch of a crashed run: its row already gone
    7: [(701, OLD, OLD)],  # an open batch of a crashed run: its row still there
    8: [],  # held by another process when the tick starts: idle
    9: [(901, RECENT, OLD)],  # a visit, approved before the second tick
    10: [(1001, OLD, OLD)],  # held by another process when the tick starts: due
}
HELD = {"c08", "c10"}
GONE = {601}  # deleted by the crashed run before it died


def _rows() -> list[dict[str, Any]]:
    found = []
    for t in TENANTS:
        found.append({"id": t, "org": t, "left_on": RECENT, "seen_on": RECENT})
        for i, left, seen in ROWS[t]:
            if i not in GONE:
                found.append({"id": i, "org": t, "left_on": left, "seen_on": seen})
    found.append({"id": 502, "org": 5, "left_on": RECENT, "seen_on": RECENT})
    return found


def _seed(url: str) -> None:
    ts.execute(
        url,
        "DROP TABLE IF EXISTS child",
        "DROP TABLE IF EXISTS visit",
        "CREATE TABLE visit (id integer PRIMARY KEY, org integer NOT NULL, note text, "
        "seen_on date)",
        "INSERT INTO visit (id, org, seen_on) VALUES (5, 5, '2019-01-01'), (6, 9, '2019-01-01'),"
        " (7, 9, '2026-11-20'), (8, 4, '2019-01-01')",
        "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
        "name varchar(50) DEFAULT 'x', left_on date, seen_on date)",
        "INSERT INTO child (id, org, left_on, seen_on) VALUES (:id, :org, :left_on, :seen_on)",
        params=_rows(),
    )


def _key(customer: str, row: int) -> str:
    return record_key_hash(PEPPER, customer, "kids", "child", (row,))


def _prepare(store: StateStore) -> None:
    """The holds and the crashed run's open batches, before the first tick."""
    ledger = HoldLedger(store)

    def hold(customer: str, **scope: Any) -> None:
        fields = {"product": "kids", "rule": None, "table": None, "key_hash": None} | scope
        ledger.place(customer=customer, matter="M", reason="r", by="alice", at=NOW, **fields)

    hold("c01", table="child", key_hash=_key("c01", 101))
    hold("c02")
    hold("c03", rule="kids.child.left")
    hold("c04")
    hold("c05", table="child", key_hash=_key("c05", 502))
    trail = AuditTrail(store, lambda: NOW)
    for customer, row in (("c06", 601), ("c07", 701)):
        run_id = uuid.uuid4().hex
        trail(RunStarted(run_id, customer, "kids", NOW, policy="p", as_of=NOW))
        trail(
            BatchIntent(
                run_id,
                customer,
                "kids",
                "kids.child.left",
                "delete",
                "child",
                1,
                (_key(customer, row),),
                dt.date(2025, 11, 28),
                {"child": 1},
            )
        )


class OtherProcess(ts.Recorder):
    """Another process holds the leases of c08 and c10 when the tick starts; it lets go of
    each when this process has skipped it (it is asked for again after every other pair:
    `run --once` waits for it)."""

    def __init__(self, store: StateStore, config: Any, later: Callable[[], None] = list) -> None:
        super().__init__()
        self.later = later  # called as each lease ends (time passes meanwhile)
        self.leases = {}
        for customer, mapping in config.pairs():
            if customer.customer in HELD:
                tick = pair_tick(customer, mapping, NOW)
                other = Leases(store, 60, holder="elsewhere|1")
                self.leases[customer.customer] = other.take(customer.customer, "kids", tick)

    def __call__(self, event: Any) -> None:
        super().__call__(event)
        lease = self.leases.pop(getattr(event, "customer", ""), None)
        if isinstance(event, PairSkipped) and lease is not None:
            lease.end(done=False)
            self.later()


def _two_ticks(tmp_path: Path, url: str, config: Any, label: str, reuse: float) -> Any:
    _seed(url)
    store = StateStore(f"sqlite:///{tmp_path / f'{label}.db'}")
    store.migrate()
    try:
        _prepare(store)
        recorder = OtherProcess(store, config)
        first = ts.tick(config, {ts.ENV: url}, store, reuse=reuse, recorder=recorder, wait=True)
        assert not recorder.leases  # both were skipped, then run
        rows_first = snapshot(url)
        for approval in ApprovalLedger(store).list():
            if approval.customer == "c09":
                ApprovalLedger(store).decide(
                    approval.approval_id, "approve", by="bob", reason="ok", at=NOW
                )
        later = NOW + dt.timedelta(days=1)
        second = ts.tick(config, {ts.ENV: url}, store, reuse=reuse, recorder=recorder, now=later)
        waiting = sorted(
            (a.customer, a.rule, a.status, a.eligible) for a in ApprovalLedger(store).list()
        )
    finally:
        store.close()
    return (
        ts.figures(first),
        ts.figures(second),
        rows_first,
        snapshot(url),
        recorder.trail(),
        waiting,
    )


def test_holds_approvals_open_batches_and_held_pairs_decide_as_alone(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "_due", lambda _runner, _wait: 0.0)  # ask again at once
    customers = {f"c{t:02d}": ts.customer_text(str(t)) for t in TENANTS}
    config = ts.config_of(tmp_path / "config", RULES, customers)
    with ts.statements(pg_url) as seen:
        together = _two_ticks(tmp_path, pg_url, config, "together", ts.REUSE)
    assert sum(ts.JOINT in s for s in seen) >= 1
    alone = _two_ticks(tmp_path, pg_url, config, "alone", 0.0)
    for mine, theirs in zip(together, alone, strict=True):
        assert mine == theirs
    assert together[0]["c10/kids"][2][0][4] == {"child": 1}  # run after its holder let go
    assert together[0]["c08/kids"][0] is Outcome.SUCCEEDED


def test_held_pairs_asked_for_again_after_their_answers_went_stale_do_not_take_them(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other process holds c08 and c10 longer than RETENTION_SCHEMA_REUSE_SECONDS (by
    the engines' clock): their answers from the first joint statement are not taken when
    they run at last (they count themselves), and the tick still decides as alone."""
    monkeypatch.setattr(app, "_due", lambda _runner, _wait: 0.0)
    customers = {f"c{t:02d}": ts.customer_text(str(t)) for t in TENANTS}
    config = ts.config_of(tmp_path / "config", RULES, customers)
    clock = Clock()
    found = {}
    for label, reuse in (("together", ts.REUSE), ("alone", 0.0)):
        _seed(pg_url)
        store = StateStore(f"sqlite:///{tmp_path / f'{label}.db'}")
        store.migrate()

        def later() -> None:
            clock.now += ts.REUSE + 1

        try:
            _prepare(store)
            recorder = OtherProcess(store, config, later)
            with ts.statements(pg_url) as seen:
                reports = ts.tick(
                    config,
                    {ts.ENV: pg_url},
                    store,
                    reuse=reuse,
                    recorder=recorder,
                    wait=True,
                    engines=Engines(clock=clock),
                )
        finally:
            store.close()
        found[label] = (ts.figures(reports), snapshot(pg_url), recorder.trail())
        joint = [s for s in seen if ts.JOINT in s]
        # Together: c01's only. It found most of its 8 customers due, so nobody is asked
        # along for a while (worker/together.py PAUSE): c09, and c08 and c10 when their
        # holder let go (their answers stale by then, not taken), count themselves.
        assert len(joint) == (1 if label == "together" else 0)
    assert found["together"] == found["alone"]
