"""A foreign key from a table in another schema (PostgreSQL) to a mapped table: its ON
DELETE CASCADE must be seen by the ON DELETE checks (connectors/sqlreach.py,
connectors/sqlrefuse.py) like one in the default schema. `other.memo` of tenant 2 points at
expired child 1 of tenant 1: deleting child 1 would delete tenant 2's memo, so the delete
must be refused (blocked, run partial) as it is for a table on the search path.

connectors/sqlschema.py `all_foreign_keys` reads the keys of the default schema's tables
only (and drops those referring to another schema), so this key is never seen: the run
succeeds, tenant 2's memo goes with child 1, and the trail counts none of it. The schema
fingerprint (connectors/sqlstamp.py) does include it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kidsapp
from tests.gate_support import config, run
from tests.integration.test_cached_keys import create
from tests.rawsql import execute, ids
from worker.events import BatchBlocked, Outcome
from worker.state import StateStore


@pytest.mark.postgres
@pytest.mark.xfail(
    strict=True,
    reason="connectors/sqlschema.py all_foreign_keys reads the default schema's keys only: "
    "a CASCADE from another schema's table deletes another tenant's row, uncounted",
)
def test_a_cascade_into_another_schema_is_refused(
    tmp_path: Path, pg_url: str, state: StateStore
) -> None:
    create(pg_url, "CASCADE")
    execute(
        pg_url,
        "CREATE SCHEMA other",
        "CREATE TABLE other.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "child_id INTEGER REFERENCES public.child (id) ON DELETE CASCADE)",
        "INSERT INTO other.memo VALUES (1, 2, 1)",
    )
    cfg = config(tmp_path, product=kidsapp.mapping())

    [report], recorder = run(cfg, pg_url, state, customer="kdv-a")

    assert ids(pg_url, "other.memo") == {1}  # tenant 2's row stays
    assert 1 in ids(pg_url, "child")
    assert report.outcome is Outcome.PARTIAL, report.error
    assert recorder.of(BatchBlocked)
