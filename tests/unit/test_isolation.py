"""Isolation inside a pair (worker/isolation.py): splitting a refused batch finds exactly its
blocked rows within the documented bound; a rule's own failure leaves the pair's other rules
running. On the in-memory connector, whose `apply` is made to refuse chosen keys the way a
database's foreign key does (every other row of such a batch is rolled back too)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import (
    AmbiguousCommit,
    Applied,
    ConnectorError,
    Key,
    LockTimeout,
    RowsRefused,
    SchemaError,
    StatementTimeout,
)
from connectors.memory import MemoryConnector
from tests.support import NOW
from tests.unit.test_run import VL, Fleet, invoices, pair, runner
from worker.events import BatchApplied, BatchBlocked, BatchIntent, Event, Outcome
from worker.isolation import LostCommits, isolate, rule_failure
from worker.keys import KeyHasher
from worker.report import format_changes

REFUSAL = "cannot delete rows of x: ForeignKeyViolation [SQLSTATE 23503]: constraint fk_pickup"


def database(blocked: set[int]) -> tuple[list[list[Key]], Any]:
    """An `attempt` that applies a part unless it holds a blocked key, and the parts applied."""
    applied: list[list[Key]] = []

    def attempt(part: Sequence[Key]) -> None:
        if any(k[0] in blocked for k in part):
            raise RowsRefused(REFUSAL)
        applied.append(list(part))

    return applied, attempt


def bound(n: int, b: int) -> int:
    return 2 * b * math.ceil(math.log2(n)) + 1 if n > 1 else 1


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_splitting_finds_exactly_the_blocked_rows_within_the_bound(n: int, data: Any) -> None:
    keys = [(i,) for i in range(n)]
    blocked = set(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=min(n, 8))))
    applied, attempt = database(blocked)
    found = isolate(keys, attempt, RowsRefused(REFUSAL))
    assert sorted(k[0] for k in found.blocked) == sorted(blocked)
    assert found.unresolved == []
    done = [k for part in applied for k in part]
    assert sorted(done) == [k for k in keys if k[0] not in blocked]  # each once, none blocked
    assert found.attempts <= bound(n, len(blocked))
    assert found.errors == [REFUSAL]


def test_a_batch_with_too_many_blocked_rows_stops_at_the_limit() -> None:
    """Every row refused: after `limit` rows singled out, the rest is reported unsplit."""
    keys = [(i,) for i in range(1000)]
    applied, attempt = database({k[0] for k in keys})
    found = isolate(keys, attempt, RowsRefused(REFUSAL), limit=4)
    assert [k[0] for k in found.blocked] == [0, 1, 2, 3]
    assert [k[0] for k in found.unresolved] == list(range(4, 1000))
    assert applied == []
    assert found.attempts <= bound(1000, 4)
    with pytest.raises(ValueError, match="at least 1"):
        isolate(keys, attempt, RowsRefused(REFUSAL), limit=0)


def test_other_errors_of_a_part_are_not_taken_for_blocked_rows() -> None:
    def attempt(part: Sequence[Key]) -> None:
        raise ConnectorError("permission denied for table x")

    with pytest.raises(ConnectorError, match="permission denied"):
        isolate([(1,), (2,)], attempt, RowsRefused(REFUSAL))


@pytest.mark.parametrize(
    ("error", "own"),
    [
        (SchemaError("table x does not exist"), True),
        (ConnectorError("cannot delete rows of x: RaiseException [SQLSTATE P0001]"), True),
        (RowsRefused(REFUSAL), True),
        (ConnectorError("connection lost", transient=True), False),
        (LockTimeout("lock timeout"), False),
        (StatementTimeout("statement timeout"), False),
        (AmbiguousCommit("lost", Applied()), False),
        (LostCommits("lost 4 times"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_which_errors_are_a_rules_own(error: BaseException, own: bool) -> None:
    assert rule_failure(error) is own


# --- on the runner -------------------------------------------------------------------------


def users(org: int, ids: range) -> list[dict[str, Any]]:
    """app_user rows that last logged in long ago (flexkids.user.inactive deletes them)."""
    return [
        {
            "id": i,
            "organisation_id": org,
            "full_name": "Synthetic Person",
            "email": f"user{i}@example.invalid",
            "phone": None,
            "password_hash": "x",
            "last_login_at": dt.datetime(2020, 1, 1),
        }
        for i in ids
    ]


def refusing(db: MemoryConnector, table: str, blocked: set[int]) -> list[Sequence[Key]]:
    """Make `db.apply` refuse (and roll back) any batch of `table` holding a blocked id."""
    original = db.apply
    calls: list[Sequence[Key]] = []

    def apply(target: Any, change: Any, keys: Sequence[Key], **kwargs: Any) -> Applied:
        calls.append(keys)
        if target.table.name == table and any(k[0] in blocked for k in keys):
            raise RowsRefused(f"cannot delete rows of {table}: {REFUSAL}")
        return original(target, change, keys, **kwargs)

    db.apply = apply  # type: ignore[method-assign]
    return calls


def test_a_blocked_row_leaves_the_others_and_the_later_rules_done() -> None:
    """flexkids.user.inactive: 20 expired users of org 2077, user 7 refused; batches of 8.
    The 19 others go, the later invoice rule runs, user 7 stays, reported by its key hash."""
    rows = {"app_user": users(2077, range(1, 21)) + users(1, range(21, 24))}
    fleet = Fleet({(VL, "flexkids"): {**rows, "invoice": invoices(2077, 3, 2, 100)}})
    events: list[Event] = []
    run = runner(fleet, events, batch_size=8)
    db = fleet(*pair(VL, "flexkids"))
    refusing(db, "app_user", {7})
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)

    assert report.outcome is Outcome.PARTIAL
    assert report.error is None
    assert sorted(r["id"] for r in db.tables["app_user"]) == [7, 21, 22, 23]  # org 1 untouched
    assert sorted(r["id"] for r in db.tables["invoice"]) == [103, 104]  # the later rule ran
    (blocked,) = [e for e in events if isinstance(e, BatchBlocked)]
    hasher = KeyHasher(run.pepper, VL, "flexkids", "app_user")
    assert (blocked.batch, blocked.key_hashes, blocked.unresolved) == (1, (hasher((7,)),), 0)
    assert blocked.errors and "SQLSTATE 23503" in blocked.errors[0]
    user = next(p for p in report.rules if p.rule == "flexkids.user.inactive")
    assert (user.blocked, user.changed) == (1, {"app_user": 19})
    # The trail names every other key once, in intents of numbered batches of their own.
    intents = [e for e in events if isinstance(e, BatchIntent) and e.table == "app_user"]
    announced = [h for e in intents for h in e.key_hashes]
    assert sorted(announced) == sorted(hasher((i,)) for i in range(1, 21) if i != 7)
    numbers = [e.batch for e in events if isinstance(e, BatchApplied) and e.table == "app_user"]
    assert len(numbers) == len(set(numbers)) and 1 not in numbers
    text = format_changes([report])
    assert "PARTIAL" in text and "1 blocked" in text
    assert "user7@" not in text


def test_a_failing_rule_does_not_stop_the_next_rule() -> None:
    """The user rule fails on every batch (a permission, a trigger): the pair fails, naming
    the rule, but the invoice rule after it still runs."""
    fleet = Fleet(
        {
            (VL, "flexkids"): {
                "app_user": users(2077, range(1, 4)),
                "invoice": invoices(2077, 3, 2, 1),
            }
        }
    )
    events: list[Event] = []
    run = runner(fleet, events)
    db = fleet(*pair(VL, "flexkids"))
    original = db.apply

    def apply(target: Any, *args: Any, **kwargs: Any) -> Applied:
        if target.table.name == "app_user":
            raise ConnectorError("cannot delete rows of app_user: InsufficientPrivilege")
        return original(target, *args, **kwargs)

    db.apply = apply  # type: ignore[method-assign]
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.FAILED
    assert report.error == (
        "rule flexkids.user.inactive: cannot delete rows of app_user: InsufficientPrivilege"
    )
    assert len(db.tables["app_user"]) == 3
    assert sorted(r["id"] for r in db.tables["invoice"]) == [4, 5]
    user = next(p for p in report.rules if p.rule == "flexkids.user.inactive")
    assert user.error is not None and user.changed == {}


def test_a_transient_error_left_after_the_retries_still_stops_the_pair() -> None:
    fleet = Fleet(
        {
            (VL, "flexkids"): {
                "app_user": users(2077, range(1, 4)),
                "invoice": invoices(2077, 3, 2, 1),
            }
        }
    )
    events: list[Event] = []
    run = runner(fleet, events)
    db = fleet(*pair(VL, "flexkids"))

    def apply(*_args: Any, **_kwargs: Any) -> Applied:
        raise ConnectorError("connection lost", transient=True)

    db.apply = apply  # type: ignore[method-assign]
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.FAILED
    assert len(db.tables["invoice"]) == 5  # nothing after the pair-wide failure
