"""`plan`'s foreseen blocked rows (connectors/sqlforesee.py) against what a run then does, for
keys the other plan tests do not hold: a NULL in a walked key column, and a self-key of
non-ASCII text in a latin1 column on MariaDB.

- A recent row whose own key to the table is NULL (nothing referenced) put a NULL in the
  IN list a blocked way walks back, so `x NOT IN (…, NULL)` was unknown for every eligible
  row not blocked: the plan counted none of them as going (would change nothing) while the
  run deleted them. Now an unknown is taken for not blocked (connectors/sqlpreview.py).
- `spread` names the blocked rows by key over an alias of the table; on MariaDB the latin1
  key column's values were not converted to its character set there (connectors/
  sqlchange.py `_other_charset` read only a plain table), so the chain was not followed: the
  plan said 2 blocked and 3 going where the run blocks 4 and deletes 1.

On SQLite, PostgreSQL and MariaDB (the latin1 key on MariaDB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import kidsapp
from tests.gate_support import OLD, RECENT
from tests.integration.test_plan_blocked import children, plan_and_run
from tests.rawsql import execute, ids
from worker.state import StateStore


def test_a_recent_row_with_no_sibling_leaves_the_rest_going(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """Recent child 2 → expired child 1 (CASCADE), recent child 4 references nothing,
    expired child 3 is alone: the run blocks 1 and deletes 3, and the plan says so (before:
    1 blocked and nothing would change)."""
    children(
        any_db_url, {1: ("old", None), 2: ("recent", 1), 3: ("old", None), 4: ("recent", None)}
    )
    planned, _, _, blocked, applied = plan_and_run(tmp_path, any_db_url, state)
    [plan] = planned.rules
    assert (blocked, applied, ids(any_db_url, "child")) == (1, {"child": 1}, {1, 2, 4})
    assert (plan.would_block, plan.would_change) == (blocked, applied)


def test_a_null_part_of_a_composite_key_leaves_the_rest_going(
    tmp_path: Path, any_db_url: str, state: StateStore
) -> None:
    """child(pa, pb) → child(a, b) ON DELETE CASCADE: recent 6 → expired 5 blocks 5; recent
    3's (2, NULL) and expired 5's (4, NULL) reference nothing; expired 2 → 1 and 4 go
    (2's own (a, b) has a NULL part)."""
    execute(
        any_db_url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, "
        "name VARCHAR(40), health VARCHAR(40), left_on DATE, a INTEGER, b INTEGER, "
        "pa INTEGER, pb INTEGER, UNIQUE (a, b), "
        "FOREIGN KEY (pa, pb) REFERENCES child (a, b) ON DELETE CASCADE)",
        (
            "INSERT INTO child (id, tenant_id, left_on, a, b, pa, pb) "
            "VALUES (:i, 1, :d, :a, :b, :pa, :pb)",
            [
                {"i": i, "d": OLD if d == "old" else RECENT, "a": a, "b": b, "pa": pa, "pb": pb}
                for i, d, a, b, pa, pb in [
                    (1, "old", 1, 1, None, None),
                    (2, "old", 2, None, 1, 1),
                    (3, "recent", 3, 3, 2, None),
                    (4, "old", 4, 4, None, None),
                    (5, "old", 5, 5, 4, None),
                    (6, "recent", 6, 6, 5, 5),
                ]
            ],
        ),
    )
    planned, _, _, blocked, applied = plan_and_run(tmp_path, any_db_url, state)
    [plan] = planned.rules
    assert (blocked, applied, ids(any_db_url, "child")) == (1, {"child": 3}, {3, 5, 6})
    assert (plan.would_block, plan.would_change) == (blocked, applied)


@pytest.mark.mariadb
def test_a_latin1_text_self_key_is_followed(
    tmp_path: Path, mariadb_url: str, state: StateStore
) -> None:
    """Key (tenant_id, code), code latin1; (tenant_id, pcode) → (tenant_id, code) ON DELETE
    CASCADE. Recent café → zoë → über and recent crème → naïve → façade (all four expired
    blocked); expired plain goes."""
    execute(
        mariadb_url,
        "CREATE TABLE child (tenant_id INTEGER NOT NULL, "
        "code VARCHAR(20) CHARACTER SET latin1 NOT NULL, name VARCHAR(40), "
        "health VARCHAR(40), left_on DATE, pcode VARCHAR(20) CHARACTER SET latin1, "
        "PRIMARY KEY (tenant_id, code), FOREIGN KEY (tenant_id, pcode) "
        "REFERENCES child (tenant_id, code) ON DELETE CASCADE)",
        (
            "INSERT INTO child (tenant_id, code, left_on, pcode) VALUES (1, :c, :d, :p)",
            [
                {"c": c, "d": OLD if d == "old" else RECENT, "p": p}
                for c, d, p in [
                    ("über", "old", None),
                    ("zoë", "old", "über"),
                    ("café", "recent", "zoë"),
                    ("façade", "old", None),
                    ("naïve", "old", "façade"),
                    ("crème", "recent", "naïve"),
                    ("plain", "old", None),
                ]
            ],
        ),
    )
    product: dict[str, Any] = kidsapp.mapping()
    product["subjects"]["child"]["key"] = ["tenant_id", "code"]
    planned, text, _, blocked, applied = plan_and_run(tmp_path, mariadb_url, state, product)
    [plan] = planned.rules
    assert (blocked, applied) == (4, {"child": 1})
    assert (plan.would_block, plan.would_change) == (blocked, applied)
    assert "zoë" not in text and "café" not in text
