"""Faults a breaker found in the set-based delete batches (connectors/sqlfast.py) and the
batch loop (worker/batches.py::run_batches), kept as tests of their kind:

- a key "proved" unique only by a partial unique index (`… WHERE NOT archived`) may name a
  row of another tenant or a row inside its period together with the expired one: live
  verification refuses such a key (the rule fails, nothing is deleted), and the set-based
  DELETE judges each row it deletes again (tenant, cutoff, conditions), not only its key;
- a row whose key no statement can name (NULL in a SQLite TEXT PRIMARY KEY) ends the
  set-based batches early: the page path then confirms that nothing is left and fails the
  rule naming the NULL key, as it always did, instead of a run that "succeeds" with
  expired rows left.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from worker.configload import Config
from worker.events import Outcome
from worker.state import StateStore


def _coded_children(url: str, rows: list[tuple[int, int, str, dt.date, bool]]) -> None:
    """child(id, tenant_id, code, name, health, left_on, archived) with the code unique only
    among rows not archived (a partial unique index, as soft-delete schemas have)."""
    meta = sa.MetaData()
    table = sa.Table(
        "child",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("health", sa.String(200)),
        sa.Column("left_on", sa.Date),
        sa.Column("archived", sa.Boolean, nullable=False),
    )
    live = table.c.archived.is_(False)
    sa.Index(
        "ux_child_code_live", table.c.code, unique=True, postgresql_where=live, sqlite_where=live
    )
    engine = sa.create_engine(url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"id": i, "tenant_id": t, "code": c, "left_on": d, "archived": a}
                    for i, t, c, d, a in rows
                ],
            )
    finally:
        engine.dispose()


def _ids(url: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {int(i) for (i,) in conn.execute(sa.text("SELECT id FROM child"))}
    finally:
        engine.dispose()


def _keyed_by_code(tmp_path: Path) -> Config:
    child = {**kidsapp.mapping()["subjects"]["child"], "key": ["code"]}
    return config(tmp_path, product=kidsapp.mapping(subjects={"child": child}))


# Rows: kdv-a (tenant 1) has 1 (code X, expired) and 4 (code Y, expired, archived) and 3
# (code Y, inside its period); kdv-b (tenant 2) has 2 (code X, inside its period, archived).
PARTIAL_UNIQUE_ROWS = [
    (1, 1, "X", OLD, False),
    (2, 2, "X", RECENT, True),
    (3, 1, "Y", RECENT, False),
    (4, 1, "Y", OLD, True),
]


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "pg_url"])
def test_a_set_based_delete_never_deletes_another_tenants_row_sharing_its_key(
    request: pytest.FixtureRequest, url_fixture: str, tmp_path: Path, state: StateStore
) -> None:
    """kdv-a's run may delete only kdv-a's rows: kdv-b's row 2 shares code X with kdv-a's
    expired row 1. (A set-based `DELETE … WHERE code IN (SELECT code … tenant 1 …)` deleted
    it; now the key is refused and the DELETE re-checks the tenant.)"""
    url = request.getfixturevalue(url_fixture)
    cfg = _keyed_by_code(tmp_path)
    _coded_children(url, PARTIAL_UNIQUE_ROWS)

    [report], _ = run(cfg, url, state, customer="kdv-a")

    assert 2 in _ids(url), "kdv-b's row 2 was deleted by kdv-a's run"
    assert report.outcome is Outcome.FAILED
    assert "partial unique index" in (report.error or "")


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "pg_url"])
def test_a_row_inside_its_period_sharing_a_partially_unique_key_is_kept(
    request: pytest.FixtureRequest, url_fixture: str, tmp_path: Path, state: StateStore
) -> None:
    """Row 3 (kdv-a, inside its period) shares code Y with expired row 4. Both paths deleted
    it (the page path's DELETE repeats the tenant but not the expiry check) while live
    verification took a partial unique index as proof that `code` is a key."""
    url = request.getfixturevalue(url_fixture)
    cfg = _keyed_by_code(tmp_path)
    _coded_children(url, PARTIAL_UNIQUE_ROWS)

    run(cfg, url, state, customer="kdv-a")

    assert 3 in _ids(url), "row 3, inside its retention period, was deleted"


def test_a_null_in_a_sqlite_text_primary_key_fails_the_rule_instead_of_ending_it_early(
    tmp_path: Path, sqlite_url: str, state: StateStore
) -> None:
    """SQLite lets a TEXT PRIMARY KEY hold NULL. As docs/configuration.md (`key`) says, a run
    that meets a NULL key part fails the rule with that message. (The set-based DELETE skipped
    the NULL-key rows, NULL IN (…) being not true, read its short batch as the end of the
    selection, and the run succeeded with 0 rows changed while 'a' and 'b' stayed.)"""
    cfg = config(tmp_path, product=kidsapp.mapping(batch_size=3))
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE child (id TEXT PRIMARY KEY, tenant_id INTEGER NOT NULL, "
                "name TEXT, health TEXT, left_on DATE)"
            )
            for key in (None, None, None, "a", "b"):
                conn.exec_driver_sql(
                    "INSERT INTO child (id, tenant_id, left_on) VALUES (?, 1, '2023-06-01')",
                    (key,),
                )
    finally:
        engine.dispose()

    [report], _ = run(cfg, sqlite_url, state, customer="kdv-a")

    assert report.outcome is Outcome.FAILED, (report.outcome, report.changed)
    assert "NULL in its mapped key" in (report.error or "")
