"""Customers asked together (worker/together.py) decide exactly as each counting alone,
whatever the tenant column's type and the time basis' type, on PostgreSQL.

Each case seeds a shared `child` table whose tenant column (`org`) and time basis
(`left_on`) are of the types given, customers in several time zones and with several
periods, rows just either side of each customer's cutoff instant, and expired rows of
tenant values no customer has that differ from one only by case, accent, trailing space
or width. The tick together and the tick alone (RETENTION_SCHEMA_REUSE_SECONDS=0) must
change the same rows, report the same figures and publish the same audit events; only
the customers with rows due count themselves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration import together_support as ts
from worker.periods import Period, Unit, cutoff, local_today, start_of_day

pytestmark = pytest.mark.postgres

# Customer name → (time zone, months), the same for every case.
ZONES = {
    "c0": ("Europe/Amsterdam", 12),
    "c1": ("Europe/Amsterdam", 12),
    "c2": ("America/New_York", 12),
    "c3": ("Asia/Tokyo", 12),
    "c4": ("Pacific/Kiritimati", 3),
    "c5": ("Europe/Amsterdam", 24),
    "c6": ("Etc/GMT+12", 12),
    "c7": ("Europe/Amsterdam", 12),
}
DUE = {"c1", "c3", "c6"}  # an expired row each; the others only rows inside their period
UUIDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(8)]

# Tenant column type → (the customers' tenant values as YAML, the stored values, other
# tenants' expired rows that must never change).
TENANTS: dict[str, tuple[list[str], list[Any], list[Any]]] = {
    "integer": ([str(101 + i) for i in range(8)], [101 + i for i in range(8)], [0, -101]),
    "bigint": (
        [str(2**40 + i) for i in range(8)],
        [2**40 + i for i in range(8)],
        [2**40 + 100, 2**32],
    ),
    "numeric(12,0)": ([str(1001 + i) for i in range(8)], [1001 + i for i in range(8)], [1]),
    "varchar(8)": (
        [f"'kdv-{c}'" for c in "abcdefgh"],
        [f"kdv-{c}" for c in "abcdefgh"],
        ["KDV-A", "kdv-á", "kdv-b ", "kdv-c\t"],
    ),
    "char(8)": (
        [f"'kdv-{c}'" for c in "abcdefgh"],
        [f"kdv-{c}" for c in "abcdefgh"],
        ["KDV-A", "kdv-á", "kdv-bb"],
    ),
    "text": (
        [f"'Kdv-{c}é'" for c in "abcdefgh"],
        [f"Kdv-{c}é" for c in "abcdefgh"],
        ["kdv-aé", "Kdv-ae", "Kdv-bé ", "Kdv-ce\u0301"],
    ),
    "uuid": (
        [f"'{u}'" for u in UUIDS],
        UUIDS,
        ["00000000-0000-4000-8000-0000000000ff"],
    ),
}

BASES = ["date", "timestamp", "timestamptz"]


def _cutoff(zone: str, months: int) -> tuple[dt.date, dt.datetime]:
    """The customer's cutoff date and instant for a period of `months` at NOW."""
    day = cutoff(local_today(ts.NOW, ZoneInfo(zone)), Period(months, Unit.MONTHS))
    return day, start_of_day(day, ZoneInfo(zone))


def _rows(tenant_type: str, basis: str) -> list[dict[str, Any]]:
    _, stored, strangers = TENANTS[tenant_type]
    rows: list[dict[str, Any]] = []

    def add(org: Any, value: Any) -> None:
        if basis == "timestamp":  # naive: UTC
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        rows.append({"id": len(rows) + 1, "org": org, "left_on": value})

    for (name, (zone, months)), org in zip(ZONES.items(), stored, strict=True):
        day, instant = _cutoff(zone, months)
        cut: Any = day if basis == "date" else instant
        step = dt.timedelta(days=1) if basis == "date" else dt.timedelta(minutes=1)
        add(org, cut + step)  # inside the period: kept
        add(org, cut)  # on the cutoff: kept
        if name in DUE:
            add(org, cut - step)  # just past it: changed
    for org in strangers:
        old = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
        add(org, old.date() if basis == "date" else old)  # long expired, nobody's
    return rows


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("tenant_type", list(TENANTS))
def test_a_tick_together_decides_as_each_counting_alone(
    tmp_path: Path, pg_url: str, tenant_type: str, basis: str
) -> None:
    values, _, _ = TENANTS[tenant_type]
    customers = {
        name: ts.customer_text(value, timezone=zone, extra=f"settings: {{months: {months}}}")
        for (name, (zone, months)), value in zip(ZONES.items(), values, strict=True)
    }
    config = ts.config_of(tmp_path / "config", ts.SIMPLE, customers)
    rows = _rows(tenant_type, basis)

    def seed() -> None:
        ts.execute(
            pg_url,
            "DROP TABLE IF EXISTS child",
            f"CREATE TABLE child (id integer PRIMARY KEY, org {tenant_type} NOT NULL, "
            f"name varchar(50), left_on {basis})",
            "INSERT INTO child (id, org, left_on) VALUES (:id, :org, :left_on)",
            params=rows,
        )

    together, alone = ts.both_ticks(tmp_path, pg_url, seed, config)
    ts.assert_equivalent(together, alone)
    changed = {c for c, r in together.reports.items() if r.changed}
    assert changed == {f"{c}/kids" for c in DUE}
    assert together.joint == 1
    assert together.counts == len(DUE)
    assert len(together.rows["child"]) == len(rows) - len(DUE)
