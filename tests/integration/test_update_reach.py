"""An anonymise mask that changes a column another table's foreign key references with an
acting ON UPDATE (CASCADE, SET NULL, SET DEFAULT) makes the database change the referencing
rows too (connectors/sqlupdatereach.py): another tenant's row there, or a row outside the
product's schema, blocks the batch's row that it references (`batch.blocked`, the run
partial, nothing of it changed); the same tenant's rows change and the trail counts them.

Before, the run rewrote (or reset) tenant 2's `memo` row with tenant 1's anonymised child,
and the trail counted only the child. `child.name` is unique (`Kind<id>`); children 1 and 3
(expired) and 2 (recent), all of tenant 1; the rule masks `name` with a keyed hash. On
SQLite, PostgreSQL and MariaDB; the keys from another schema (PostgreSQL) or database
(MariaDB) below too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.integration import test_keys_other_schema_masks
from tests.rawsql import execute
from worker.events import BatchApplied, BatchBlocked, Outcome
from worker.state import StateStore

outside = test_keys_other_schema_masks.outside  # the fixture, by name (pytest finds it here)


def children(url: str) -> None:
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name "
        "VARCHAR(40), health VARCHAR(40), left_on DATE)",
        "CREATE UNIQUE INDEX child_name ON child (name)",
        (
            "INSERT INTO child VALUES (:i, 1, :n, 'pinda', :d)",
            [{"i": i, "n": f"Kind{i}", "d": d} for i, d in ((1, OLD), (2, RECENT), (3, OLD))],
        ),
    )


def memo(url: str, referred: str, action: str, tenant: int | None, name: str = "Kind1") -> None:
    """`memo(ref_name) → <referred>(name) ON UPDATE <action>`, one row of `tenant`."""
    execute(
        url,
        "CREATE TABLE memo (id INTEGER PRIMARY KEY, tenant_id INTEGER, ref_name VARCHAR(40), "
        f"CONSTRAINT memo_name FOREIGN KEY (ref_name) REFERENCES {referred} (name) "
        f"ON UPDATE {action})",
        f"INSERT INTO memo VALUES (1, {'NULL' if tenant is None else tenant}, '{name}')",
    )


def values(url: str, query: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)).scalars())
    finally:
        engine.dispose()


def names(url: str) -> dict[int, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {int(i): str(n) for i, n in conn.execute(sa.text("SELECT id, name FROM child"))}
    finally:
        engine.dispose()


def masking(**extra: Any) -> dict[str, Any]:
    rule = kidsapp.rule(action="anonymise", **{"with": {"name": "keyed_hash"}}, **extra)
    return kidsapp.mapping(rules=[rule])


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
def test_another_tenants_referencing_row_blocks_the_anonymised_row(
    tmp_path: Path, any_db_url: str, state: StateStore, action: str
) -> None:
    children(any_db_url)
    memo(any_db_url, "child", action, tenant=2)
    cfg = config(tmp_path, product=masking())

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert values(any_db_url, "SELECT ref_name FROM memo") == ["Kind1"]  # tenant 2's: as it was
    found = names(any_db_url)
    assert (found[1], found[2]) == ("Kind1", "Kind2")  # child 1 blocked, 2 recent
    assert found[3] != "Kind3"  # child 3 anonymised
    assert report.outcome is Outcome.PARTIAL, report.error
    [blocked] = recorder.of(BatchBlocked)
    assert blocked.total == 1
    assert any("memo of another tenant" in e for e in blocked.errors), blocked.errors
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


@pytest.mark.parametrize(("action", "tenant"), [("CASCADE", 1), ("SET NULL", 1), ("CASCADE", None)])
def test_the_same_tenants_referencing_rows_change_and_are_counted(
    tmp_path: Path, any_db_url: str, state: StateStore, action: str, tenant: int | None
) -> None:
    """A memo of tenant 1, or of no tenant (NULL): it follows the key, and the trail counts
    it with the batch."""
    children(any_db_url)
    memo(any_db_url, "child", action, tenant=tenant)
    cfg = config(tmp_path, product=masking())

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    found = names(any_db_url)
    assert found[1] != "Kind1" and found[3] != "Kind3"
    expected = found[1] if action == "CASCADE" else None
    assert values(any_db_url, "SELECT ref_name FROM memo") == [expected]
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 2, "memo": 1}]


def test_a_recent_row_of_the_subjects_table_referencing_it_blocks_it(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """`child(parent_name) → child(name) ON UPDATE CASCADE`: recent child 2 references
    expired child 1; the batch would change a row it does not anonymise (and count it as
    none): child 1 stays. MariaDB refuses such a self-referencing cascade itself (as under
    RESTRICT), so there the row stayed before too."""
    execute(
        any_db_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name "
        "VARCHAR(40), health VARCHAR(40), left_on DATE, parent_name VARCHAR(40), "
        "CONSTRAINT child_name UNIQUE (name), CONSTRAINT child_parent FOREIGN KEY "
        "(parent_name) REFERENCES child (name) ON UPDATE CASCADE)",
        (
            "INSERT INTO child VALUES (:i, 1, :n, 'pinda', :d, :p)",
            [
                {"i": 1, "n": "Kind1", "d": OLD, "p": None},
                {"i": 2, "n": "Kind2", "d": RECENT, "p": "Kind1"},
                {"i": 3, "n": "Kind3", "d": OLD, "p": None},
            ],
        ),
    )
    cfg = config(tmp_path, product=masking())

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert values(any_db_url, "SELECT parent_name FROM child WHERE id = 2") == ["Kind1"]
    assert names(any_db_url)[1] == "Kind1"
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


@pytest.mark.parametrize("mask", ["keyed_hash", "null"])
def test_a_related_tables_mask_blocks_on_another_tenants_referencing_row(
    tmp_path: Path, any_db_url: str, state: StateStore, mask: str
) -> None:
    """`contact(name)` of the related rows is masked (a keyed hash row by row; `null` in one
    UPDATE), and tenant 2's memo references contact 10 of child 1: child 1 and its contact
    stay; child 3 and its contact 30 are anonymised, counted."""
    children(any_db_url)
    execute(
        any_db_url,
        "CREATE TABLE contact (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, child_id "
        "INTEGER NOT NULL REFERENCES child (id), name VARCHAR(40), CONSTRAINT contact_name "
        "UNIQUE (name))",
        "INSERT INTO contact VALUES (10, 1, 1, 'Ouder1'), (30, 1, 3, 'Ouder3')",
    )
    memo(any_db_url, "contact", "CASCADE", tenant=2, name="Ouder1")
    related = {
        "table": "contact",
        "references": {"child_id": "id"},
        "action": "anonymise",
        "columns": {"name": "name"},
        "with": {"name": mask},
    }
    rule = kidsapp.rule(action="anonymise", **{"with": {"health": "null"}}, related=[related])
    cfg = config(tmp_path, product=kidsapp.mapping(rules=[rule]))

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert values(any_db_url, "SELECT ref_name FROM memo") == ["Ouder1"]
    assert values(any_db_url, "SELECT health FROM child WHERE id = 1") == ["pinda"]
    assert values(any_db_url, "SELECT name FROM contact WHERE id = 30") != ["Ouder3"]
    assert report.outcome is Outcome.PARTIAL, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1, "contact": 1}]


@pytest.mark.parametrize(("action", "tenant"), [("CASCADE", 2), ("SET NULL", 1)])
def test_a_referencing_row_outside_the_schema_blocks_the_anonymised_row(
    tmp_path: Path, outside: tuple[str, str], state: StateStore, action: str, tenant: int
) -> None:
    """Another schema's (database's) memo is neither counted nor checked, whichever tenant
    it is of: child 1 stays, child 3 is anonymised."""
    url, other = outside
    children(url)
    q = '"' if url.startswith("postgresql") else "`"
    product = "public" if q == '"' else str(sa.make_url(url).database)
    execute(
        url,
        f"CREATE TABLE {q}{other}{q}.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER, "
        f"ref_name VARCHAR(40), CONSTRAINT memo_name FOREIGN KEY (ref_name) "
        f"REFERENCES {q}{product}{q}.child (name) ON UPDATE {action})",
        f"INSERT INTO {q}{other}{q}.memo VALUES (1, {tenant}, 'Kind1')",
    )
    cfg = config(tmp_path, product=masking())

    [report], recorder = run(cfg, url, state, customer="kdv-a")

    assert values(url, f"SELECT ref_name FROM {q}{other}{q}.memo") == ["Kind1"]
    found = names(url)
    assert found[1] == "Kind1" and found[3] != "Kind3"
    assert report.outcome is Outcome.PARTIAL, report.error
    [blocked] = recorder.of(BatchBlocked)
    assert any(f"{other}.memo" in e for e in blocked.errors), blocked.errors
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 1}]


def test_a_composite_keys_unchanged_tenant_column_reaches_nothing_further(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Tenant-safe composite keys: `memo(tenant_id, child_name) → child(tenant_id, name)`
    and `note(tenant_id, memo_id) → memo(tenant_id, id)`, both ON UPDATE CASCADE. The mask
    of `child.name` rewrites memo's `child_name` and nothing of its tenant or id, so no note
    changes. Before, every column of memo's key was taken for changed, and the trail counted
    a note that nothing changed ({"child": 2, "memo": 1, "note": 1})."""
    execute(
        any_db_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name "
        "VARCHAR(80), health VARCHAR(40), left_on DATE, CONSTRAINT child_tn UNIQUE "
        "(tenant_id, name))",
        (
            "INSERT INTO child VALUES (:i, 1, :n, 'pinda', :d)",
            [{"i": i, "n": f"Kind{i}", "d": d} for i, d in ((1, OLD), (2, RECENT), (3, OLD))],
        ),
        "CREATE TABLE memo (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, child_name "
        "VARCHAR(80), CONSTRAINT memo_ti UNIQUE (tenant_id, id), CONSTRAINT memo_child "
        "FOREIGN KEY (tenant_id, child_name) REFERENCES child (tenant_id, name) ON UPDATE "
        "CASCADE)",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, memo_id "
        "INTEGER, CONSTRAINT note_memo FOREIGN KEY (tenant_id, memo_id) REFERENCES memo "
        "(tenant_id, id) ON UPDATE CASCADE)",
        "INSERT INTO memo VALUES (1, 1, 'Kind1')",
        "INSERT INTO note VALUES (1, 1, 1)",
    )
    cfg = config(tmp_path, product=masking())

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    found = names(any_db_url)
    assert found[1] != "Kind1" and found[3] != "Kind3"
    assert values(any_db_url, "SELECT child_name FROM memo") == [found[1]]
    assert values(any_db_url, "SELECT memo_id FROM note") == [1]
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert [e.rows for e in recorder.of(BatchApplied)] == [{"child": 2, "memo": 1}]
