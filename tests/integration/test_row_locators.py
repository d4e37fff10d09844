"""Deletes by a row's physical locator (connectors/sqlfast.py, `SqlConnector.delete_expired`)
where the locator does not name one row:

- PostgreSQL's `ctid` is unique only within one physical table: on a partitioned table, or
  one with inheritance children, a locator chosen in one partition also names the row at the
  same place of every other (another tenant's, one inside its period);
- SQLite's `rowid` means a column of that name where the table has one (and `_rowid_`,
  `oid` likewise), whose values need not be unique.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.integration.own_config import validate
from worker.configload import Config
from worker.events import BatchIntent, Outcome, RuleEvaluated
from worker.state import StateStore

PARTITIONED = "PARTITION BY LIST (tenant_id)"
COLUMNS = "id integer NOT NULL, tenant_id integer NOT NULL, name text, health text, left_on date"


def _execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _insert(url: str, rows: list[tuple[int, int, object]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for i, t, d in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO child (id, tenant_id, name, health, left_on) "
                        "VALUES (:i, :t, 'Kind', 'pinda', :d)"
                    ),
                    {"i": i, "t": t, "d": d},
                )
    finally:
        engine.dispose()


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
    finally:
        engine.dispose()


def _keyed(tmp_path: Path, key: list[str]) -> Config:
    child = {**kidsapp.mapping()["subjects"]["child"], "key": key}
    return config(tmp_path, product=kidsapp.mapping(batch_size=10, subjects={"child": child}))


def test_a_tenant_partitioned_table_keeps_the_other_tenants_rows(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """child partitioned by tenant: kdv-a's two expired rows sit at (0,1) and (0,2) of
    child_1, kdv-b's rows (one expired, one inside its period) at the same places of
    child_2. kdv-a's run deletes its two rows only."""
    _execute(
        pg_url,
        f"CREATE TABLE child ({COLUMNS}, PRIMARY KEY (id, tenant_id)) {PARTITIONED}",
        "CREATE TABLE child_1 PARTITION OF child FOR VALUES IN (1)",
        "CREATE TABLE child_2 PARTITION OF child FOR VALUES IN (2)",
    )
    _insert(pg_url, [(1, 1, OLD), (2, 1, OLD), (10_001, 2, OLD), (10_002, 2, RECENT)])
    cfg = _keyed(tmp_path, ["id", "tenant_id"])

    [report], _ = run(cfg, pg_url, state, customer="kdv-a")

    assert set(kidsapp.rows_by_id(pg_url)) == {10_001, 10_002}, report.error
    assert report.changed == 2


def test_an_inheritance_child_keeps_its_rows_inside_their_period(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """child with an inheriting table child_archive, mapped without a key (`key: []`):
    kdv-a's expired rows 1 and 2 sit at (0,1) and (0,2) of child, its rows 3 (expired) and
    4 (inside its period) at the same places of child_archive, and kdv-b's row 10001 at
    (0,3) of child_archive behind them. kdv-a's run deletes 1, 2 and 3 (a row of the child
    table is a row of child), keeps 4 and 10001, and names exactly three rows in its trail.
    (A key on child is refused: `test_a_key_on_a_table_others_inherit_from_is_refused`.)"""
    _execute(
        pg_url,
        f"CREATE TABLE child ({COLUMNS}, PRIMARY KEY (id))",
        "CREATE TABLE child_archive () INHERITS (child)",
    )
    _insert(pg_url, [(1, 1, OLD), (2, 1, OLD)])
    _execute(
        pg_url,
        "INSERT INTO child_archive (id, tenant_id, left_on) VALUES "
        f"(3, 1, '{OLD}'), (4, 1, '{RECENT}'), (10001, 2, '{OLD}')",
    )
    cfg = _keyed(tmp_path, [])

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert set(kidsapp.rows_by_id(pg_url)) == {4, 10_001}, report.error
    assert report.changed == 3
    assert sum(len(e.key_hashes) for e in recorder.of(BatchIntent)) == 3


def test_a_key_on_a_table_others_inherit_from_is_refused(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """child(id PRIMARY KEY) and child_archive (an extra column) INHERITS (child): the
    primary key holds in child only. kdv-a's row 5 of child is inside its period, its row 5
    of child_archive expired. A run with `key: [id]` is refused by its schema check and
    deletes nothing, and `validate` exits 2 naming INHERITS; the first run, before
    child_archive existed, deleted by that key (the catalog's fingerprint covers the
    inheritance, so the cached reflection is not trusted). (The page path deleted
    `WHERE id IN (5) AND tenant`: both rows, the one inside its period too.)"""
    _execute(pg_url, f"CREATE TABLE child ({COLUMNS}, PRIMARY KEY (id))")
    _insert(pg_url, [(1, 1, OLD), (5, 1, RECENT)])
    cfg = _keyed(tmp_path, ["id"])
    [first], _ = run(cfg, pg_url, state, customer="kdv-a")
    assert sorted(kidsapp.rows_by_id(pg_url)) == [5], first.error
    _execute(pg_url, "CREATE TABLE child_archive (note text) INHERITS (child)")
    _execute(pg_url, f"INSERT INTO child_archive (id, tenant_id, left_on) VALUES (5, 1, '{OLD}')")

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert _count(pg_url, "ONLY child") == _count(pg_url, "child_archive") == 1, report.error
    assert report.outcome is Outcome.FAILED
    assert "INHERITS" in (report.error or "")
    assert recorder.of(BatchIntent) == []
    code, out = validate(tmp_path / "config", {kidsapp.URL_ENV: pg_url})
    assert code == 2 and "inherit from child" in out, out


def test_a_keyless_partitioned_table_loses_only_the_tenants_expired_rows(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    """A table without a key (`key: []`), partitioned by tenant: kdv-a's run deletes its
    expired rows of child_1 and none of child_2 (kdv-b's expired row and its row inside its
    period sit at the same places)."""
    _execute(
        pg_url,
        f"CREATE TABLE child ({COLUMNS}) {PARTITIONED}",
        "CREATE TABLE child_1 PARTITION OF child FOR VALUES IN (1)",
        "CREATE TABLE child_2 PARTITION OF child FOR VALUES IN (2)",
    )
    _insert(
        pg_url, [(1, 1, OLD), (2, 1, OLD), (3, 1, RECENT), (10_001, 2, OLD), (10_002, 2, RECENT)]
    )
    cfg = _keyed(tmp_path, [])

    [report], _ = run(cfg, pg_url, state, customer="kdv-a")

    assert sorted(kidsapp.rows_by_id(pg_url)) == [3, 10_001, 10_002], report.error
    assert report.changed == 2


@pytest.mark.parametrize("shadowed", [["rowid"], ["rowid", "_rowid_", "oid"]])
def test_a_sqlite_column_named_rowid_names_no_row_to_delete(
    tmp_path: Path, sqlite_url: str, state: StateStore, shadowed: list[str]
) -> None:
    """A keyless SQLite table with a column `rowid` (and `_rowid_`, `oid`), 7 in every row:
    kdv-a's run deletes its expired row 1 only, not its row 2 inside its period nor any
    of kdv-b's rows. (`rowid IN (SELECT rowid … LIMIT n)` compared the column's values and
    deleted every row.)"""
    columns = ", ".join(f"{name} INTEGER" for name in shadowed)
    _execute(sqlite_url, f"CREATE TABLE child ({columns}, {COLUMNS})")
    rows = [(1, 1, OLD), (2, 1, RECENT), (10_001, 2, OLD), (10_002, 2, RECENT)]
    _insert(sqlite_url, rows)
    _execute(sqlite_url, *(f"UPDATE child SET {name} = 7" for name in shadowed))
    cfg = _keyed(tmp_path, [])

    [report], _ = run(cfg, sqlite_url, state, customer="kdv-a")

    assert sorted(kidsapp.rows_by_id(sqlite_url)) == [2, 10_001, 10_002], report.error
    assert report.changed == 1


@pytest.mark.parametrize("between", ["", " /* kept for ever */", "\n-- no rowid\n"])
@pytest.mark.parametrize("primary", ["id", "tenant_id, id"])
def test_a_sqlite_table_without_rowid_is_cleared_by_its_primary_key(
    tmp_path: Path, sqlite_url: str, state: StateStore, primary: str, between: str
) -> None:
    """A keyless mapping (`key: []`) of a SQLite table `WITHOUT ROWID` (primary key `id`, or
    `(tenant_id, id)`; a comment before `WITHOUT ROWID`, or none), which has no rowid to
    place a row by: kdv-a's run deletes its expired rows 1 and 3 by their primary key,
    keeps its row 2 inside its period and kdv-b's rows, and names the two in its trail.
    (The DELETE asked for a column rowid and the rule failed with an SQL error; with a
    comment it still did, as SQLAlchemy's reflection reads `WITHOUT ROWID` from the
    `CREATE` text only right after its closing parenthesis.)"""
    _execute(
        sqlite_url,
        f"CREATE TABLE child ({COLUMNS}, PRIMARY KEY ({primary})){between} WITHOUT ROWID",
    )
    _insert(sqlite_url, [(1, 1, OLD), (2, 1, RECENT), (3, 1, OLD), (10_001, 2, OLD)])
    cfg = _keyed(tmp_path, [])

    [report], recorder = run(cfg, sqlite_url, state, customer="kdv-a")

    assert sorted(kidsapp.rows_by_id(sqlite_url)) == [2, 10_001], report.error
    assert report.changed == 2
    assert sum(len(e.key_hashes) for e in recorder.of(BatchIntent)) == 2


@pytest.mark.parametrize("key", [["id", "tenant_id"], []])
def test_a_multi_level_partitioned_table_is_cleared_partition_by_partition(
    tmp_path: Path, pg_url: str, state: StateStore, key: list[str]
) -> None:
    """child LIST-partitioned by tenant, tenant 1's partition RANGE-partitioned by id, one
    range HASH-partitioned again, with a DEFAULT partition at both levels: 72 expired rows of
    kdv-a spread over five leaf tables, batches of 7. Keyed (the page path, by key) and
    keyless (one leaf table per batch): every expired row of kdv-a goes, its rows inside
    their period and every row of tenants 2 and 3 (same places in other leaves) stay, the
    trail names 72 rows, and 0 are left."""
    primary = ", PRIMARY KEY (id, tenant_id)" if key else ""
    _execute(
        pg_url,
        f"CREATE TABLE child ({COLUMNS}{primary}) {PARTITIONED}",
        "CREATE TABLE c1 PARTITION OF child FOR VALUES IN (1) PARTITION BY RANGE (id)",
        "CREATE TABLE c1a PARTITION OF c1 FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE c1b PARTITION OF c1 FOR VALUES FROM (100) TO (200) PARTITION BY HASH (id)",
        "CREATE TABLE c1b0 PARTITION OF c1b FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "CREATE TABLE c1b1 PARTITION OF c1b FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
        "CREATE TABLE c1d PARTITION OF c1 DEFAULT",
        "CREATE TABLE cd PARTITION OF child DEFAULT",
    )
    rows = [
        (start + i, tenant, RECENT if i % 5 == 0 else OLD)
        for i in range(1, 31)
        for start, tenant in ((0, 1), (100, 1), (300, 1), (10_000, 2), (20_000, 3))
    ]
    _insert(pg_url, rows)
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(
            batch_size=7, subjects={"child": {**kidsapp.mapping()["subjects"]["child"], "key": key}}
        ),
    )

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    kept = sorted(i for i, t, d in rows if t != 1 or d == RECENT)
    assert sorted(kidsapp.rows_by_id(pg_url)) == kept, report.error
    assert report.changed == 72
    assert sum(len(e.key_hashes) for e in recorder.of(BatchIntent)) == 72
    after = [e.eligible for e in recorder.of(RuleEvaluated) if e.after_batches]
    assert after == [0], after
