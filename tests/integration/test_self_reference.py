"""A table's foreign key to itself, or a cycle of cascades back to it, never takes a row
outside the batch (connectors/sqlreach.py, `refuse_reach_back`): with `child.sibling_id →
child.id ON DELETE CASCADE` (or SET NULL) an expired child that a recent child, or another
tenant's child, references stays (blocked, as under RESTRICT), and the trail counts exactly
the rows that went; so does an expired child whose note a recent child points at
(`note.child_id → child` and `child.note_id → note`, both CASCADE). Before, deleting the
expired child deleted the recent one with it (a row inside its period), and the trail
counted fewer rows than the database deleted.

On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.state import StateStore

# id: (tenant, left_on, sibling_id). 1 ← 2 (recent), 4 ← 5 (both expired), 7 ← 8 (tenant 2).
ROWS = {
    1: (1, OLD, None),
    2: (1, RECENT, 1),
    3: (1, OLD, None),
    4: (1, OLD, None),
    5: (1, OLD, 4),
    7: (1, OLD, None),
    8: (2, OLD, 7),
}


def create(url: str, action: str) -> None:
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE, sibling_id INTEGER, "
        "FOREIGN KEY (sibling_id) REFERENCES child (id) ON DELETE " + action + ")",
        (
            "INSERT INTO child VALUES (:i, :t, 'Kind', 'pinda', :d, :s)",
            [{"i": i, "t": t, "d": d, "s": s} for i, (t, d, s) in ROWS.items()],
        ),
    )


def left(url: str) -> dict[int, int | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT * FROM child")
            return {int(r[0]): r[5] for r in conn.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_row_outside_the_batch_is_never_reached(
    tmp_path: Path, any_db_url: str, state: StateStore, action: str, batch_size: int
) -> None:
    create(any_db_url, action)
    cfg = config(tmp_path, product=kidsapp.mapping(batch_size=batch_size))
    before = left(any_db_url)
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    after = left(any_db_url)
    # 1 (a recent child points at it) and 7 (another tenant's child does) stay; the recent
    # child and tenant 2's rows are as they were.
    assert {1, 2, 7, 8} <= set(after)
    assert (after[2], after[8]) == (before[2], before[8])
    assert report.outcome is Outcome.PARTIAL
    blocked = sum(e.total for e in recorder.of(BatchBlocked))
    gone = set(before) - set(after)
    assert sum(e.rows["child"] for e in recorder.of(BatchApplied)) == len(gone) == report.changed
    # 3 goes; 5 goes; 4 goes with 5 in one batch, or is blocked while 5 (a later batch) is
    # still there and goes in the next run.
    assert {3, 5} <= gone <= {3, 4, 5}
    assert blocked == 2 + (4 not in gone)
    # Partial: every rule ran, so the pair is done for its tick (its lease marked done, not
    # released for another process to block the same rows again).
    with state._engine.connect() as conn:
        [(done_at,)] = conn.execute(sa.text("SELECT done_at FROM leases")).all()
    assert done_at is not None
    [again], _ = run(cfg, any_db_url, state, customer="kdv-a")
    assert set(left(any_db_url)) == {1, 2, 7, 8}
    assert again.changed == (4 in after)


def create_cycle(url: str) -> None:
    """child ← note(child_id) ON DELETE CASCADE, and child(note_id) → note ON DELETE CASCADE:
    child 1 (expired) has note 10, which recent child 2 points at; child 3 (expired) has
    note 30, which no child points at."""
    sqlite = url.startswith("sqlite")
    back = "REFERENCES note (id) ON DELETE CASCADE" if sqlite else ""
    alter = "ALTER TABLE child ADD FOREIGN KEY (note_id) REFERENCES note (id) ON DELETE CASCADE"
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        f"name VARCHAR(40), health VARCHAR(40), left_on DATE, note_id INTEGER {back})",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL "
        "REFERENCES child (id) ON DELETE CASCADE)",
        *([] if sqlite else [alter]),
        (
            "INSERT INTO child VALUES (:i, 1, 'Kind', 'pinda', :d, NULL)",
            [{"i": 1, "d": OLD}, {"i": 2, "d": RECENT}, {"i": 3, "d": OLD}],
        ),
        "INSERT INTO note VALUES (10, 1), (30, 3)",
        "UPDATE child SET note_id = 10 WHERE id = 2",
    )


def test_a_cycle_through_another_table_never_reaches_a_row_outside_the_batch(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    create_cycle(any_db_url)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert set(left(any_db_url)) == {1, 2}  # 1 stays: deleting it would take recent 2 along
    assert report.outcome is Outcome.PARTIAL
    assert sum(e.total for e in recorder.of(BatchBlocked)) == 1
    # child 3 and its note 30 went, and the trail says so
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": 1}]


def test_a_dependents_reply_chain_never_reaches_a_note_outside_the_batch(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """child_note is a mapped dependent of child, and a note can answer another
    (`child_note.reply_to → child_note.id ON DELETE CASCADE`): expired child 1's note 10 is
    answered by recent child 2's note 20, so deleting 1 (and its notes first) would take note
    20 along. Child 1 stays (blocked); expired child 3 and its notes 30 and 31 (31 answers
    30, both in the batch) go, and the trail counts them."""
    execute(
        any_db_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE)",
        "CREATE TABLE child_note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL "
        "REFERENCES child (id), tenant_id INTEGER NOT NULL, text VARCHAR(40), "
        "reply_to INTEGER, FOREIGN KEY (reply_to) REFERENCES child_note (id) "
        "ON DELETE CASCADE)",
        (
            "INSERT INTO child VALUES (:i, 1, 'Kind', 'pinda', :d)",
            [{"i": 1, "d": OLD}, {"i": 2, "d": RECENT}, {"i": 3, "d": OLD}],
        ),
        (
            "INSERT INTO child_note VALUES (:n, :c, 1, 'notitie', :r)",
            [
                {"n": n, "c": c, "r": r}
                for n, c, r in ((10, 1, None), (20, 2, 10), (30, 3, None), (31, 3, 30))
            ],
        ),
    )
    cfg = config(tmp_path, product=kidsapp.with_notes())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert (ids(any_db_url, "child"), ids(any_db_url, "child_note")) == ({1, 2}, {10, 20})
    assert report.outcome is Outcome.PARTIAL
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "child_note": 2}]


def test_a_cascade_never_reaches_another_tenants_row(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """note(child_id) → child(id) ON DELETE CASCADE, note not in the mapping: expired child 1
    of tenant 1 has a note of its own and one of tenant 2 (the data's reference crosses
    tenants). Deleting child 1 would delete tenant 2's note: child 1 stays (blocked); expired
    child 3 and its own note go, and the trail counts them."""
    execute(
        any_db_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE)",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "child_id INTEGER NOT NULL REFERENCES child (id) ON DELETE CASCADE)",
        (
            "INSERT INTO child VALUES (:i, 1, 'Kind', 'pinda', :d)",
            [{"i": 1, "d": OLD}, {"i": 3, "d": OLD}],
        ),
        "INSERT INTO note VALUES (10, 1, 1), (11, 2, 1), (30, 1, 3)",
    )
    cfg = config(tmp_path, product=kidsapp.mapping())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert (ids(any_db_url, "child"), ids(any_db_url, "note")) == ({1}, {10, 11})
    assert report.outcome is Outcome.PARTIAL
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": 1}]
