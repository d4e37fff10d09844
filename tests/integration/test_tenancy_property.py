"""Property: no run ever changes a row of another tenant or a row inside its period.

On SQLite, PostgreSQL and MariaDB (its test database in the case- and accent-insensitive
utf8mb4_unicode_ci), hypothesis draws rows of two shared tables, one with a text and one with
an integer tenant column, with keys shared between tenants, tenant values of mixed types and
case/accents, and time bases from the clean and odd values of tests/integration/
test_odd_dates.py (each annotated with its real date). A dependent references only the id,
not the tenant column, so that only the connector's own tenant filter keeps the other
tenants' dependents. A customer's tenant value, of mixed type too, is then run as the
worker does (backlog, keyset pages, apply). Exactly the rows of that tenant, as stored, whose
real date is from 1900 on and before the cutoff go, with their dependents; a tenant value
that does not convert exactly is refused and changes nothing.

One database per backend serves every example: the tables are emptied before each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Change, Dependent, Table, Target, TenantValueError
from connectors.sql import SqlConnector
from tests.integration.test_odd_dates import DATE_CASES, expired
from tests.support import PEPPER

CUTOFF = Target(
    Table("x", key=("id",)),
    None,
    None,
    dt.date(2025, 11, 28),
    dt.datetime(2025, 11, 27, 23, 0, tzinfo=dt.UTC),
)
TEXT_TENANTS = ["kdv-a", "KDV-A", "kdv-á", "Kdv-A", "kdv-a ", "1042", "01042", "1042b", "7"]
INT_TENANTS = [1, 2, 7, 1042]
# What a customer file may say: whole numbers and texts (and, refused, what YAML could give).
CUSTOMER_TENANTS = [*TEXT_TENANTS, *INT_TENANTS, "1", "01", "1042abc", "+7", True, 1.0]


def tables(backend: str, kind: str) -> tuple[Table, str, str]:
    """The mapping of one shared table pair: child_<kind> with its photo_<kind> dependent."""
    child, photo = f"child_{kind}", f"photo_{kind}"
    spec = Table(
        child,
        key=("org", "id"),
        dates=("left_on",),
        tenant_column="org",
        dependents=(Dependent(photo, references=(("child_id", "id"),)),),
    )
    return spec, child, photo


def create(url: str) -> None:
    """child_text/photo_text (VARCHAR tenant) and child_int/photo_int (INTEGER tenant), each
    row with a surrogate pk, so that a case-insensitive collation cannot refuse a row."""
    left_on = "DATE"
    statements = []
    for kind, org in (("text", "VARCHAR(20)"), ("int", "INTEGER")):
        statements += [
            f"CREATE TABLE child_{kind} (pk INTEGER PRIMARY KEY, org {org} NOT NULL, "
            f"id INTEGER NOT NULL, left_on {left_on})",
            f"CREATE INDEX child_{kind}_org ON child_{kind} (org, id)",
            f"CREATE TABLE photo_{kind} (pk INTEGER PRIMARY KEY, org {org} NOT NULL, "
            "child_id INTEGER NOT NULL)",
        ]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


Row = tuple[Any, int, int]  # org, id, index into the backend's DATE_CASES


@st.composite
def shared_rows(draw: st.DrawFn, tenants: list[Any], n_cases: int) -> list[Row]:
    """Rows whose (org, id) pairs are unique as stored, ids shared between tenants."""
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(tenants), st.integers(1, 3)),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    return [(org, i, draw(st.integers(0, n_cases - 1))) for org, i in pairs]


def fill(
    conn: sa.Connection, backend: str, kind: str, children: list[Row], photos: list[bool]
) -> None:
    conn.execute(sa.text(f"DELETE FROM photo_{kind}"))
    conn.execute(sa.text(f"DELETE FROM child_{kind}"))
    cases = DATE_CASES[backend]
    for pk, (org, i, case) in enumerate(children, 1):
        conn.execute(
            sa.text(
                f"INSERT INTO child_{kind} (pk, org, id, left_on) "
                f"VALUES (:pk, :org, :id, {cases[case][0]})"
            ),
            {"pk": pk, "org": org, "id": i},
        )
    for pk, ((org, i, _), has_photo) in enumerate(zip(children, photos, strict=False), 1):
        if has_photo:
            conn.execute(
                sa.text(f"INSERT INTO photo_{kind} (pk, org, child_id) VALUES (:pk, :org, :id)"),
                {"pk": pk, "org": org, "id": i},
            )


def stored(conn: sa.Connection, table: str, columns: str) -> dict[int, tuple[Any, ...]]:
    found = conn.execute(sa.text(f"SELECT pk, {columns} FROM {table}"))
    return {row[0]: tuple(row[1:]) for row in found}


def run(connector: SqlConnector, spec: Table, tenant: Any) -> None:
    """What the worker does for one rule: count, then keyset pages of 2, each applied."""
    where = Target(spec, tenant, "left_on", CUTOFF.cutoff_date, CUTOFF.cutoff_instant)
    connector.backlog(where)
    after = None
    while keys := connector.select_expired(where, after, 2):
        connector.apply(where, Change.DELETE, keys)
        after = keys[-1]


def convertible(tenant: Any, kind: str) -> bool:
    """Whether the customer's value converts exactly to the column's type (by the issue's
    rules: whole numbers and texts; for an integer column only a number written plainly)."""
    if isinstance(tenant, bool) or not isinstance(tenant, int | str):
        return False
    if kind == "text" or isinstance(tenant, int):
        return True
    return tenant == "0" or (tenant[:1] not in ("0", "+") and tenant.lstrip("-").isdigit())


def exact(stored_value: Any, tenant: Any, kind: str) -> bool:
    """Whether a stored tenant equals the customer's (convertible) value as stored."""
    wanted = str(tenant) if kind == "text" else int(tenant)
    return bool(stored_value == wanted)


@pytest.fixture
def prepared(any_db_url: str) -> Iterator[tuple[str, SqlConnector]]:
    """The two table pairs in a fresh database of each kind, and an open connector."""
    create(any_db_url)
    connector = SqlConnector(any_db_url, pepper=PEPPER)
    connector.open()
    try:
        yield any_db_url, connector
    finally:
        connector.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_run_changes_another_tenants_row_or_one_inside_its_period(
    prepared: tuple[str, SqlConnector], data: st.DataObject
) -> None:
    """Only the tenant's own expired rows (exactly as stored) and their own dependents go;
    a tenant value that does not convert exactly changes nothing."""
    url, connector = prepared
    backend = sa.make_url(url).get_backend_name()
    cases = DATE_CASES[backend]
    kind = data.draw(st.sampled_from(["text", "int"]), label="tenant column")
    pool = TEXT_TENANTS if kind == "text" else INT_TENANTS
    children = data.draw(shared_rows(pool, len(cases)), label="children")
    photos = data.draw(st.lists(st.booleans(), min_size=len(children), max_size=len(children)))
    tenant = data.draw(st.sampled_from(CUSTOMER_TENANTS), label="customer's tenant")
    spec, child_table, photo_table = tables(backend, kind)

    engine = connector.engine
    with engine.begin() as conn:
        if backend == "mysql":
            conn.execute(sa.text("SET SESSION sql_mode = ''"))  # to store zero dates
        fill(conn, backend, kind, children, photos)
        before = stored(conn, child_table, "org, id")
        before_photos = stored(conn, photo_table, "org, child_id")

    if convertible(tenant, kind):
        run(connector, spec, tenant)
    else:
        with pytest.raises(TenantValueError):
            run(connector, spec, tenant)

    gone = {
        pk
        for pk, (org, i, case) in enumerate(children, 1)
        if convertible(tenant, kind) and exact(org, tenant, kind) and expired(cases[case][1])
    }
    gone_keys = {before[pk] for pk in gone}
    with engine.connect() as conn:
        after = stored(conn, child_table, "org, id")
        after_photos = stored(conn, photo_table, "org, child_id")
    assert after == {pk: v for pk, v in before.items() if pk not in gone}
    assert after_photos == {pk: v for pk, v in before_photos.items() if v not in gone_keys}
