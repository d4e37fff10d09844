"""A tenant value outside the tenant column's range never reaches the database.

INTEGER, SMALLINT, INT UNSIGNED and VARCHAR(5) tenant columns, on the subject's table and on
a dependent's: live `validate` refuses the customer at its `tenant` with the column's type
and the fix; its run fails before any statement with the value is sent (no `smallint out of
range`, no cut text matching another tenant), and every row stays. The other customer's run
changes its own expired rows only. SQLite enforces no declared widths (type affinity): only
the 64-bit range applies there, and the value still matches no other tenant's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tests.integration.own_config import validate, write_config
from tests.integration.test_tenant_values import (
    ENV_NAME,
    OLD,
    RECENT,
    children,
    customer,
    photos,
    product,
    seed,
    without,
)
from tests.support import run_once
from worker.events import Outcome
from worker.state import StateStore

REFERENCES = "child_id: id, organisation_id: organisation_id"


def create(url: str, parent: sa.types.TypeEngine[Any], dependent: sa.types.TypeEngine[Any]) -> None:
    """child(organisation_id PARENT, id) and child_photo(organisation_id DEPENDENT, ...)."""
    md = sa.MetaData()
    sa.Table(
        "child",
        md,
        sa.Column("organisation_id", parent, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50)),
        sa.Column("left_on", sa.Date, index=True),
    )
    sa.Table(
        "child_photo",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("organisation_id", dependent, nullable=False),
        sa.Column("child_id", sa.Integer, nullable=False),
        sa.Column("file_name", sa.String(50)),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
    finally:
        engine.dispose()


def _refused(out: str, name: str, type_name: str) -> None:
    assert f"customers/{name}.yaml: products.kids.tenant (line 5)" in out, out
    assert f"of type {type_name}" in out, out
    assert "correct the customer's tenant" in out, out
    assert f"customer {name}" in out, out


@pytest.mark.parametrize(
    ("written", "bad_at"),
    [("1099511627776", "child"), ("40000", "child_photo")],
    ids=["2**40-on-int", "40000-on-smallint-dependent"],
)
def test_an_integer_tenant_outside_the_column_is_refused_and_never_sent(
    any_db_url: str, tmp_path: Path, state: StateStore, written: str, bad_at: str
) -> None:
    _integer_case(any_db_url, tmp_path, state, written, bad_at)


def test_a_negative_tenant_on_an_unsigned_column_is_refused(
    mariadb_url: str, tmp_path: Path, state: StateStore
) -> None:
    """MariaDB: -1 on INT UNSIGNED."""
    _integer_case(mariadb_url, tmp_path, state, "-1", "unsigned")


def _integer_case(
    any_db_url: str, tmp_path: Path, state: StateStore, written: str, bad_at: str
) -> None:
    """Customer a (tenant 7) and b (`written`, which the column at `bad_at` cannot hold):
    validate refuses b only; b's run sends nothing and changes nothing; a's run changes its
    own expired child and photo only."""
    parent: sa.types.TypeEngine[Any] = (
        mysql.INTEGER(unsigned=True) if bad_at == "unsigned" else sa.Integer()
    )
    create(any_db_url, parent, sa.SmallInteger())
    seed(
        any_db_url,
        [(7, 1, OLD), (7, 2, RECENT), (1, 3, OLD), (0, 4, OLD), (40000, 5, OLD)],
        [(1, 7, 1), (2, 1, 3), (3, 0, 4)],
    )
    customers = {"a": customer("7"), "b": customer(written)}
    config = write_config(tmp_path, product(references=REFERENCES), customers)
    env = {ENV_NAME: any_db_url}
    sqlite = any_db_url.startswith("sqlite")

    code, out = validate(tmp_path, env)
    if sqlite:  # declared widths are not enforced: any 64-bit value fits
        assert code == 0, out
    else:
        assert code == 2, out
        type_name = {"child": "INTEGER", "child_photo": "SMALLINT", "unsigned": "INTEGER"}
        _refused(out, "b", type_name[bad_at])
        assert "customers/a.yaml" not in out

    kids, pics = children(any_db_url), photos(any_db_url)
    [b] = run_once(config, env, state, customer="b")
    if sqlite:
        assert b.outcome is Outcome.SUCCEEDED, b.error
        if written == "40000":  # SQLite's SMALLINT holds it: b's own expired child goes
            kids = without(kids, (40000, 5))
    else:  # 40000: child 5 is b's and expired, but its photos' column cannot hold 40000
        assert b.outcome is Outcome.FAILED
        assert "correct the customer's tenant" in (b.error or "")
        assert "out of range" not in (b.error or "")
    assert (children(any_db_url), photos(any_db_url)) == (kids, pics)

    [a] = run_once(config, env, state, customer="a")
    assert a.outcome is Outcome.SUCCEEDED, a.error
    assert children(any_db_url) == without(kids, (7, 1))
    assert photos(any_db_url) == without(pics, (1,))


def test_a_text_tenant_longer_than_the_column_is_refused_and_matches_no_other_tenant(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """VARCHAR(5) tenants 'kdv-a' and 'kdv-b', all expired; customer x writes 'kdv-abc',
    whose first five characters are another tenant's: refused (PostgreSQL, MariaDB), and
    on every database its run changes no row."""
    create(any_db_url, sa.String(5), sa.String(5))
    seed(any_db_url, [("kdv-a", 1, OLD), ("kdv-b", 2, OLD)], [(1, "kdv-a", 1), (2, "kdv-b", 2)])
    customers = {"b": customer("kdv-b"), "x": customer("kdv-abc")}
    config = write_config(tmp_path, product(references=REFERENCES), customers)
    env = {ENV_NAME: any_db_url}
    sqlite = any_db_url.startswith("sqlite")

    code, out = validate(tmp_path, env)
    if sqlite:  # VARCHAR(5) holds any text in SQLite
        assert code == 0, out
    else:
        assert code == 2, out
        _refused(out, "x", "VARCHAR(5)")
        assert "7 characters long" in out

    kids, pics = children(any_db_url), photos(any_db_url)
    [x] = run_once(config, env, state, customer="x")
    assert x.outcome is (Outcome.SUCCEEDED if sqlite else Outcome.FAILED), x.error
    assert (children(any_db_url), photos(any_db_url)) == (kids, pics)

    [b] = run_once(config, env, state, customer="b")
    assert b.outcome is Outcome.SUCCEEDED, b.error
    assert children(any_db_url) == without(kids, ("kdv-b", 2))
    assert photos(any_db_url) == without(pics, (2,))
