"""A table a batch's cascade reaches loses, with the rows it reaches, the rows its own keys
reach in turn (connectors/sqlreach.py `closure`): with `note.child_id → child.id` and
`note.reply_to → note.id` both ON DELETE CASCADE, deleting an expired child deletes its
notes, every reply to them and every reply to a reply. The trail counted only the child's
own notes, and `plan` too; a reply of a recent child that the subject table points at
(`child.note_id → note.id` CASCADE) was deleted with that recent child, unchecked. Now the
trail and `plan` count every note that goes (or that a SET NULL key to itself changes), and
an expired child whose notes' replies lead back to a recent child stays (blocked).

On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.state import StateStore

DEPTH = 5  # note 10 of expired child 1, answered by 11, answered by 12, ... (recent child 2)


def create(url: str, action: str, back: bool = False) -> None:
    sqlite = url.startswith("sqlite")
    column = ", note_id INTEGER" + (" REFERENCES note (id) ON DELETE CASCADE" if sqlite else "")
    statements = [
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name "
        f"VARCHAR(40), health VARCHAR(40), left_on DATE{column if back else ''})",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL REFERENCES "
        "child (id) ON DELETE CASCADE, reply_to INTEGER, FOREIGN KEY (reply_to) REFERENCES "
        f"note (id) ON DELETE {action})",
    ]
    if back and not sqlite:
        statements.append(
            "ALTER TABLE child ADD FOREIGN KEY (note_id) REFERENCES note (id) ON DELETE CASCADE"
        )
    execute(
        url,
        *statements,
        (
            "INSERT INTO child (id, tenant_id, name, health, left_on) "
            "VALUES (:i, 1, 'Kind', 'pinda', :d)",
            [{"i": 1, "d": OLD}, {"i": 2, "d": RECENT}, {"i": 3, "d": RECENT}],
        ),
        "INSERT INTO note VALUES (10, 1, NULL)",
        (
            "INSERT INTO note VALUES (:n, 2, :r)",
            [{"n": note, "r": note - 1} for note in range(11, 10 + DEPTH)],
        ),
        "INSERT INTO note VALUES (30, 3, NULL)",
        *([f"UPDATE child SET note_id = {9 + DEPTH} WHERE id = 3"] if back else []),
    )


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
def test_the_trail_and_the_plan_count_what_a_cascaded_tables_own_keys_do(
    tmp_path: Path, any_db_url: str, state: StateStore, action: str
) -> None:
    """Deleting expired child 1 deletes note 10 and, through reply_to, its chain of replies
    (CASCADE: all DEPTH notes go) or sets the first reply's reply_to to NULL (SET NULL: one
    more note changes). `plan` and the trail both count it."""
    create(any_db_url, action)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [planned], _ = run(cfg, any_db_url, state, customer="kdv-a", dry_run=True)
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    notes = DEPTH if action == "CASCADE" else 2
    assert ids(any_db_url, "note") == {30} | (set() if notes == DEPTH else set(range(11, 15)))
    assert planned.would_change == {"child": 1, "note": notes}
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": notes}]
    assert report.outcome is Outcome.SUCCEEDED


def test_a_reply_chain_back_to_a_recent_child_blocks_the_expired_one(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Recent child 3 points at the last reply of the chain under expired child 1's note
    (child.note_id → note.id CASCADE): deleting child 1 would delete child 3. Child 1 stays."""
    create(any_db_url, "CASCADE", back=True)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert ids(any_db_url, "child") == {1, 2, 3}
    assert len(ids(any_db_url, "note")) == DEPTH + 1
    assert report.outcome is Outcome.PARTIAL
    assert sum(e.total for e in recorder.of(BatchBlocked)) == 1
    assert recorder.of(BatchApplied) == []
