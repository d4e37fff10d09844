"""Tenant values compared exactly as the database stores them, on SQLite, PostgreSQL, MariaDB.

Each small input of issue 6 is a test: a shared table whose key holds the tenant column, with
a dependent; a VARCHAR tenant column with customers `1042` and `'1042b'`; an integer tenant
column with customers `1042` and `"01042"`; text tenants that a case- and accent-insensitive
collation would widen. Every test runs the worker as `run --once` does, on a configuration
of its own, and asserts by key which rows changed and that every other row is unchanged.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tests.integration.own_config import rows, validate, write_config
from tests.support import run_once
from worker.errors import ConfigError
from worker.events import Outcome
from worker.state import StateStore

D = dt.date
OLD, RECENT = D(2020, 1, 1), D(2026, 11, 1)  # before and after the 12-month cutoff (2025-11-28)
ENV_NAME = "KIDS_DATABASE_URL"

SHARED_PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: organisation_id}
subjects:
  child:
    kind: child
    table: child
    key: [KEY]
    columns: {name: name}
    dates: {left: left_on}
    dependents:
      - {table: child_photo, references: {REFERENCES}, columns: {file_name: photo}}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""


def product(key: str = "organisation_id, id", references: str = "child_id: id") -> str:
    return SHARED_PRODUCT.replace("KEY", key).replace("REFERENCES", references)


def customer(tenant: str) -> str:
    return f"timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: {tenant}\n"


def create(url: str, tenant_type: sa.types.TypeEngine[Any]) -> None:
    """child(organisation_id, id, name, left_on) keyed by both; child_photo with its own
    organisation_id, pointing at child by child_id."""
    md = sa.MetaData()
    sa.Table(
        "child",
        md,
        sa.Column("organisation_id", tenant_type, primary_key=True),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50)),
        sa.Column("left_on", sa.Date, index=True),
    )
    sa.Table(
        "child_photo",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("organisation_id", tenant_type, nullable=False),
        sa.Column("child_id", sa.Integer, nullable=False),
        sa.Column("file_name", sa.String(50)),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
    finally:
        engine.dispose()


def seed(
    url: str, children: list[tuple[Any, int, Any]], photos: list[tuple[int, Any, int]]
) -> None:
    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        md.reflect(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(md.tables["child"]),
                [
                    {"organisation_id": o, "id": i, "name": f"Kind {i}", "left_on": left}
                    for o, i, left in children
                ],
            )
            if photos:
                conn.execute(
                    sa.insert(md.tables["child_photo"]),
                    [
                        {"id": i, "organisation_id": o, "child_id": c, "file_name": f"{i}.jpg"}
                        for i, o, c in photos
                    ],
                )
    finally:
        engine.dispose()


def children(url: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return rows(url, "child", ("organisation_id", "id"))


def photos(url: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return rows(url, "child_photo", ("id",))


def without(
    before: dict[tuple[Any, ...], dict[str, Any]], *gone: tuple[Any, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {k: v for k, v in before.items() if k not in gone}


# --- a key that holds the tenant column, and a dependent -------------------------------------


def test_a_dependent_that_leaves_out_the_tenant_column_is_refused(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Key [organisation_id, id], child_photo references {child_id: id}: validate exits 2 at
    those references with the fix (already when the files are read: the product is set
    aside and no run touches it); the connector refuses it too (tests/contract)."""
    create(any_db_url, sa.Integer())
    seed(any_db_url, [(1, 7, OLD), (2, 7, None)], [(1, 1, 7), (2, 2, 7)])
    with pytest.raises(ConfigError, match="leave out the tenant column organisation_id"):
        write_config(tmp_path, product(), {"tenant-one": customer("1")})
    env = {ENV_NAME: any_db_url}

    code, out = validate(tmp_path, env)
    assert code == 2, out
    assert "products/kids.yaml: subjects.child.dependents.0.references (line 12)" in out
    assert "leave out the tenant column organisation_id" in out
    assert "add `organisation_id: organisation_id` to its references" in out


def test_a_shared_key_deletes_only_the_tenants_own_dependents(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Tenant 1's child 7 left in 2020, tenant 2's child 7 is active, one photo each: the run
    of tenant 1 deletes its child and photo only."""
    create(any_db_url, sa.Integer())
    seed(any_db_url, [(1, 7, OLD), (2, 7, None), (1, 8, RECENT)], [(1, 1, 7), (2, 2, 7), (3, 1, 8)])
    references = "child_id: id, organisation_id: organisation_id"
    config = write_config(tmp_path, product(references=references), {"tenant-one": customer("1")})
    env = {ENV_NAME: any_db_url}
    assert validate(tmp_path, env)[0] == 0
    kids, pics = children(any_db_url), photos(any_db_url)

    [report] = run_once(config, env, state)

    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.rules[0].changed == {"child_photo": 1, "child": 1}
    assert children(any_db_url) == without(kids, (1, 7))
    assert photos(any_db_url) == without(pics, (1,))


# --- a VARCHAR tenant column ------------------------------------------------------------------


def text_column(url: str) -> sa.types.TypeEngine[Any]:
    """VARCHAR; on MariaDB in the database's case- and accent-insensitive collation."""
    if url.startswith("mysql"):
        return mysql.VARCHAR(20, collation="utf8mb4_unicode_ci")
    return sa.String(20)


def test_a_text_tenant_column_matches_only_the_exact_value(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """VARCHAR tenants; customers 1042, '1042b' and 'kdv-a'; rows '1042', '1042b', '01042',
    'kdv-a', 'KDV-A', 'kdv-á', 'kdv-a ' all expired: each customer deletes its own only."""
    create(any_db_url, text_column(any_db_url))
    values = ["1042", "1042b", "01042", "kdv-a", "KDV-A", "kdv-á", "kdv-a "]
    seed(
        any_db_url,
        [(v, i, OLD) for i, v in enumerate(values, 1)] + [("1042", 50, RECENT)],
        [(i, v, i) for i, v in enumerate(values, 1)],
    )
    references = "child_id: id, organisation_id: organisation_id"
    customers = {"a": customer("1042"), "b": customer("'1042b'"), "c": customer("kdv-a")}
    config = write_config(tmp_path, product(references=references), customers)
    env = {ENV_NAME: any_db_url}
    assert validate(tmp_path, env)[0] == 0
    kids, pics = children(any_db_url), photos(any_db_url)

    reports = run_once(config, env, state)

    assert [(r.customer, r.outcome, r.error) for r in reports] == [
        (c, Outcome.SUCCEEDED, None) for c in ("a", "b", "c")
    ]
    assert [r.rules[0].changed for r in reports] == [{"child_photo": 1, "child": 1}] * 3
    assert children(any_db_url) == without(kids, ("1042", 1), ("1042b", 2), ("kdv-a", 4))
    assert photos(any_db_url) == without(pics, (1,), (2,), (4,))


def test_a_latin1_column_is_compared_exactly_too(mariadb_url: str, tmp_path: Path) -> None:
    """MariaDB: a latin1 tenant column in its case- and accent-insensitive collation; the
    binary comparison in utf8mb4 still tells 'kdv-a' from 'KDV-A' and 'kdv-á'."""
    create(mariadb_url, mysql.VARCHAR(20, charset="latin1", collation="latin1_swedish_ci"))
    seed(mariadb_url, [("kdv-a", 1, OLD), ("KDV-A", 2, OLD), ("kdv-á", 3, OLD)], [])
    references = "child_id: id, organisation_id: organisation_id"
    config = write_config(tmp_path, product(references=references), {"c": customer("kdv-a")})
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    try:
        kids = children(mariadb_url)
        [report] = run_once(config, {ENV_NAME: mariadb_url}, state)
    finally:
        state.close()
    assert report.rules[0].changed == {"child": 1}  # tables with nothing changed are left out
    assert children(mariadb_url) == without(kids, ("kdv-a", 1))


# --- an integer tenant column -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "fix"), [('"01042"', "write 1042"), ('"1042abc"', "e.g. 1042")]
)
def test_a_tenant_text_that_is_no_exact_integer_is_refused(
    any_db_url: str, tmp_path: Path, state: StateStore, written: str, fix: str
) -> None:
    """Integer tenants; customer b writes "01042" (or "1042abc") for tenant 1042: validate
    exits 2 at b's tenant; b's run fails and changes nothing (1042's rows stay); customer a
    (tenant 7) runs as usual. (Next to a customer of 1042, "01042" is already refused
    offline as the same tenant: tests/unit/test_config_tenants.py.)"""
    create(any_db_url, sa.Integer())
    seed(any_db_url, [(1042, 1, OLD), (1042, 2, RECENT), (7, 3, OLD)], [(1, 1042, 1), (2, 7, 3)])
    references = "child_id: id, organisation_id: organisation_id"
    customers = {"a": customer("7"), "b": customer(written)}
    config = write_config(tmp_path, product(references=references), customers)
    env = {ENV_NAME: any_db_url}

    code, out = validate(tmp_path, env)
    assert code == 2, out
    assert "customers/b.yaml: products.kids.tenant (line 5)" in out
    assert "child.organisation_id holds whole numbers" in out
    assert fix in out
    assert "customers/a.yaml" not in out

    kids, pics = children(any_db_url), photos(any_db_url)
    by_customer = {r.customer: r for r in run_once(config, env, state, customer="b")}
    assert by_customer["b"].outcome is Outcome.FAILED
    assert "holds whole numbers" in (by_customer["b"].error or "")
    assert (children(any_db_url), photos(any_db_url)) == (kids, pics)

    [first] = run_once(config, env, state, customer="a")
    assert first.outcome is Outcome.SUCCEEDED, first.error
    assert children(any_db_url) == without(kids, (7, 3))
    assert photos(any_db_url) == without(pics, (2,))


def test_validate_counts_rows_per_customer_and_warns_about_a_tenant_without_rows(
    any_db_url: str, tmp_path: Path
) -> None:
    """Live validate says how many rows each customer has and warns about a tenant value
    that has none at all (a typo?), without failing."""
    create(any_db_url, sa.Integer())
    seed(any_db_url, [(1042, 1, OLD), (1042, 2, RECENT)], [(1, 1042, 1)])
    references = "child_id: id, organisation_id: organisation_id"
    customers = {"a": customer("1042"), "z": customer("1024")}
    write_config(tmp_path, product(references=references), customers)

    code, out = validate(tmp_path, {ENV_NAME: any_db_url})

    assert code == 0, out
    assert "a × kids: 2 row(s) with organisation_id 1042 (child 2)" in out
    assert "z × kids: 0 row(s) with organisation_id 1024 (child 0)" in out
    assert "warning: kids: no row in child has organisation_id 1024 of z: a typo" in out
    assert "warning: kids: no row in child has organisation_id 1042" not in out
