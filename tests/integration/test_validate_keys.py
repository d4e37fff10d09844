"""A mapped key on a nullable column (tester's fault B), on SQLite, PostgreSQL and MariaDB:
`key: [ext_id]` where ext_id is UNIQUE but allows NULL. A unique index allows many NULLs, so
`validate` exits 2 at the subject's `key` naming acct.ext_id and the fix; a run fails the pair
with that message (never an unexpected crash) and changes no row of either tenant. The same
column NOT NULL passes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.own_config import rows, validate, write_config
from tests.support import run_once
from worker.state import StateStore

ENV = "KIDS_DATABASE_URL"
CUSTOMERS = {
    "kdv-a": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n",
    "kdv-b": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 2\n",
}
PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
subjects:
  acct:
    kind: child
    table: acct
    key: [ext_id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.acct.left
    subject: acct
    after: {date: left, period: 12m}
    action: anonymise
    with: {name: {fixed: x}}
"""


def create(url: str, *, nullable: bool) -> None:
    md = sa.MetaData()
    acct = sa.Table(
        "acct",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("org", sa.Integer, nullable=False),
        sa.Column("ext_id", sa.Integer, nullable=nullable, unique=True),
        sa.Column("name", sa.String(100)),
        sa.Column("left_on", sa.Date, index=True),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        old = dt.date(2020, 1, 1)
        with engine.begin() as conn:
            conn.execute(
                acct.insert(),
                [
                    {"id": 1, "org": 1, "ext_id": None if nullable else 11, "name": "n1"},
                    {"id": 2, "org": 1, "ext_id": None if nullable else 12, "name": "n2"},
                    {"id": 3, "org": 1, "ext_id": 5, "name": "n3"},
                    {"id": 4, "org": 2, "ext_id": None if nullable else 14, "name": "m1"},
                ],
            )
            conn.execute(acct.update().values(left_on=old))
    finally:
        engine.dispose()


def test_a_key_on_a_nullable_unique_column_is_refused(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """validate: exit 2 at subjects.acct.key, naming acct.ext_id, NOT NULL and another key;
    run: the pair fails with the same message and every row stays as it was."""
    create(any_db_url, nullable=True)
    config = write_config(tmp_path, PRODUCT, CUSTOMERS)
    code, out = validate(tmp_path, {ENV: any_db_url})
    assert code == 2, out
    assert "products/kids.yaml: subjects.acct.key (line 8): acct.ext_id: this key column " in out
    assert "allows NULL: a key must be NOT NULL (a unique index allows many NULLs" in out
    assert "make acct.ext_id NOT NULL (after giving its NULL rows a value), or map another " in out

    before = rows(any_db_url, "acct", ("id",))
    [report] = run_once(config, {ENV: any_db_url}, state, customer="kdv-a")
    assert report.error is not None
    assert "unexpected" not in report.error
    assert "acct.ext_id: this key column allows NULL" in report.error
    assert rows(any_db_url, "acct", ("id",)) == before


def test_a_key_on_a_not_null_unique_column_passes(any_db_url: str, tmp_path: Path) -> None:
    create(any_db_url, nullable=False)
    write_config(tmp_path, PRODUCT, CUSTOMERS)
    code, out = validate(tmp_path, {ENV: any_db_url})
    assert code == 0, out
    assert "allows NULL" not in out


@pytest.mark.parametrize("customer", ["kdv-a"])
def test_a_run_with_a_not_null_key_changes_the_tenants_rows_only(
    any_db_url: str, tmp_path: Path, state: StateStore, customer: str
) -> None:
    """Control: with ext_id NOT NULL, tenant 1's three rows are anonymised; tenant 2's stays."""
    create(any_db_url, nullable=False)
    config = write_config(tmp_path, PRODUCT, CUSTOMERS)
    before = rows(any_db_url, "acct", ("id",))
    [report] = run_once(config, {ENV: any_db_url}, state, customer=customer)
    assert report.error is None, report.error
    after = rows(any_db_url, "acct", ("id",))
    assert after == {k: (v | {"name": "x"} if v["org"] == 1 else v) for k, v in before.items()}
