"""Customers asked together (worker/together.py) decide exactly as each counting alone when
a rule's time basis is read from a related table that has the tenant column, and related
rows point at another customer's rows, on PostgreSQL.

A family's relation ends when the last of its kids leaves (`latest`, falling back to the
family's own end when it has no kid). The kids table has the tenant column and the kids'
reference to their family leaves the tenant out, so the basis reads only the kids of the
customer's own tenant: a kid of another customer that points at a family is not its kid.
In the joint statement every customer's values are a row of one table (`rw_customers`);
the select that reads the kids must take the tenant of its own customer's row. Each
tick together must change the same rows, report the same figures and publish the same
audit events as the tick where each customer counts alone, for integer and text tenants
(text ones that differ from another customer's only by case, and a kid of a tenant nobody
has that differs from a customer's by a trailing space).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration import together_support as ts

pytestmark = pytest.mark.postgres

OLD, RECENT = "2019-01-01", "2026-10-01"
FAMILIES = """\
subjects:
  family:
    kind: child
    table: family
    key: [id]
    columns: {name: name}
    dates:
      ended: ended_on
      kids_left:
        latest: left_on
        from: {table: kid, references: {family_id: id}}
        if_none: ended
rules:
  - id: kids.family.left
    subject: family
    after: {date: kids_left, period: 12m}
    action: delete
"""
CUSTOMERS = 12

# Tenant column type → (customer number → its tenant as YAML, as stored, a tenant value no
# customer has).
TENANTS: dict[str, tuple[Any, Any, Any]] = {
    "integer": (str, int, 0),
    "varchar(12)": (  # kdv-1, KDV-1, kdv-2, …: customers that differ only by case
        lambda t: f"'{'KDV' if t % 2 else 'kdv'}-{(t + 1) // 2}'",
        lambda t: f"{'KDV' if t % 2 else 'kdv'}-{(t + 1) // 2}",
        "KDV-1 ",  # customer 1's with a trailing space
    ),
}


def _rows(stored: Any, stranger: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every customer a family inside its period; customer 1's family ended long ago with
    no kid of its own but a kid of customer 2 and one of a tenant nobody has, neither of
    which has left (due), customer 2's family
    with its own kid gone long ago and customer 3's kid still there (due), customer 3's
    family with its own kid still there and customer 4's kid gone long ago (kept)."""
    families = [
        {"id": t, "org": stored(t), "name": f"f{t}", "ended_on": RECENT}
        for t in range(1, CUSTOMERS + 1)
    ]
    families += [
        {"id": 101, "org": stored(1), "name": "one", "ended_on": OLD},
        {"id": 102, "org": stored(2), "name": "two", "ended_on": None},
        {"id": 103, "org": stored(3), "name": "three", "ended_on": OLD},
    ]
    kids = [
        {"id": 1, "org": stored(2), "family_id": 101, "left_on": None},
        {"id": 2, "org": stored(2), "family_id": 102, "left_on": OLD},
        {"id": 3, "org": stored(3), "family_id": 102, "left_on": None},
        {"id": 4, "org": stored(3), "family_id": 103, "left_on": None},
        {"id": 5, "org": stored(4), "family_id": 103, "left_on": OLD},
        {"id": 6, "org": stranger, "family_id": 101, "left_on": None},
    ]
    return families, kids


@pytest.mark.parametrize("tenant_type", list(TENANTS))
def test_another_customers_kid_of_a_family_decides_together_as_alone(
    tmp_path: Path, pg_url: str, tenant_type: str
) -> None:
    written, stored, stranger = TENANTS[tenant_type]
    ts.execute(
        pg_url,
        f"CREATE TABLE family (id INTEGER PRIMARY KEY, org {tenant_type} NOT NULL, "
        "name TEXT, ended_on DATE)",
        f"CREATE TABLE kid (id INTEGER PRIMARY KEY, org {tenant_type} NOT NULL, "
        "family_id INTEGER NOT NULL, left_on DATE)",
    )
    customers = {f"c{t:02d}": ts.customer_text(written(t)) for t in range(1, CUSTOMERS + 1)}
    config = ts.config_of(tmp_path / "config", FAMILIES, customers)
    families, kids = _rows(stored, stranger)

    def seed() -> None:
        ts.execute(pg_url, "DELETE FROM kid", "DELETE FROM family")
        ts.execute(
            pg_url,
            "INSERT INTO family VALUES (:id, :org, :name, CAST(:ended_on AS date))",
            params=families,
        )
        ts.execute(
            pg_url,
            "INSERT INTO kid VALUES (:id, :org, :family_id, CAST(:left_on AS date))",
            params=kids,
        )

    together, alone = ts.both_ticks(tmp_path, pg_url, seed, config)
    assert all(r.error is None for r in together.reports.values()), together.reports
    ts.assert_equivalent(together, alone)
    assert together.joint >= 1
    changed = {c for c, r in together.reports.items() if r.changed}
    assert changed == {"c01/kids", "c02/kids"}
    assert set(together.rows["family"]) == {(t,) for t in range(1, CUSTOMERS + 1)} | {(103,)}
    assert together.counts < alone.counts
