"""A run counts every rule's backlog in one go (connectors.sqlcount) and trusts that count
only while nothing in the run has changed a row: after an earlier rule's batches, a rule is
counted again, so its eligible rows are never a stale figure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from connectors.base import Backlog, Target
from connectors.memory import MemoryConnector
from tests.support import NOW
from tests.unit.test_run import PEPPER, VL, empty_tables, invoices, pair, runner
from worker.config import Customer, ProductMapping
from worker.events import Event, Outcome, RuleEvaluated

RULES = [
    "flexkids.user.inactive",
    "flexkids.parent.relation-ended",
    "flexkids.child.deregistered.health",
    "flexkids.child.deregistered.remove",
    "flexkids.invoice.fiscal",
    "flexkids.staff.employment-ended",
]


class Counting(MemoryConnector):
    """The memory connector, counting several targets at once like the SQL one, with a log
    of what was counted how."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(tables, pepper=PEPPER)
        self.grouped: list[list[str]] = []
        self.single: list[str] = []

    def backlogs(self, targets: Sequence[Target]) -> list[Backlog]:
        self.grouped.append([t.table.name for t in targets])
        return [super(Counting, self).backlog(t) for t in targets]

    def backlog(self, target: Target) -> Backlog:
        self.single.append(target.table.name)
        return super().backlog(target)


def _fleet(db: Counting) -> Any:
    def connect(_customer: Customer, _mapping: ProductMapping) -> Counting:
        return db

    return connect


def _eligible(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.rule, e.eligible) for e in events if isinstance(e, RuleEvaluated)]


def test_an_idle_run_counts_every_rule_in_one_go() -> None:
    db = Counting(empty_tables() | {"invoice": invoices(2077, 0, 3, 1)})
    events: list[Event] = []
    report = runner(_fleet(db), events).run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.SUCCEEDED
    assert len(db.grouped) == 1 and len(db.grouped[0]) == len(RULES)
    assert db.single == []
    assert _eligible(events) == [(rule, 0) for rule in RULES]


def test_a_rule_after_changed_rows_is_counted_again() -> None:
    """The first rule deletes a user; meanwhile two expired invoices appear (another session).
    The invoice rule, counted again after that, sees and deletes them; the count taken with
    every rule before (none expired) is not used."""
    old_login = dt.datetime(2020, 1, 1, 12, 0)
    user = {
        "id": 1,
        "organisation_id": 2077,
        "full_name": "A",
        "email": "a@example.test",
        "phone": None,
        "password_hash": "x",
        "last_login_at": old_login,
    }
    db = Counting(empty_tables() | {"app_user": [user], "invoice": invoices(2077, 0, 1, 1)})
    original = db.apply

    def apply_and_insert(*args: Any, **kwargs: Any) -> Any:
        done = original(*args, **kwargs)
        if args[0].table.name == "app_user":
            db.tables["invoice"].extend(invoices(2077, 2, 0, 100))
        return done

    db.apply = apply_and_insert  # type: ignore[method-assign]
    events: list[Event] = []
    report = runner(_fleet(db), events).run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert [(p.rule, p.eligible, dict(p.changed)) for p in report.rules] == [
        ("flexkids.user.inactive", 1, {"app_user": 1}),
        ("flexkids.parent.relation-ended", 0, {}),
        ("flexkids.child.deregistered.health", 0, {}),
        ("flexkids.child.deregistered.remove", 0, {}),
        ("flexkids.invoice.fiscal", 2, {"invoice": 2}),
        ("flexkids.staff.employment-ended", 0, {}),
    ]
    assert [r["id"] for r in db.tables["invoice"]] == [1]
    assert len(db.grouped) == 1
    # Every rule after the user rule counted again; none after its own batches, which
    # emptied their selections with nothing skipped (nothing is left: worker/batches.py).
    assert db.single == ["parent", "child", "child", "invoice", "staff"]
