"""`plan`'s foreseen blocked rows (connectors/sqlforesee.py) against what a run then does, in
cases tests/integration/test_plan_blocked.py does not cover: an anonymise rule whose masked
column another tenant's row references with ON UPDATE CASCADE (the run blocks that row), the
same when the referenced column already holds its anonymised form (only another masked
column changes: the run follows only values that change, so nothing is blocked and the plan
must not say so), and a recent row → expired row → expired row CASCADE chain through the
table's own key (the run blocks both expired rows, and so does the plan: connectors/
sqlforesee.py `spread`).

On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import sqlforesee
from connectors.anonymise import mask_value
from connectors.model import ColumnMask, Mask
from tests import kidsapp
from tests.gate_support import OLD, RECENT
from tests.integration.test_plan_blocked import children, plan_and_run
from tests.rawsql import execute, ids
from tests.support import PEPPER
from worker.events import Outcome
from worker.state import StateStore


def named(url: str, first: str) -> None:
    """Tenant 1's children 1 (named `first`) and 2 expired, 3 recent; names unique, and
    tenant 2's memo referencing child 1's name with ON UPDATE CASCADE."""
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(80), health VARCHAR(40), left_on DATE, CONSTRAINT child_name UNIQUE (name))",
        (
            "INSERT INTO child VALUES (:i, 1, :n, 'pinda', :d)",
            [
                {"i": 1, "n": first, "d": OLD},
                {"i": 2, "n": "Kind2", "d": OLD},
                {"i": 3, "n": "Kind3", "d": RECENT},
            ],
        ),
        "CREATE TABLE memo (id INTEGER PRIMARY KEY, tenant_id INTEGER, child_name VARCHAR(80), "
        "CONSTRAINT memo_name FOREIGN KEY (child_name) REFERENCES child (name) "
        "ON UPDATE CASCADE)",
        ("INSERT INTO memo VALUES (1, 2, :n)", [{"n": first}]),
    )


def masking(tmp_path: Path, url: str, state: StateStore) -> tuple[int, int, dict[str, int]]:
    """Plan, then run, the rule anonymising name (keyed_hash) and health (null): the plan's
    would_block, the run's blocked rows and the rows per table it changed."""
    rule = kidsapp.rule(action="anonymise", **{"with": {"name": "keyed_hash", "health": "null"}})
    product = kidsapp.mapping(rules=[rule])
    planned, _, done, blocked, applied = plan_and_run(tmp_path, url, state, product)
    [plan] = planned.rules
    assert plan.would_change == applied
    assert done.outcome is (Outcome.PARTIAL if blocked else Outcome.SUCCEEDED)
    return plan.would_block, blocked, applied


def test_another_tenants_row_an_on_update_key_reaches_is_foreseen_blocked(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    named(any_db_url, "Kind1")
    assert masking(tmp_path, any_db_url, state) == (1, 1, {"child": 1})


def test_a_referenced_column_already_anonymised_is_not_foreseen_blocked(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Child 1's name is already its keyed hash (only health changes): the run changes
    neither that name nor the memo, and blocks nothing. Before, the plan said at least 1
    would be blocked and 1 child would change."""
    named(any_db_url, mask_value(ColumnMask("name", Mask.KEYED_HASH), "Kind1", PEPPER))
    assert masking(tmp_path, any_db_url, state) == (0, 0, {"child": 2})


def test_a_chain_recent_to_expired_to_expired_blocks_both(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Recent child 3 → expired child 2 → expired child 1 (CASCADE); child 4 is alone. The
    run blocks 1 and 2 (deleting 1 reaches 2, which stays) and deletes 4; so does the plan.
    (Before, it walked one step: 1 blocked, and 1 counted as going.)"""
    children(any_db_url, {1: ("old", None), 2: ("old", 1), 3: ("recent", 2), 4: ("old", None)})
    planned, _, _, blocked, applied = plan_and_run(tmp_path, any_db_url, state)
    [plan] = planned.rules
    assert (blocked, applied, ids(any_db_url, "child")) == (2, {"child": 1}, {1, 2, 3})
    assert plan.would_block == blocked
    assert plan.would_change == applied


@pytest.mark.parametrize(
    ("rows", "stays"),
    [
        # recent 6 → 5 → 4 → 3 → 2 → 1 (all expired) and a lone expired 7: five blocked
        (
            {
                6: ("recent", 5),
                **{i: ("old", i - 1 or None) for i in range(1, 6)},
                7: ("old", None),
            },
            5,
        ),
        # a fork: recent 3 → 2 → 1 and expired 4 → 1 (nothing points at 4): 1 and 2 blocked
        ({1: ("old", None), 2: ("old", 1), 3: ("recent", 2), 4: ("old", 1)}, 2),
    ],
    ids=["long-chain", "fork"],
)
def test_the_plan_blocks_what_a_chain_blocks(
    tmp_path: Path,
    any_db_url: str,
    state: StateStore,
    rows: dict[int, tuple[str, int | None]],
    stays: int,
) -> None:
    """Every expired row whose delete reaches, along the chain, a row that stays is blocked by
    the run (one batch here), and the plan says the same and counts only the rest as going."""
    children(any_db_url, rows)
    planned, text, _, blocked, applied = plan_and_run(tmp_path, any_db_url, state)
    [plan] = planned.rules
    old = sum(d == "old" for d, _ in rows.values())
    assert blocked == stays and applied == {"child": old - stays}
    assert (plan.would_block, plan.would_change) == (stays, applied)
    # The rows farther along are named under their own reason (keys and tables only).
    assert "a blocked row of child it reaches through child(sibling_id)" in text


def test_a_chain_longer_than_the_walk_keeps_what_it_found(
    tmp_path: Path, any_db_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain longer than `sqlforesee.SPREAD_LIMIT` (3 here): the plan keeps the 3 rows it
    found blocked (each surely is; the figure stays a lower bound, "at least"), not the one
    step it started from; the run blocks the whole chain of 6."""
    monkeypatch.setattr(sqlforesee, "SPREAD_LIMIT", 3)
    children(any_db_url, {7: ("recent", 6), **{i: ("old", i - 1 or None) for i in range(1, 7)}})
    planned, _, _, blocked, applied = plan_and_run(tmp_path, any_db_url, state)
    [plan] = planned.rules
    assert (blocked, applied) == (6, {})
    assert plan.would_block == 3
    assert plan.would_change == {"child": 3}  # an upper bound of what goes: 0 does
