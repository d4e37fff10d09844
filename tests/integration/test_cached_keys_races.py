"""The database's cached foreign keys (connectors/engines.py `foreign_keys`) against a
migration that drops a key and adds it back (MariaDB commits each DDL statement on its own;
PostgreSQL and SQLite migrations run outside a transaction do the same): keys read while the
key was gone must never be cached under the fingerprint of the database with it, or every
later run misses the key's cascade (uncounted rows in the trail, refusals skipped).

Uses the tables of tests/integration/test_cached_keys.py: `note.child_id → child.id` ON
DELETE CASCADE, `note.reply_to → note.id` ON DELETE CASCADE. On SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors import sqlschemaview
from tests import kidsapp
from tests.gate_support import config, run
from tests.integration.test_cached_keys import DEPTH, create, note_table
from tests.rawsql import execute, ids
from worker.events import BatchApplied, Outcome
from worker.state import StateStore


def drop_reply(url: str) -> None:
    """Another session drops `note.reply_to`'s key (SQLite: `note` made anew without it)."""
    if url.startswith("sqlite"):
        execute(url, "DROP TABLE note", *note_table(url, None))
        return
    drop = "DROP FOREIGN KEY" if url.startswith("mysql") else "DROP CONSTRAINT"
    execute(url, f"ALTER TABLE note {drop} note_reply")


def add_reply(url: str) -> None:
    """Another session adds `note.reply_to`'s key back, ON DELETE CASCADE as before."""
    if url.startswith("sqlite"):
        execute(url, "DROP TABLE note", *note_table(url, "CASCADE"))
        return
    execute(
        url,
        "ALTER TABLE note ADD CONSTRAINT note_reply FOREIGN KEY (reply_to) REFERENCES note (id) "
        "ON DELETE CASCADE",
    )


def test_keys_read_while_a_key_was_dropped_and_added_back_are_not_kept(
    tmp_path: Path, any_db_url: str, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(any_db_url, "CASCADE")
    cfg = config(tmp_path, product=kidsapp.mapping())
    real = sqlschemaview.all_foreign_keys
    calls: list[int] = []

    def migrating(engine: Any) -> Any:  # the migration's two steps land around this read
        calls.append(1)
        if len(calls) > 1:
            return real(engine)
        drop_reply(any_db_url)
        try:
            return real(engine)
        finally:
            add_reply(any_db_url)

    monkeypatch.setattr(sqlschemaview, "all_foreign_keys", migrating)
    [first], _ = run(cfg, any_db_url, state, customer="kdv-b")  # idle: reads (and caches)
    assert first.outcome is Outcome.SUCCEEDED, first.error

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(any_db_url, "child") == {2}
    assert ids(any_db_url, "note") == set()  # the whole chain went, the key being there
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": DEPTH}]
    assert len(calls) == 2  # the first run read mid-migration; the second read again
