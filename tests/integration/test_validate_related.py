"""`validate` checks the masks of a rule's related rows against the related table, on SQLite,
PostgreSQL and MariaDB (tester's fault A), and a run that fails on related rows names the
related table.

staff(org, id, name) is anonymised; each staff row has contact rows (name VARCHAR(100) NOT
NULL, phone VARCHAR(10), code VARCHAR(20) UNIQUE) anonymised with it. A related mask that
cannot fit exits 2 at `rules.0.related.0.with.COLUMN`, naming contact.COLUMN and a mask that
fits; that mask passes.
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
CATALOGUE = """\
kinds:
  staff: {label: Staff}
categories:
  name: {label: Naam}
  phone: {label: Telefoonnummer}
products:
  kids:
    label: Kids
    annex: A.9
    processes:
      staff: [name, phone]
"""
PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
subjects:
  staff:
    kind: staff
    table: staff
    key: [org, id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.staff.left
    subject: staff
    after: {date: left, period: 12m}
    action: anonymise
    with: {name: "null"}
    related:
      - table: TABLE
        references: {org: org, staff_id: id}
        action: anonymise
        columns: {name: name, phone: phone, code: name}
        with: {WITH}
"""


def product(with_: str, table: str = "contact") -> str:
    return PRODUCT.replace("WITH", with_).replace("TABLE", table)


def create(url: str) -> None:
    """staff and contact, two tenants with the same keys; staff left long ago."""
    md = sa.MetaData()
    staff = sa.Table(
        "staff",
        md,
        sa.Column("org", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100)),
        sa.Column("left_on", sa.Date, index=True),
    )
    contact = sa.Table(
        "contact",
        md,
        sa.Column("org", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("staff_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(10)),
        sa.Column("code", sa.String(20), unique=True),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            for org in (1, 2):
                conn.execute(
                    staff.insert(),
                    [
                        {"org": org, "id": i, "name": f"n{org}{i}", "left_on": dt.date(2020, 1, 1)}
                        for i in (1, 2)
                    ],
                )
                conn.execute(
                    contact.insert(),
                    [
                        {
                            "org": org,
                            "id": i,
                            "staff_id": i,
                            "name": f"c{org}{i}",
                            "phone": f"06{i}",
                            "code": f"code{org}{i}",
                        }
                        for i in (1, 2)
                    ],
                )
    finally:
        engine.dispose()


def check(tmp_path: Path, url: str, text: str) -> tuple[int, str]:
    write_config(tmp_path, text, CUSTOMERS, CATALOGUE)
    return validate(tmp_path, {ENV: url})


@pytest.mark.parametrize(
    ("with_", "column", "why", "fits"),
    [
        pytest.param(
            'name: "null"',
            "name",
            'VARCHAR(100) NOT NULL: "null" writes NULL, which this NOT NULL column refuses',
            'use {fixed: "anonymised"} instead',
            id="null-on-not-null",
        ),
        pytest.param(
            "phone: keyed_hash",
            "phone",
            "keyed_hash writes 25 characters, more than the column's 10",
            'use "null" instead',
            id="keyed-hash-too-long",
        ),
        pytest.param(
            "code: {fixed: x}",
            "code",
            "writes the same text in every anonymised row, which UNIQUE",
            "use {pseudonym: {length: 20}} instead",
            id="fixed-on-unique",
        ),
    ],
)
def test_a_related_mask_that_cannot_fit_is_refused_with_one_that_fits(
    any_db_url: str, tmp_path: Path, with_: str, column: str, why: str, fits: str
) -> None:
    """Exit 2 at the related entry's `with`, naming contact.COLUMN, why, and a mask that
    fits; with that mask validate passes."""
    create(any_db_url)
    code, out = check(tmp_path, any_db_url, product(with_))
    assert code == 2, out
    assert f"products/kids.yaml: rules.0.related.0.with.{column} (line" in out
    assert f"contact.{column} is " in out
    assert why in out
    assert fits in out
    fitting = fits.removeprefix("use ").removesuffix(" instead")
    code, out = check(tmp_path, any_db_url, product(f"{column}: {fitting}"))
    assert code == 0, out


@pytest.mark.parametrize(
    "any_db_url",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
    indirect=True,
)
def test_a_run_failing_on_related_rows_names_the_related_table(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """A keyed hash (25 characters) into contact.phone VARCHAR(10) (validate refuses it; the
    run is started anyway): the database refuses the batch, the rule's error names contact,
    and no row of either table changes, of either tenant."""
    create(any_db_url)
    config = write_config(tmp_path, product("phone: keyed_hash"), CUSTOMERS, CATALOGUE)
    before = {t: rows(any_db_url, t, ("org", "id")) for t in ("staff", "contact")}
    [report] = run_once(config, {ENV: any_db_url}, state, customer="kdv-a")
    errors = [r.error for r in report.rules if r.error] + [report.error or ""]
    message = " ".join(e for e in errors if e)
    assert "related rows of contact (with staff)" in message, message
    assert "rows of staff:" not in message, message
    assert {t: rows(any_db_url, t, ("org", "id")) for t in ("staff", "contact")} == before
