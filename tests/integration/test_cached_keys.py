"""The database's foreign keys are cached with the reflection (connectors/engines.py) and read
again only when the catalog's fingerprint of every foreign key changes (connectors/sqlstamp.py
`Stamp.keys`): a warm run reads none, and a key added or changed between two runs, on a table
no mapping names, is seen by the next run; its ON DELETE chain is counted in full.

`note.child_id → child.id` ON DELETE CASCADE, and `note.reply_to → note.id` (the key the
tests add or change): deleting expired child 1 deletes its note 10 and, once `reply_to` is
CASCADE, the chain of replies to it. Keys cached from before the change would count only
what the old key did (the trail then would not equal what happened). On SQLite, PostgreSQL
and MariaDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import sqlschemaview
from connectors.engines import Engines
from connectors.sqlschema import all_foreign_keys
from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.rawsql import execute, ids
from worker.events import BatchApplied, Outcome
from worker.state import StateStore

DEPTH = 4  # note 10 of expired child 1, answered by 11, 11 by 12, ... (recent child 2)
ROWS = [(10, 1, None), *((n, 2, n - 1) for n in range(11, 10 + DEPTH))]


def note_table(url: str, reply: str | None) -> list[str]:
    """The statements that create `note` with its rows; `reply`: the ON DELETE of its
    `reply_to` key, or None for no such key."""
    key = (
        f", CONSTRAINT note_reply FOREIGN KEY (reply_to) REFERENCES note (id) ON DELETE {reply}"
        if reply is not None
        else ""
    )
    return [
        "CREATE TABLE note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL, reply_to "
        "INTEGER, CONSTRAINT note_child FOREIGN KEY (child_id) REFERENCES child (id) "
        f"ON DELETE CASCADE{key})",
        *(f"INSERT INTO note VALUES ({n}, {c}, {'NULL' if r is None else r})" for n, c, r in ROWS),
    ]


def change_reply(url: str, reply: str | None) -> None:
    """Another session makes `note.reply_to` ON DELETE CASCADE (SQLite: `note` made anew)."""
    if url.startswith("sqlite"):
        execute(url, "DROP TABLE note", *note_table(url, "CASCADE"))
        return
    drop = "DROP FOREIGN KEY" if url.startswith("mysql") else "DROP CONSTRAINT"
    steps = [f"ALTER TABLE note {drop} note_reply"] if reply is not None else []
    execute(
        url,
        *steps,
        "ALTER TABLE note ADD CONSTRAINT note_reply FOREIGN KEY (reply_to) REFERENCES note (id) "
        "ON DELETE CASCADE",
    )


def create(url: str, reply: str | None) -> None:
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name "
        "VARCHAR(40), health VARCHAR(40), left_on DATE)",
        (
            "INSERT INTO child (id, tenant_id, name, health, left_on) "
            "VALUES (:i, 1, 'Kind', 'pinda', :d)",
            [{"i": 1, "d": OLD}, {"i": 2, "d": RECENT}],
        ),
        *note_table(url, reply),
    )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of the whole database's foreign keys by a connector (its URL's driver)."""
    found: list[str] = []
    real = sqlschemaview.all_foreign_keys

    def counted(engine: Any) -> Any:
        found.append(engine.dialect.name)
        return real(engine)

    monkeypatch.setattr(sqlschemaview, "all_foreign_keys", counted)
    return found


def test_a_warm_run_reads_no_foreign_key_again(
    tmp_path: Path, any_db_url: str, state: StateStore, reads: list[str]
) -> None:
    create(any_db_url, "CASCADE")
    cfg = config(tmp_path, product=kidsapp.mapping())
    [first], _ = run(cfg, any_db_url, state, customer="kdv-b")  # nothing due: idle
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert len(reads) == 1
    # A second read under the same fingerprint confirms the first (connectors/engines.py):
    # only keys two runs found alike are kept.
    [again], _ = run(cfg, any_db_url, state, customer="kdv-b")
    assert again.outcome is Outcome.SUCCEEDED, again.error
    assert len(reads) == 2
    [second], recorder = run(cfg, any_db_url, state, customer="kdv-a")
    assert second.outcome is Outcome.SUCCEEDED, second.error
    assert len(reads) == 2  # the cached keys: the fingerprint says nothing changed
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": DEPTH}]


@pytest.mark.parametrize("before", [None, "SET NULL"], ids=["added", "set-null-to-cascade"])
def test_a_key_added_or_changed_on_an_unmapped_table_is_seen_by_the_next_run(
    tmp_path: Path, any_db_url: str, state: StateStore, reads: list[str], before: str | None
) -> None:
    create(any_db_url, before)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [first], _ = run(cfg, any_db_url, state, customer="kdv-b")  # warms the cached keys
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert len(reads) == 1
    change_reply(any_db_url, before)

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(any_db_url, "child") == {2}
    assert ids(any_db_url, "note") == set()
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "note": DEPTH}]
    assert len(reads) == 2  # read again: the fingerprint of the keys changed


def test_keys_that_change_while_they_are_read_are_not_kept(any_db_url: str) -> None:
    """Another session changes a key while the keys are read: what was read is not cached
    under the fingerprint the run holds, so the next reader reads again."""
    create(any_db_url, "SET NULL")
    engines = Engines()
    engine = engines.engine("db", lambda: sa.create_engine(any_db_url))
    held = engines.survey("db", engine, ["child"]).keys
    assert held is not None
    calls: list[int] = []

    def read() -> Any:
        calls.append(1)
        if len(calls) == 1:  # the key changes after the run took its fingerprint
            change_reply(any_db_url, "SET NULL")
        return all_foreign_keys(engine)

    try:
        for _ in range(3):  # keys read under `held` that `held` no longer describes
            engines.foreign_keys("db", engine, held, read)
        # Never kept under `held`: the fingerprint read after each read differs from it.
        # (Kept as a candidate, the second read would confirm it and the third be cached.)
        assert len(calls) == 3
        now = engines.survey("db", engine, ["child"]).keys
        assert now is not None and now != held
        engines.foreign_keys("db", engine, now, read)
        engines.foreign_keys("db", engine, now, read)
        engines.foreign_keys("db", engine, now, read)
        # Read twice under the new fingerprint, alike and unchanged since: kept.
        assert len(calls) == 5
    finally:
        engines.dispose()
