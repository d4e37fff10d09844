"""A school-like schema for the mapping-language tests (issue 9): one database per backend
per test module, reseeded by each test.

Every table carries the tenant column `org`, and keys are numbered per tenant, so two tenants
share key values: pupil (1, 3) and pupil (2, 3) are two children. Tests seed both tenants,
run one customer as `run --once` does, and compare every row before and after by key.

- pupil(org, id, name, status, grade, archived_at, left_on, contract_end, last_activity)
- placement(org, id, pupil_id, started_on, ended_on): a related table (a time basis)
- medical(org, id, pupil_id, notes), contact(org, id, pupil_id, name, phone): related rows
- access_log(org, pupil_id, at, message): no primary key, no unique index

Dates are placed around CUTOFF, the cutoff of a 12-month rule at NOW for a customer in
Europe/Amsterdam: PAST is one day before it (past the period: changed), INSIDE one day after
(inside the period: kept), ON the cutoff day itself (kept).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.integration.own_config import write_config
from tests.support import run_once
from worker.configload import Config
from worker.runreport import RunReport
from worker.state import StateStore

D = dt.date
CUTOFF = D(2025, 11, 28)  # NOW (2026-11-28 12:00 UTC) minus 12 months, in Amsterdam
PAST, INSIDE, ON = CUTOFF - dt.timedelta(days=1), CUTOFF + dt.timedelta(days=1), CUTOFF
LONG_AGO = D(2019, 6, 30)
ENV_NAME = "KIDS_DATABASE_URL"
TENANT = {"kdv-a": 1, "kdv-b": 2}
CUSTOMERS = {name: f"products:\n  kids:\n    tenant: {t}\n" for name, t in TENANT.items()}
CATALOGUE = """\
kinds:
  child: {label: Kind}
categories:
  name: {label: Naam}
  phone: {label: Telefoonnummer}
  health: {label: Gezondheidsgegevens, special: true}
  ip: {label: IP-adres}
products:
  kids:
    label: Kids
    annex: A.9
    processes:
      child: [name, phone, health, ip]
"""
HEAD = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
"""

METADATA = sa.MetaData()


def _keyed(name: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        METADATA,
        sa.Column("org", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *columns,
    )


PUPIL = _keyed(
    "pupil",
    sa.Column("name", sa.String(100)),
    sa.Column("status", sa.String(10)),
    sa.Column("grade", sa.Integer),
    sa.Column("archived_at", sa.DateTime),
    sa.Column("left_on", sa.Date),
    sa.Column("contract_end", sa.Date),
    sa.Column("last_activity", sa.Date),
)
PLACEMENT = _keyed(
    "placement",
    sa.Column("pupil_id", sa.Integer, nullable=False),
    sa.Column("started_on", sa.Date),
    sa.Column("ended_on", sa.Date),
)
MEDICAL = _keyed(
    "medical", sa.Column("pupil_id", sa.Integer, nullable=False), sa.Column("notes", sa.Text)
)
CONTACT = _keyed(
    "contact",
    sa.Column("pupil_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("phone", sa.String(100)),
)
ACCESS_LOG = sa.Table(
    "access_log",
    METADATA,
    sa.Column("org", sa.Integer, nullable=False),
    sa.Column("pupil_id", sa.Integer),
    sa.Column("at", sa.Date),
    sa.Column("message", sa.String(100)),
)
KEYED = ("pupil", "placement", "medical", "contact")
Rows = dict[str, list[dict[str, Any]]]
Snapshot = dict[str, Any]


def pupil(org: int, i: int, **values: Any) -> dict[str, Any]:
    """A pupil row: every column given, the ones not in `values` NULL (name: a fake one)."""
    row = {c.name: None for c in PUPIL.c} | {"org": org, "id": i, "name": f"Leerling {org}-{i}"}
    return row | values


def both(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows as given for tenant 1, and the same rows (same keys, same values) for 2."""
    return [*rows, *({**r, "org": 2} for r in rows)]


def reseed(url: str, rows: Rows) -> None:
    """Empty every table and insert `rows` (table → rows as dicts)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(METADATA.sorted_tables):
                conn.execute(table.delete())
            for name, found in rows.items():
                if found:
                    conn.execute(METADATA.tables[name].insert(), found)
    finally:
        engine.dispose()


def snapshot(url: str) -> Snapshot:
    """Keyed tables as {(org, id): row}; access_log as a multiset of its rows."""
    engine = sa.create_engine(url)
    found: Snapshot = {}
    try:
        with engine.connect() as conn:
            for name in KEYED:
                table = METADATA.tables[name]
                found[name] = {
                    (r["org"], r["id"]): dict(r) for r in conn.execute(sa.select(table)).mappings()
                }
            found["access_log"] = Counter(tuple(r) for r in conn.execute(sa.select(ACCESS_LOG)))
    finally:
        engine.dispose()
    return found


def create(url: str) -> None:
    """Create the school tables in the empty database at `url`."""
    engine = sa.create_engine(url)
    try:
        METADATA.create_all(engine)
    finally:
        engine.dispose()


def config(root: Path, subjects_and_rules: str, **head: Any) -> Config:
    """The `kids` product (tenant column `org`) with these subjects and rules, for the
    customers kdv-a (tenant 1) and kdv-b (tenant 2). `head` adds top-level settings."""
    extra = "".join(f"{k}: {v}\n" for k, v in head.items())
    return write_config(root, HEAD + extra + subjects_and_rules, CUSTOMERS, CATALOGUE)


def run(config: Config, url: str, state: StateStore, customer: str) -> RunReport:
    """One `run --once` of `customer` × kids; fails the test unless it succeeded."""
    [report] = run_once(config, {ENV_NAME: url}, state, customer=customer)
    assert report.error is None, report.error
    return report


def changed_only(
    before: Snapshot,
    after: Snapshot,
    table: str,
    changed: Mapping[tuple[int, int], dict[str, Any] | None],
) -> None:
    """`table` differs from `before` exactly at the keys of `changed`: a key mapped to None
    is gone, a key mapped to a dict holds its old row updated with the dict. Every other
    row, of either tenant, is as it was."""
    expected = {}
    for key, row in before[table].items():
        if key not in changed:
            expected[key] = row
        elif changed[key] is not None:
            expected[key] = row | dict(changed[key] or {})
    assert after[table] == expected, table


def unchanged_but(before: Snapshot, after: Snapshot, *tables: str) -> None:
    """Every table but `tables` is exactly as it was."""
    for name, rows in before.items():
        if name not in tables:
            assert after[name] == rows, name
