"""A foreign key from a table in another PostgreSQL schema to a table the worker deletes from
acts like any other, but the worker neither reflects nor counts that table
(connectors/sqloutside.py): the rows such a key references, when its ON DELETE acts
(CASCADE, SET NULL, SET DEFAULT), are refused as under RESTRICT: they stay (`batch.blocked`,
the run partial), the trail counts only what went, and rows it does not reference go.

Before, connectors/sqlschema.py `all_foreign_keys` read the default schema's keys only, so
such a key was never seen: deleting tenant 1's expired child 1 silently deleted tenant 2's
`other.memo` row (or set its reference to NULL), and the trail counted none of it.

`other` is not on the search path. Child 1 (expired, referenced from `other`), child 3
(expired, referenced by nothing outside) and child 2 (recent), all of tenant 1.
PostgreSQL; the MariaDB case (another database of the server) and SQLite (no such key can
exist) are in test_keys_other_database.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, config, run
from tests.integration.own_config import validate
from tests.integration.test_cached_keys import create
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.state import StateStore

pytestmark = pytest.mark.postgres


def add_expired_child(url: str, child: int = 3) -> None:
    execute(
        url,
        f"INSERT INTO child (id, tenant_id, name, health, left_on) VALUES ({child}, 1, 'Kind', "
        f"'pinda', '{OLD.isoformat()}')",
    )


def memo(url: str, referred: str, action: str, tenant: int = 2, row: int = 1) -> None:
    """`other.memo(ref_id) → public.<referred>(id) ON DELETE <action>`, one row of `tenant`
    referencing `row`."""
    execute(
        url,
        "CREATE SCHEMA other",
        "CREATE TABLE other.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        f"ref_id INTEGER REFERENCES public.{referred} (id) ON DELETE {action})",
        f"INSERT INTO other.memo VALUES (1, {tenant}, {row})",
    )


def memo_refs(url: str, table: str = "other.memo") -> list[int | None]:
    """The `ref_id` of every row of `table`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT ref_id FROM {table}")).scalars())
    finally:
        engine.dispose()


def test_a_cascade_into_another_schema_is_refused(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    create(pg_url, "CASCADE")  # note 10 of child 1: goes with it, once child 1 may go
    add_expired_child(pg_url)
    memo(pg_url, "child", "CASCADE")
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}  # tenant 2's row stays
    assert ids(pg_url, "child") == {1, 2}  # child 3 went
    assert report.outcome is Outcome.PARTIAL, report.error
    [blocked] = recorder.of(BatchBlocked)
    assert blocked.total == 1
    assert any("other.memo" in e for e in blocked.errors)
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_set_null_from_another_schema_is_refused(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    create(pg_url, None)
    add_expired_child(pg_url)
    memo(pg_url, "child", "SET NULL")
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert memo_refs(pg_url) == [1]  # not set to NULL
    assert ids(pg_url, "child") == {1, 2}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert sum(e.total for e in recorder.of(BatchBlocked)) == 1
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_row_of_the_same_tenant_in_another_schema_still_blocks(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """The memo is tenant 1's own: it still lies outside the tables the worker counts. No
    other key points at `child`: the set-based delete (connectors/sqlfast.py) is not used."""
    create(pg_url, None)
    execute(pg_url, "DROP TABLE note")
    add_expired_child(pg_url)
    memo(pg_url, "child", "CASCADE", tenant=1)
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}
    assert ids(pg_url, "child") == {1, 2}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_key_from_another_schema_to_a_dependent_blocks_its_subject_row(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """`other.memo → child_note` (a mapped dependent): child 1 and its note 10 stay; child
    3 and its note 30 go, counted."""
    create(pg_url, None)
    add_expired_child(pg_url)
    execute(
        pg_url,
        "CREATE TABLE child_note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL "
        "REFERENCES child (id), tenant_id INTEGER NOT NULL, text VARCHAR(40))",
        "INSERT INTO child_note VALUES (10, 1, 1, 'x'), (30, 3, 1, 'x')",
    )
    memo(pg_url, "child_note", "CASCADE", row=10)
    cfg = config(tmp_path, product=kidsapp.with_notes())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}
    assert (ids(pg_url, "child"), ids(pg_url, "child_note")) == ({1, 2}, {10})
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "child_note": 1}]


def test_a_key_from_another_schema_to_a_table_a_cascade_reaches_blocks(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """`note(child_id) → child` CASCADE (unmapped), `other.memo → note` CASCADE: deleting
    child 1 would take note 10 and, with it, the memo. Child 1 stays; child 3 goes."""
    create(pg_url, None)
    add_expired_child(pg_url)
    memo(pg_url, "note", "CASCADE", row=10)
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}
    assert 10 in ids(pg_url, "note")
    assert ids(pg_url, "child") == {1, 2}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_restricting_key_from_another_schema_needs_nothing(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """NO ACTION: the database refuses the delete itself; child 1 stays, child 3 goes."""
    create(pg_url, None)
    add_expired_child(pg_url)
    memo(pg_url, "child", "NO ACTION")
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "child") == {1, 2}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_validate_warns_of_a_key_from_another_schema(tmp_path: Path, pg_url: str) -> None:
    create(pg_url, None)
    memo(pg_url, "child", "CASCADE")
    config(tmp_path, product=kidsapp.mapping())

    code, out = validate(tmp_path / "config", {kidsapp.URL_ENV: pg_url})

    assert code == 0, out
    assert "other.memo(ref_id) → child(id) ON DELETE CASCADE" in out
    assert "outside the product's schema" in out


def test_a_keyless_subject_a_key_from_another_schema_acts_on_is_not_deleted_from(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """A subject without a key deletes by locator: what the key does could not be checked
    per row, so the rule is refused (validate: exit 2; a run: failed, nothing changed)."""
    execute(
        pg_url,
        "CREATE TABLE child (id INTEGER NOT NULL UNIQUE, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE)",
        f"INSERT INTO child VALUES (1, 1, 'Kind', 'pinda', '{OLD}')",
    )
    memo(pg_url, "child", "SET NULL")
    product = kidsapp.mapping()
    product["subjects"]["child"]["key"] = []
    cfg = config(tmp_path, product=product)
    code, out = validate(tmp_path / "config", {kidsapp.URL_ENV: pg_url})
    assert code == 2, out
    assert "other.memo(ref_id)" in out and "`key: [id]`" in out

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert report.outcome is Outcome.FAILED
    assert "other.memo(ref_id)" in (report.error or "")
    assert (ids(pg_url, "child"), memo_refs(pg_url)) == ({1}, [1])
    assert recorder.of(BatchApplied) == []
