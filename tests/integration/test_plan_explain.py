"""`plan --explain`: each rule's selection as the database plans it, and the index advice.

A shared `child` table of 12,000 rows (two tenants) whose time basis no index serves: the
plan reads the table whole and `plan --explain` prints the `CREATE INDEX` on (tenant column,
time basis). After that very statement is run (and statistics refreshed), the database's plan
uses it and no index is advised. Nothing changes in either case. On each backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from tests.integration.own_config import execute, rows, write_config
from worker.cli import main

PRODUCT = """\
product: kids
tenancy: {column: organisation_id}
database: {url_env: KIDS_URL}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""
CUSTOMER = "products:\n  kids:\n    tenant: 1\n"
ROWS = 12_000


def seed(url: str) -> None:
    """child: ROWS rows over tenants 1 and 2, every tenth one expired; an index on the tenant
    column alone (as real schemas have), none on the time basis."""
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL, "
        "name VARCHAR(50), left_on DATE)",
        "CREATE INDEX child_org ON child (organisation_id)",
    )
    values = [
        {
            "id": i,
            "org": 1 + i % 2,
            "name": f"Kind {i}",
            "left_on": "2020-01-01" if i % 10 == 0 else "2026-11-01",
        }
        for i in range(1, ROWS + 1)
    ]
    execute(url, "INSERT INTO child VALUES (:id, :org, :name, :left_on)", params=values)
    analyse(url)


def analyse(url: str) -> None:
    """Refresh the optimiser's statistics (its row estimate and the new index's use)."""
    backend = sa.make_url(url).get_backend_name()
    statement = {"postgresql": "ANALYZE child", "mysql": "ANALYZE TABLE child"}.get(backend)
    execute(url, statement or "ANALYZE")


def explain(root: Path, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["plan", "--explain", "--config", str(root), "--at", "2026-11-29T12:00:00Z"],
        env={"KIDS_URL": url, "RETENTION_STATE_URL": f"sqlite:///{root / 'state.db'}"},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_explain_advises_the_index_a_large_table_lacks_and_not_once_it_is_there(
    tmp_path: Path, any_db_url: str
) -> None:
    write_config(tmp_path, PRODUCT, {"a": CUSTOMER})
    seed(any_db_url)
    before = rows(any_db_url, "child", ("id",))

    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    assert "rule kids.child.left on child:" in out
    advice = re.search(r"advice: .*create one: (CREATE INDEX .*;)", out)
    assert advice is not None, out
    statement = advice.group(1)
    assert re.search(r"\(\W?organisation_id\W?, \W?left_on\W?\)", statement), statement
    assert "1 index advised" in out
    assert "Kind " not in out  # names, plans and estimates only: never a row's value

    execute(any_db_url, statement.rstrip(";"))
    analyse(any_db_url)
    code, out = explain(tmp_path, any_db_url)
    assert code == 0, out
    assert "advice:" not in out and "0 indexes advised" in out, out
    assert "the selection uses an index" in out, out
    assert rows(any_db_url, "child", ("id",)) == before  # plan --explain changes nothing


def test_explain_refuses_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", "--explain", "--format", "json"])
    assert result.exit_code == 2
    assert "--explain prints text" in result.output
