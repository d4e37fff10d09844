"""A table without a key (`key: []`) that a foreign key with an acting ON DELETE points at
(CASCADE, SET NULL, SET DEFAULT; its own key to itself included) is not deleted from: its
batches delete by the row's locator, so what the key deletes or changes could be neither
counted in the audit nor kept from reaching a row outside the batch. Before, deleting an
expired row deleted a recent row pointing at it (`child.parent → child.id` CASCADE), and the
trail counted one row where two went. `validate` says so at the rule's `action` (exit 2),
naming the key to map; a run fails the rule with nothing changed.

On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kidsapp
from tests.gate_support import OLD, RECENT, config, run
from tests.integration.own_config import validate
from tests.rawsql import count, execute
from worker.events import BatchApplied, Outcome
from worker.state import StateStore


def create(url: str, where: str) -> None:
    """child(id UNIQUE, no primary key) with expired 1 and recent 2 pointing at it, through
    child(parent) → child(id) (`where` "self") or note(child_id) → child(id) ("other"),
    ON DELETE CASCADE."""
    statements = [
        "CREATE TABLE child (id INTEGER NOT NULL UNIQUE, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE, parent INTEGER"
        + (
            ", FOREIGN KEY (parent) REFERENCES child (id) ON DELETE CASCADE)"
            if where == "self"
            else ")"
        ),
        "CREATE INDEX ix_child_tenant_left ON child (tenant_id, left_on)",
        f"INSERT INTO child VALUES (1, 1, 'Kind', 'pinda', '{OLD}', NULL)",
        f"INSERT INTO child VALUES (2, 1, 'Kind', 'pinda', '{RECENT}', 1)",
    ]
    if where == "other":
        statements += [
            "CREATE TABLE note (id INTEGER PRIMARY KEY, child_id INTEGER NOT NULL "
            "REFERENCES child (id) ON DELETE CASCADE)",
            "INSERT INTO note VALUES (10, 1)",
        ]
    execute(url, *statements)


@pytest.mark.parametrize("where", ["self", "other"])
def test_a_keyless_table_an_acting_key_points_at_is_not_deleted_from(
    tmp_path: Path, any_db_url: str, state: StateStore, where: str
) -> None:
    create(any_db_url, where)
    product = kidsapp.mapping()
    product["subjects"]["child"]["key"] = []
    cfg = config(tmp_path, product=product)
    code, out = validate(tmp_path / "config", {kidsapp.URL_ENV: any_db_url})
    assert code == 2, out
    assert "has no key (`key: []`)" in out and "`key: [id]`" in out

    [report], recorder = run(cfg, any_db_url, state, customer="kdv-a")

    assert report.outcome is Outcome.FAILED
    assert "`key: [id]`" in (report.error or "")
    assert count(any_db_url, "child") == 2
    if where == "other":
        assert count(any_db_url, "note") == 1
    assert recorder.of(BatchApplied) == []
