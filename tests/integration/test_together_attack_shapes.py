"""Customers asked together (worker/together.py) decide exactly as each counting alone, for
rules of every kind at once, on PostgreSQL: a time basis over a related table (the latest
end with "all ended", falling back to the row's own date), a first-of, row conditions,
rules that overlap (each row must be past the other's cutoff too), an anonymise whose rows
already masked are left out, and a table without a key.

Twelve customers share the school schema (tests/integration/school.py), every tenant with
the same keys; a few of them have rows due under random dates, the others only rows inside
their periods, open placements, or rows other rules' conditions leave out. Each seed's tick
together and alone must change the same rows, report the same figures and publish the same
audit events.

Customers of two shapes of one mapping's targets (a customer date: all of a table past it,
or none), interleaved: each shape is asked with its own kind, not refused for the mix.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from tests.integration import school
from tests.integration import together_support as ts
from tests.integration.own_config import write_config

pytestmark = pytest.mark.postgres

RULES = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name, status: name}
    dates:
      left: left_on
      ended: {first_of: [contract_end, last_activity]}
      placed_until:
        latest: ended_on
        from: {table: placement, references: {org: org, pupil_id: id}}
        if_none: left
  log:
    kind: child
    table: access_log
    key: []
    columns: {message: ip}
    dates: {at: at}
rules:
  - id: kids.pupil.placed
    subject: pupil
    after:
      date: placed_until
      period: {setting: months, default: 12, unit: months}
    action: anonymise
    with: {name: "null"}
  - id: kids.pupil.ended
    subject: pupil
    after: {date: ended, period: 24m}
    where: [{column: status, equals: Left}]
    action: delete
  - id: kids.pupil.left
    subject: pupil
    after: {date: left, period: 36m}
    where: [{column: grade, lt: 8}]
    action: delete
  - id: kids.log.old
    subject: log
    after: {date: at, period: 6m}
    action: delete
"""
TENANTS = range(1, 13)
BUSY = {2, 7, 11}
ZONES = ["Europe/Amsterdam", "America/Los_Angeles", "Asia/Kolkata"]
NOW = ts.NOW.date()


def _day(rng: random.Random, busy: bool) -> dt.date | None:
    """A date somewhere around the rules' cutoffs (busy) or inside every period."""
    if not busy:
        return rng.choice([None, NOW - dt.timedelta(days=rng.randint(0, 80))])
    months = rng.choice([3, 6, 12, 24, 36, 40])
    return rng.choice([None, NOW - dt.timedelta(days=30 * months + rng.randint(-3, 3))])


def _seed_rows(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {"pupil": [], "placement": [], "access_log": []}
    for org in TENANTS:
        busy = org in BUSY
        for i in range(1, 6):
            rows["pupil"].append(
                school.pupil(
                    org,
                    i,
                    status=rng.choice(["Left", "Full", None]),
                    grade=rng.choice([5, 9, None]),
                    left_on=_day(rng, busy),
                    contract_end=_day(rng, busy),
                    last_activity=_day(rng, busy),
                )
            )
            for _ in range(rng.randint(0, 2)):
                n = len(rows["placement"]) + 1
                ended = _day(rng, busy) if busy or rng.random() < 0.5 else None
                rows["placement"].append(
                    {"org": org, "id": n, "pupil_id": i, "started_on": None, "ended_on": ended}
                )
            if rng.random() < 0.5:
                at = _day(rng, busy)
                rows["access_log"].append({"org": org, "pupil_id": i, "at": at, "message": f"m{i}"})
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_rules_of_every_kind_decide_together_as_alone(
    tmp_path: Path, pg_url: str, seed: int
) -> None:
    school.create(pg_url)
    customers = {
        f"c{org:02d}": ts.customer_text(
            str(org),
            timezone=ZONES[org % 3],
            extra=f"settings: {{months: {3 + org % 3 * 9}}}",
        )
        for org in TENANTS
    }
    config = write_config(tmp_path / "config", RULES, customers, school.CATALOGUE)
    rows = _seed_rows(random.Random(seed))

    def seed_db() -> None:
        school.reseed(pg_url, rows)

    together, alone = ts.both_ticks(tmp_path, pg_url, seed_db, config)
    assert all(r.error is None for r in together.reports.values()), together.reports
    ts.assert_equivalent(together, alone)
    assert together.joint >= 1
    busy = {c for c, r in together.reports.items() if any(p.eligible for p in r.rules)}
    assert busy <= {f"c{org:02d}/kids" for org in BUSY}
    assert together.counts < alone.counts


SERVICE = """\
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
  visit:
    kind: child
    table: visit
    key: [id]
    columns: {note: name}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
  - id: kids.visit.service
    subject: visit
    after: {customer_date: end_of_service, period: 90d}
    action: delete
"""


def test_customers_of_two_shapes_interleaved_are_each_asked_with_their_own_kind(
    tmp_path: Path, pg_url: str
) -> None:
    """A customer date makes two shapes of one mapping's targets: every visit is past it
    (the customer's service ended long ago) or none is (no end of service). Every third
    customer's service ended, without visits left: idle, they are asked together with
    each other, although the customers between them are of the other shape (never asked
    together: a rule that selects nothing has no tenant value to carry)."""
    ended = {t for t in range(1, 25) if t % 3 == 0}
    customers = {
        f"c{t:02d}": ts.customer_text(
            str(t), extra="dates: {end_of_service: 2020-01-31}" if t in ended else ""
        )
        for t in range(1, 25)
    }
    config = ts.config_of(tmp_path / "config", SERVICE, customers)
    old, recent = dt.date(2019, 1, 1), dt.date(2026, 10, 1)
    children = [{"id": t, "org": t, "left_on": recent} for t in range(1, 25)]
    children += [{"id": 100 + t, "org": t, "left_on": old} for t in (1, 2, 12)]
    visits = ", ".join(f"({t}, {t})" for t in range(1, 25) if t not in ended)

    def seed() -> None:
        ts.execute(
            pg_url,
            "DROP TABLE IF EXISTS child",
            "DROP TABLE IF EXISTS visit",
            "CREATE TABLE visit (id integer PRIMARY KEY, org integer NOT NULL, note text)",
            f"INSERT INTO visit (id, org) VALUES {visits}",
            "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
            "name varchar(50), left_on date)",
            "INSERT INTO child (id, org, left_on) VALUES (:id, :org, :left_on)",
            params=children,
        )

    together, alone = ts.both_ticks(tmp_path, pg_url, seed, config)
    ts.assert_equivalent(together, alone)
    assert {c for c, r in together.reports.items() if r.changed} == {
        f"c{t:02d}/kids" for t in (1, 2, 12)
    }
    assert together.joint == 1
    assert together.counts == alone.counts - len(ended - {12})  # the idle ended ones
