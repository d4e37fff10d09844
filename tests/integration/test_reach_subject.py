"""A dependent's delete, or an anonymise rule's related delete, never takes a subject row
outside the batch through the database's own ON DELETE keys (connectors/sqlreach.py,
`refuse_reaching`): with `child.fav_note → child_note.id ON DELETE CASCADE`, deleting an
expired child's notes (a mapped dependent, deleted first) deleted a recent child that
favours one of them, and an anonymise rule deleting a child's notes (`related`) deleted that
recent child too, though it only anonymises. Such a child now stays (blocked, as under
RESTRICT). A subject row of the batch itself that a dependent's cascade takes first is
named in the trail (its key hash) and counted once.

On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, BatchIntent, Outcome
from worker.state import StateStore


def create(url: str, reply_to: bool = False) -> None:
    """child(fav_note) → child_note(id) ON DELETE CASCADE; child_note(child_id) → child(id),
    and with `reply_to` child_note(reply_to) → child_note(id) ON DELETE CASCADE."""
    sqlite = url.startswith("sqlite")
    back = "REFERENCES child_note (id) ON DELETE CASCADE" if sqlite else ""
    reply = (
        ", reply_to INTEGER, FOREIGN KEY (reply_to) REFERENCES child_note (id) ON DELETE CASCADE"
        if reply_to
        else ""
    )
    statements = [
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        f"name VARCHAR(40), health VARCHAR(40), left_on DATE, fav_note INTEGER {back})",
        "CREATE TABLE child_note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL "
        f"REFERENCES child (id), tenant_id INTEGER NOT NULL, text VARCHAR(40){reply})",
    ]
    if not sqlite:
        statements.append(
            "ALTER TABLE child ADD FOREIGN KEY (fav_note) REFERENCES child_note (id) "
            "ON DELETE CASCADE"
        )
    execute(url, *statements)


def add_child(url: str, child: int, left_on: Any) -> None:
    execute(
        url,
        (
            "INSERT INTO child (id, tenant_id, name, health, left_on) "
            "VALUES (:i, 1, 'Kind', 'pinda', :d)",
            [{"i": child, "d": left_on}],
        ),
    )


def test_a_dependents_cascade_never_takes_a_recent_subject_row(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Expired child 1's note 10 is recent child 2's favourite: deleting note 10 (child 1's
    dependent) would delete child 2. Child 1 stays (blocked); expired child 3 and its note
    30 go, counted."""
    create(any_db_url)
    for child, left_on in ((1, OLD), (2, RECENT), (3, OLD)):
        add_child(any_db_url, child, left_on)
    execute(
        any_db_url,
        "INSERT INTO child_note (id, child_id, tenant_id, text) VALUES (10, 1, 1, 'x')",
        "INSERT INTO child_note (id, child_id, tenant_id, text) VALUES (30, 3, 1, 'x')",
        "UPDATE child SET fav_note = 10 WHERE id = 2",
    )
    cfg = config(tmp_path, product=kidsapp.with_notes())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert (ids(any_db_url, "child"), ids(any_db_url, "child_note")) == ({1, 2}, {10})
    assert report.outcome is Outcome.PARTIAL
    assert sum(e.total for e in recorder.of(BatchBlocked)) == 1
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "child_note": 1}]


def test_a_subject_row_its_dependents_cascade_takes_is_named_and_counted_once(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Expired child 1 favours its own note 10: deleting the note first takes child 1 with
    it (PostgreSQL, SQLite; InnoDB refuses the cascade, so child 1 stays blocked there).
    Whatever the database does, the trail names and counts exactly the children that went."""
    create(any_db_url)
    for child in (1, 3):
        add_child(any_db_url, child, OLD)
    execute(
        any_db_url,
        "INSERT INTO child_note (id, child_id, tenant_id, text) VALUES (10, 1, 1, 'x')",
        "UPDATE child SET fav_note = 10 WHERE id = 1",
    )
    cfg = config(tmp_path, product=kidsapp.with_notes())
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    gone = {1, 3} - ids(any_db_url, "child")
    assert gone == ({3} if any_db_url.startswith("mysql") else {1, 3})
    applied = recorder.of(BatchApplied)
    assert (
        sum(e.rows["child"] for e in applied)
        == len(gone)
        == report.changed - (sum(e.rows.get("child_note", 0) for e in applied))
    )
    assert sum(len(e.key_hashes) for e in recorder.of(BatchIntent)) == len(gone)


def test_an_anonymise_rules_related_delete_never_takes_a_subject_row(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """A rule anonymises children and deletes their notes (`related`). Expired child 1's
    note 10 is recent child 2's favourite and answered by recent child 3's note 30: deleting
    it would delete child 2 and note 30. Child 1 stays as it was (blocked); expired child 4
    is anonymised and its note 40 deleted."""
    create(any_db_url, reply_to=True)
    for child, left_on in ((1, OLD), (2, RECENT), (3, RECENT), (4, OLD)):
        add_child(any_db_url, child, left_on)
    execute(
        any_db_url,
        "INSERT INTO child_note (id, child_id, tenant_id, text) VALUES (10, 1, 1, 'x')",
        "INSERT INTO child_note (id, child_id, tenant_id, text) VALUES (40, 4, 1, 'x')",
        "INSERT INTO child_note VALUES (30, 3, 1, 'x', 10)",
        "UPDATE child SET fav_note = 10 WHERE id = 2",
    )
    related = {
        "table": "child_note",
        "references": {"child_id": "id"},
        "action": "delete",
        "columns": {"text": "health"},
    }
    rule = kidsapp.rule(action="anonymise", related=[related], **{"with": {"name": "null"}})
    cfg = config(tmp_path, product=kidsapp.mapping(rules=[rule]))
    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert ids(any_db_url, "child") == {1, 2, 3, 4}
    assert ids(any_db_url, "child_note") == {10, 30}
    assert report.outcome is Outcome.PARTIAL
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "child_note": 1}]
