"""`plan` foresees the eligible rows a run would block (connectors/sqlforesee.py): rows whose
delete the ON DELETE checks refuse (a recent child pointing at an expired one through the
table's own CASCADE key, another tenant's row a cascade reaches, a key from another
PostgreSQL schema). It names the keys and tables, leaves those rows out of what would
change, and the run then blocks exactly those rows and changes what the plan said. Before,
`plan` said every eligible row would go, and the run blocked some of them.

On SQLite, PostgreSQL and MariaDB (the other schema on PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import kidsapp
from tests.gate_support import NOW, OLD, RECENT, config, run
from tests.integration.test_keys_other_schema import memo
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.plandoc import plan_document
from worker.report import format_plan
from worker.runreport import RunReport
from worker.state import StateStore

CHILD = (
    "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
    "name VARCHAR(40), health VARCHAR(40), left_on DATE, sibling_id INTEGER, "
    "FOREIGN KEY (sibling_id) REFERENCES child (id) ON DELETE CASCADE)"
)


def children(url: str, rows: dict[int, tuple[str, int | None]]) -> None:
    """Tenant 1's children, id: (OLD or RECENT, sibling_id)."""
    execute(
        url,
        CHILD,
        (
            "INSERT INTO child VALUES (:i, 1, 'Kind', 'pinda', :d, :s)",
            [
                {"i": i, "d": OLD if d == "old" else RECENT, "s": s}
                for i, (d, s) in sorted(rows.items())
            ],
        ),
    )


def plan_and_run(
    tmp_path: Path, url: str, state: StateStore, product: dict[str, Any] | None = None
) -> tuple[RunReport, str, RunReport, int, dict[str, int]]:
    """The plan's report and its text, then the run's report, its blocked rows and the rows
    per table its batches applied; `product` the mapping (default kidsapp's)."""
    cfg = config(tmp_path, product=product or kidsapp.mapping())
    [planned], _ = run(cfg, url, state, customer="kdv-a", dry_run=True)
    text = format_plan([planned], "table", NOW)
    [done], recorder = run(cfg, url, state, customer="kdv-a")
    blocked = sum(e.total for e in recorder.of(BatchBlocked))
    applied: dict[str, int] = {}
    for event in recorder.of(BatchApplied):
        for table, rows in event.rows.items():
            applied[table] = applied.get(table, 0) + rows
    return planned, text, done, blocked, applied


def test_a_recent_child_pointing_at_an_expired_one_is_foreseen_blocked(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Expired child 1 is referenced by recent child 2 (CASCADE): a run blocks 1; expired
    child 3 goes. The plan says 1 blocked, 1 would go."""
    children(any_db_url, {1: ("old", None), 2: ("recent", 1), 3: ("old", None)})
    planned, text, done, blocked, applied = plan_and_run(tmp_path, any_db_url, state)

    [rule] = planned.rules
    assert (rule.eligible, rule.would_block, rule.would_change) == (2, 1, {"child": 1})
    [reason] = rule.block_reasons
    assert "child(sibling_id) → child(id) ON DELETE CASCADE" in reason
    assert "not eligible" in reason
    assert "at least 1 would be blocked" in text
    assert f"      1: {reason}" in text
    doc = plan_document([planned], NOW)
    assert doc["totals"]["would_block"] == 1
    assert doc["pairs"][0]["rules"][0]["block_reasons"] == {reason: 1}

    assert done.outcome is Outcome.PARTIAL
    assert blocked == rule.would_block
    assert applied == rule.would_change
    assert ids(any_db_url, "child") == {1, 2}


def test_another_tenants_row_a_cascade_reaches_is_foreseen_blocked(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """note(child_id) → child(id) ON DELETE CASCADE: tenant 2's note 11 points at tenant 1's
    expired child 1, so a run blocks child 1; child 3 and its own note go."""
    children(any_db_url, {1: ("old", None), 3: ("old", None)})
    execute(
        any_db_url,
        "CREATE TABLE note (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "child_id INTEGER NOT NULL REFERENCES child (id) ON DELETE CASCADE)",
        "INSERT INTO note VALUES (10, 1, 1), (11, 2, 1), (30, 1, 3)",
    )
    planned, text, done, blocked, applied = plan_and_run(tmp_path, any_db_url, state)

    [rule] = planned.rules
    assert (rule.would_block, rule.would_change) == (1, {"child": 1, "note": 1})
    [reason] = rule.block_reasons
    assert reason.startswith("another tenant's row of note (note(child_id) → child(id)")
    assert "at least 1 eligible row(s) would be blocked" in text
    assert done.outcome is Outcome.PARTIAL
    assert (blocked, applied) == (1, rule.would_change)
    assert (ids(any_db_url, "child"), ids(any_db_url, "note")) == ({1}, {10, 11})


@pytest.mark.postgres
def test_a_key_from_another_schema_is_foreseen_blocked(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """other.memo(ref_id) → public.child(id) ON DELETE CASCADE references expired child 1."""
    children(pg_url, {1: ("old", None), 3: ("old", None)})
    memo(pg_url, "child", "CASCADE")
    planned, text, done, blocked, applied = plan_and_run(tmp_path, pg_url, state)

    [rule] = planned.rules
    assert (rule.would_block, rule.would_change) == (1, {"child": 1})
    [reason] = rule.block_reasons
    assert reason.startswith("a row of other.memo, outside the product's schema")
    assert "other.memo(ref_id) → child(id) ON DELETE CASCADE" in reason
    assert f"      1: {reason}" in text
    assert done.outcome is Outcome.PARTIAL
    assert (blocked, applied) == (1, rule.would_change)
    assert ids(pg_url, "child") == {1}


def test_nothing_blocked_prints_nothing_new(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Expired child 2 points at expired child 1: both go together, nothing is blocked, and
    the plan's text says nothing of blocking."""
    children(any_db_url, {1: ("old", None), 2: ("old", 1), 3: ("recent", None)})
    planned, text, done, blocked, applied = plan_and_run(tmp_path, any_db_url, state)

    [rule] = planned.rules
    assert (rule.would_block, rule.block_reasons, rule.would_change) == (0, {}, {"child": 2})
    assert "block" not in text
    assert done.outcome is Outcome.SUCCEEDED
    assert (blocked, applied) == (0, {"child": 2})
