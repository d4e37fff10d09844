"""A foreign key from a table in another MariaDB database of the same server to a table the
worker deletes from (connectors/sqloutside.py): the rows its acting ON DELETE (CASCADE, SET
NULL) references are refused as under RESTRICT and stay, like a key from another PostgreSQL
schema (test_keys_other_schema.py). Before, connectors/sqlschema.py read the product
database's own keys only: tenant 2's row of `<other>.memo` went with tenant 1's expired
child 1 (or lost its reference), uncounted. The foreign-key cache (connectors/engines.py)
holds such keys too, and the fingerprint of the keys (connectors/sqlstamp.py) changes when
one is added, so a warm cache never hides it.

SQLite has no such key: a key names its parent table unqualified and SQLite looks for it in
the key's own database file, so a table of an attached database never references the
product's tables (the last test shows it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import dbs, kidsapp
from tests.gate_support import config, run
from tests.integration import test_cached_keys
from tests.integration.test_cached_keys import create
from tests.integration.test_keys_other_schema import add_expired_child, memo_refs
from tests.rawsql import execute, ids
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.state import StateStore

reads = test_cached_keys.reads  # the fixture, by name (pytest finds it here)


@pytest.fixture
def other_db(mariadb_server_url: str, mariadb_url: str) -> Iterator[str]:
    """Another database on the product's server (dropped before the product's)."""
    with dbs.mariadb_database(mariadb_server_url) as url:
        yield str(sa.make_url(url).database)


def memo(url: str, other: str, action: str, tenant: int = 2) -> None:
    """`<other>.memo(ref_id) → <product>.child(id) ON DELETE <action>`, one row of `tenant`
    referencing child 1."""
    product = sa.make_url(url).database
    execute(
        url,
        f"CREATE TABLE `{other}`.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        f"ref_id INTEGER, FOREIGN KEY (ref_id) REFERENCES `{product}`.child (id) "
        f"ON DELETE {action}) ENGINE=InnoDB",
        f"INSERT INTO `{other}`.memo VALUES (1, {tenant}, 1)",
    )


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
def test_a_key_from_another_database_is_refused(
    tmp_path: Path, mariadb_url: str, other_db: str, state: StateStore, action: str
) -> None:
    create(mariadb_url, None)
    add_expired_child(mariadb_url)
    memo(mariadb_url, other_db, action)
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, mariadb_url, state, customer="kdv-a")

    assert memo_refs(mariadb_url, f"`{other_db}`.memo") == [1]  # neither gone nor NULL
    assert ids(mariadb_url, "child") == {1, 2}  # child 3 went
    assert report.outcome is Outcome.PARTIAL, report.error
    [blocked] = recorder.of(BatchBlocked)
    assert blocked.total == 1
    assert any(f"{other_db}.memo" in e for e in blocked.errors)
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_key_added_in_another_database_is_seen_by_the_next_run(
    tmp_path: Path, mariadb_url: str, other_db: str, state: StateStore, reads: list[str]
) -> None:
    """The keys are cached after a first run; a key added then in another database changes
    the fingerprint (connectors/sqlstamp.py), so the next run reads the keys again."""
    create(mariadb_url, None)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [first], _ = run(cfg, mariadb_url, state, customer="kdv-b")  # nothing due: warms the cache
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert len(reads) == 1
    memo(mariadb_url, other_db, "CASCADE", tenant=1)

    [report], _ = run(cfg, mariadb_url, state, customer="kdv-a")

    assert memo_refs(mariadb_url, f"`{other_db}`.memo") == [1]
    assert ids(mariadb_url, "child") == {1, 2}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert len(reads) == 2


@pytest.mark.postgres
def test_a_key_added_in_another_schema_is_seen_by_the_next_run(
    tmp_path: Path, pg_url: str, state: StateStore, reads: list[str]
) -> None:
    create(pg_url, None)
    cfg = config(tmp_path, product=kidsapp.mapping())
    [first], _ = run(cfg, pg_url, state, customer="kdv-b")
    assert first.outcome is Outcome.SUCCEEDED, first.error
    execute(
        pg_url,
        "CREATE SCHEMA other",
        "CREATE TABLE other.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "ref_id INTEGER REFERENCES public.child (id) ON DELETE CASCADE)",
        "INSERT INTO other.memo VALUES (1, 1, 1)",
    )

    [report], _ = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}
    assert report.outcome is Outcome.PARTIAL, report.error
    assert len(reads) == 2


def test_sqlite_has_no_key_into_another_database_file(tmp_path: Path) -> None:
    """A table of an attached database cannot name the main database's table: a qualified
    parent is a syntax error, and an unqualified one is looked for in the key's own file."""
    conn = sqlite3.connect(tmp_path / "main.db")
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO child VALUES (1)")
        conn.execute(f"ATTACH DATABASE '{tmp_path / 'aux.db'}' AS aux")
        with pytest.raises(sqlite3.OperationalError, match="syntax error"):
            conn.execute(
                "CREATE TABLE aux.memo (id INTEGER PRIMARY KEY, ref_id INTEGER "
                "REFERENCES main.child (id) ON DELETE CASCADE)"
            )
        conn.execute(
            "CREATE TABLE aux.memo (id INTEGER PRIMARY KEY, ref_id INTEGER "
            "REFERENCES child (id) ON DELETE CASCADE)"
        )
        with pytest.raises(sqlite3.OperationalError, match=r"no such table: aux\.child"):
            conn.execute("INSERT INTO aux.memo VALUES (1, 1)")
    finally:
        conn.close()
